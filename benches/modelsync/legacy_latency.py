"""Times the legacy client on a 4 KB model (1,000 float32), one call at a
time, and prints `phase p50_seconds p99_seconds` for its push and its pull.

  legacy_latency.py BASELINE_DIR REDIS_URL CALLS

BASELINE_DIR holds legacy_push_pull.py. Percentiles are nearest-rank, as in
the benchmark's own figures.
"""
import math
import sys
import time

import numpy as np


def percentile(sorted_samples, p):
    rank = math.ceil(p * len(sorted_samples))
    return sorted_samples[min(max(rank, 1), len(sorted_samples)) - 1]


def timed(calls, fn):
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return percentile(samples, 0.50), percentile(samples, 0.99)


def main():
    baseline_dir, url, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, baseline_dir)
    import legacy_push_pull as legacy

    model = np.random.default_rng(7).standard_normal(1000).astype(np.float32)
    push = timed(calls, lambda: legacy.legacy_push(url, "bench", "small", model, "node-a"))

    def pull():
        _, found = legacy.legacy_pull(url, "bench", "small", None)
        assert found, "the legacy pull did not find what the legacy push stored"

    pulled = timed(calls, pull)
    print(f"legacy_push_4k {push[0]:.6f} {push[1]:.6f}")
    print(f"legacy_pull_4k {pulled[0]:.6f} {pulled[1]:.6f}")


if __name__ == "__main__":
    main()
