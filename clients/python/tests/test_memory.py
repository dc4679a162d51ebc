"""A 300 MB array through push and pull, in a process of its own whose peak
memory (VmHWM) must stay under twice the array's size."""
import json
import subprocess
import sys

import pytest

ARRAY_BYTES = 300_000_000

SCRIPT = r"""
import hashlib, json, sys
import numpy as np
from modelsync import Client

socket, namespace, size = sys.argv[1], sys.argv[2], int(sys.argv[3])

def peak():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    # through fork and exec, so a large test process would mask this one's.
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
with Client(socket) as client:
    client.status()
    baseline = peak()
    array = np.random.default_rng(7).standard_normal(size // 4, dtype=np.float32)
    digest = hashlib.sha256(array.view(np.uint8)).hexdigest()
    pushed = client.push(namespace, "big", array)
    del array
    model = client.pull(namespace, "big")
    value = model.value
    same = (value.dtype == np.float32 and value.shape == (size // 4,)
            and hashlib.sha256(value.view(np.uint8)).hexdigest() == digest)
    client.delete(namespace, "big")
print(json.dumps({"baseline": baseline, "peak": peak(), "same": same,
                  "raw_size": pushed.raw_size, "chunks": pushed.chunk_count}))
"""


@pytest.mark.slow
def test_300_mb_array_stays_under_twice_its_size(daemon, namespace):
    done = subprocess.run([sys.executable, "-c", SCRIPT, daemon.socket, namespace,
                           str(ARRAY_BYTES)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"baseline {report['baseline'] / 1e6:.0f} MB, peak {report['peak'] / 1e6:.0f} MB "
          f"for a {ARRAY_BYTES / 1e6:.0f} MB array ({report['chunks']} chunks)")
    assert report["same"]
    assert report["raw_size"] == ARRAY_BYTES
    assert report["peak"] < 2 * ARRAY_BYTES
