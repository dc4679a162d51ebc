"""Aggregate against real daemons: three workers, each with a daemon of its
own, submit a 100 MB float32 model; a fourth daemon, the head's, combines
them. Results are compared element by element with numpy on the same
inputs, and the head daemon's peak memory during the aggregation is
reported (run with -s or -rP to see it).

The daemon widens float32 to float64, combines the inputs in the order of
their keys with plain IEEE-754 operations, and rounds to float32 once. The
numpy references below do exactly that, so every comparison is exact
equality: a difference in even one element's last bit would mean the
daemon added in another precision or order, which is what these tests are
for."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelsync import Federator, InvalidArgument, NotFound
from modelsync.errors import FailedPrecondition
from modelsync.federated import INPUTS_METADATA
from modelsync.legacy import Mapper

ELEMENTS = 25_000_000  # 100 MB of float32 per worker
SAMPLES = {"node-w1": 1200, "node-w2": 300, "node-w3": 4500}

#: The head daemon may grow by far less than the three inputs together
#: (300 MB): it holds a few chunks per input, not the models.
MAX_HEAD_GROWTH = 150 * 2**20


def memory_of(pid: int) -> dict:
    """VmHWM (peak resident) and VmRSS of a process, in bytes."""
    figures = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                figures[name] = int(value.split()[0]) * 1024
    return figures


@pytest.fixture(scope="module")
def round_(start_daemon, tmp_path_factory):
    """Three worker daemons that have each submitted a 100 MB model with its
    sample count, and a head daemon that has done nothing yet."""
    namespace = "fedavg-test"
    workers = [start_daemon(address) for address in SAMPLES]
    head = start_daemon("node-head")
    models = {}
    for i, worker in enumerate(workers):
        model = np.random.default_rng(100 + i).standard_normal(ELEMENTS, dtype=np.float32)
        with worker.client() as client:
            federator = Federator(namespace, client=client)
            federator.submit(model, samples=SAMPLES[worker.address])
            models[federator.worker_key] = model
    keys = sorted(models)  # the order the daemon combines them in
    with head.client() as client:
        yield {"namespace": namespace, "head": head, "client": client, "workers": workers,
               "keys": keys, "inputs": [models[k] for k in keys]}


def widened(inputs):
    return [x.astype(np.float64) for x in inputs]


def report(what: str, before: dict, after: dict) -> int:
    growth = after["VmHWM"] - before["VmHWM"]
    print(f"\nhead daemon, {what}: peak resident {before['VmHWM'] / 2**20:.1f} MiB before, "
          f"{after['VmHWM'] / 2**20:.1f} MiB after (growth {growth / 2**20:.1f} MiB; "
          f"inputs together {3 * ELEMENTS * 4 / 2**20:.0f} MiB); resident now "
          f"{after['VmRSS'] / 2**20:.1f} MiB")
    return growth


def test_mean_of_three_100_mb_models_matches_numpy_and_the_head_stays_small(round_):
    pid = round_["head"].process.pid
    before = memory_of(pid)
    mean = round_["client"].aggregate(round_["namespace"], round_["keys"], op="mean")
    after = memory_of(pid)
    growth = report("mean of three 100 MB float32 models", before, after)

    a, b, c = widened(round_["inputs"])
    expected = ((a + b + c) / 3).astype(np.float32)
    assert mean.dtype == np.float32 and mean.shape == (ELEMENTS,)
    assert np.array_equal(mean, expected)
    assert growth < MAX_HEAD_GROWTH


def test_weighted_mean_by_sample_counts_matches_numpy(round_):
    keys = round_["keys"]
    weights = {key: SAMPLES[key.removeprefix("worker-")] for key in keys}
    result = round_["client"].aggregate(round_["namespace"], keys, op="weighted_mean",
                                        weights=weights)

    (a, b, c), (wa, wb, wc) = widened(round_["inputs"]), [float(weights[k]) for k in keys]
    expected = ((wa * a + wb * b + wc * c) / (wa + wb + wc)).astype(np.float32)
    assert np.array_equal(result, expected)


def test_sum_min_and_max_match_numpy(round_):
    a, b, c = round_["inputs"]
    client, namespace, keys = round_["client"], round_["namespace"], round_["keys"]

    total = client.aggregate(namespace, keys, op="sum")
    a64, b64, c64 = widened(round_["inputs"])
    assert np.array_equal(total, (a64 + b64 + c64).astype(np.float32))
    del a64, b64, c64, total

    # Exact in any precision: the result is one of the inputs' values.
    assert np.array_equal(client.aggregate(namespace, keys, op="min"),
                          np.minimum(np.minimum(a, b), c))
    assert np.array_equal(client.aggregate(namespace, None, op="max"),
                          np.maximum(np.maximum(a, b), c))


def test_a_federated_round_across_three_daemons_weights_by_samples(round_):
    namespace, head = round_["namespace"], round_["head"]
    before = memory_of(head.process.pid)
    with head.client() as client:
        version = Federator(namespace, client=client).aggregate(by_samples=True)
    after = memory_of(head.process.pid)
    report("federated round (weighted mean into the global key)", before, after)
    assert after["VmHWM"] - before["VmHWM"] < MAX_HEAD_GROWTH

    keys = round_["keys"]
    a, b, c = widened(round_["inputs"])
    wa, wb, wc = (float(SAMPLES[k.removeprefix("worker-")]) for k in keys)
    expected = ((wa * a + wb * b + wc * c) / (wa + wb + wc)).astype(np.float32)
    del a, b, c
    for worker in round_["workers"]:
        with worker.client() as client:
            federator = Federator(namespace, client=client)
            assert np.array_equal(federator.global_model(), expected), worker.address
            assert federator.global_version == version
    with head.client() as client:
        header = client.head(namespace, "global")
    assert json.loads(header.metadata[INPUTS_METADATA]) == {k: 1 for k in keys}


def test_aggregate_into_stores_nothing_when_the_inputs_are_refused(daemon, namespace):
    with daemon.client() as client:
        client.push(namespace, "a", np.ones(10, dtype=np.float32))
        client.push(namespace, "b", np.ones(11, dtype=np.float32))
        with pytest.raises(InvalidArgument) as refused:
            client.aggregate_into(namespace, ["a", "b"], "mean", "out")
        assert "'a'" in str(refused.value) or '"a"' in str(refused.value)
        assert not client.exists(namespace, "out")

        with pytest.raises(NotFound):
            client.aggregate(namespace, ["a", "missing"])
        with pytest.raises(ValueError):
            client.aggregate(namespace, ["a"], op="median")
        with pytest.raises(ValueError):
            client.aggregate(namespace, ["a"], dtype=np.int32)


def test_aggregate_into_keeps_the_inputs_shape_and_names_their_versions(daemon, namespace):
    rng = np.random.default_rng(5)
    first, second = (rng.standard_normal((40, 30)) for _ in range(2))
    with daemon.client() as client:
        client.push(namespace, "x", first)
        client.push(namespace, "x", first)
        client.push(namespace, "y", second)
        stored = client.aggregate_into(namespace, ["x", "y"], "max", "out", dtype=np.float64,
                                       metadata={"round": "3"})
        assert [(h.key, h.version) for h in stored.inputs] == [("x", 2), ("y", 1)]
        out = client.pull(namespace, "out")
    assert out.version == stored.version == 1
    assert out.metadata["round"] == b"3"
    assert out.value.shape == (40, 30) and out.value.dtype == np.float64
    assert np.array_equal(out.value, np.maximum(first, second))


def test_mapper_reduce_combines_every_key_on_the_daemon(daemon, namespace):
    rng = np.random.default_rng(9)
    models = {f"node-{i}": rng.standard_normal(1000) for i in range(4)}  # float64
    mapper = Mapper(namespace, client=daemon.client())
    for key, model in models.items():
        assert mapper.Map(model, key=key) == [True]

    stacked = [models[k] for k in sorted(models)]
    expected = stacked[0] + stacked[1] + stacked[2] + stacked[3]
    assert np.array_equal(mapper.Reduce("sum"), expected)
    assert np.array_equal(mapper.Reduce(), expected / 4)
    weights = {k: 1.0 + i for i, k in enumerate(sorted(models))}
    w = [weights[k] for k in sorted(models)]
    numerator = w[0] * stacked[0] + w[1] * stacked[1] + w[2] * stacked[2] + w[3] * stacked[3]
    assert np.array_equal(mapper.Reduce(weights=weights), numerator / (w[0] + w[1] + w[2] + w[3]))


def test_mapper_reduce_refuses_a_legacy_namespace(legacy_daemon):
    mapper = Mapper(legacy_daemon.trusted_ns, client=legacy_daemon.client())
    with pytest.raises(FailedPrecondition, match="legacy layout"):
        mapper.Reduce()


def test_the_readme_federated_round_runs_as_written(start_daemon, daemon):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    example = re.search(r"### A federated-averaging round.*?```python\n(.*?)```", readme,
                        re.S).group(1)
    workers = [start_daemon(node) for node in ("w1", "w2", "w3")]
    env = {**os.environ, "MODELSYNC_SOCKET": daemon.socket,
           "FEDAVG_WORKERS": " ".join(w.socket for w in workers)}
    done = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "every worker has the weighted mean" in done.stdout
