"""The drop-in for the legacy RedisComm/Mapper, in chunked namespaces and
against the legacy client itself on one Redis."""
import pickle
import zlib

import numpy as np
import pytest

from modelsync import Client, InvalidArgument, PickleNotTrusted
from modelsync.legacy import Mapper, RedisComm

RNG = np.random.default_rng(3)


def weights(shape=(4, 5), dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# -- chunked namespaces --------------------------------------------------

def test_push_pull_in_a_chunked_namespace(daemon, namespace):
    comm = RedisComm(namespace, socket=daemon.socket)
    assert comm.address == "node-a"
    assert not comm.pickled
    comm.loadContract()
    model = weights()
    assert comm.Push(model, key="0x1", wait4Tx=True) == [True]
    pulled, found = comm.Pull(np.zeros_like(model), key="0x1")
    assert found is True
    assert pulled.dtype == model.dtype and np.array_equal(pulled, model)
    # Stored as a plain array, no pickle: the client sees it as one.
    with Client(daemon.socket) as client:
        stored = client.pull(namespace, "0x1")
    assert stored.metadata["modelsync.dtype"] == b"<f4"
    assert np.array_equal(stored.value, model)


def test_default_key(daemon, namespace):
    comm = RedisComm(namespace, socket=daemon.socket)
    comm.Push(np.arange(3))
    assert np.array_equal(comm.Pull(None)[0], np.arange(3))
    with Client(daemon.socket) as client:
        assert client.exists(namespace, "0x0")


def test_missing_key(daemon, namespace):
    comm = RedisComm(namespace, socket=daemon.socket)
    local = weights()
    model, found = comm.Pull(local, key="missing")
    assert model is local and found is False
    model, found, difference = comm.Pull(local, key="missing", calcWD=True)
    assert model is local and found is False and difference is None


def test_average_and_weight_difference(daemon, namespace):
    comm = RedisComm(namespace, socket=daemon.socket)
    remote, local = weights(dtype=np.float64), weights(dtype=np.float64)
    comm.Push(remote, key="k")

    averaged, found = comm.Pull(local, key="k", average=True)
    assert found
    np.testing.assert_array_equal(averaged, np.mean([remote, local], axis=0))
    np.testing.assert_allclose(averaged, (remote + local) / 2)

    model, found, difference = comm.Pull(local, key="k", calcWD=True)
    np.testing.assert_array_equal(model, remote)
    np.testing.assert_array_equal(difference, remote - local)

    averaged, found, difference = comm.Pull(local, key="k", calcWD=True, average=True)
    np.testing.assert_array_equal(averaged, np.mean([remote, local], axis=0))
    np.testing.assert_array_equal(difference, remote - local)


def test_average_of_integer_and_half_models(daemon, namespace):
    comm = RedisComm(namespace, socket=daemon.socket)
    remote, local = np.array([1, 2, 255], dtype=np.uint8), np.array([2, 2, 255], dtype=np.uint8)
    comm.Push(remote, key="ints")
    averaged, _ = comm.Pull(local, key="ints", average=True)
    np.testing.assert_array_equal(averaged, np.mean([remote, local], axis=0))  # no overflow
    half = weights(dtype=np.float16)
    comm.Push(half, key="half")
    averaged, _, difference = comm.Pull(np.ones_like(half), key="half", average=True, calcWD=True)
    np.testing.assert_array_equal(averaged, np.mean([half, np.ones_like(half)], axis=0))
    np.testing.assert_array_equal(difference, half - np.ones_like(half))


def test_objects_are_refused_in_a_chunked_namespace(daemon, namespace):
    comm = RedisComm(namespace, socket=daemon.socket)
    with pytest.raises(TypeError, match="trust_pickle"):
        comm.Push({"layer": object()})
    with pytest.raises(TypeError, match="trust_pickle"):
        comm.Push([np.ones(2), np.ones(3)])  # ragged layers


def test_push_failure_is_false(daemon, namespace):
    comm = RedisComm(namespace, socket=daemon.socket)
    assert comm.Push(np.ones(2), key="") == [False]


@pytest.fixture(scope="module")
def three_nodes(start_daemon, daemon):
    return [daemon, start_daemon("node-b"), start_daemon("0x00ff")]


def test_all_gather_over_three_nodes(three_nodes, namespace):
    models = {}
    for i, node in enumerate(three_nodes):
        mapper = Mapper(namespace, socket=node.socket)
        assert mapper.address == node.address
        models[node.address] = np.full((3, 2), i, dtype=np.float32)
        assert mapper.Map(models[node.address]) == [True]  # under its own address
        mapper.Map(models[node.address] * 10, f"worker-{i}")

    gatherer = Mapper(namespace, socket=three_nodes[1].socket)
    gathered = gatherer.AllGather(withUpdater=True)
    assert set(gathered) == {"node-a", "node-b", "0x00ff", "worker-0", "worker-1", "worker-2"}
    for i, node in enumerate(three_nodes):
        model, updater = gathered[node.address]
        assert updater == node.address
        np.testing.assert_array_equal(model, models[node.address])
        model, updater = gathered[f"worker-{i}"]
        assert updater == node.address
        np.testing.assert_array_equal(model, models[node.address] * 10)

    plain = gatherer.AllGather()
    assert set(plain) == set(gathered)
    np.testing.assert_array_equal(plain["0x00ff"], models["0x00ff"])


def test_reset_all(three_nodes, namespace):
    for i, node in enumerate(three_nodes):
        Mapper(namespace, socket=node.socket).Map(np.full(4, i), f"n{i}")
    mapper = Mapper(namespace, socket=three_nodes[2].socket)
    reset = np.arange(4.0)
    assert sorted(mapper.resetAll(reset)) == ["n0", "n1", "n2"]
    gathered = mapper.AllGather(withUpdater=True)
    assert set(gathered) == {"n0", "n1", "n2"}
    for model, updater in gathered.values():
        np.testing.assert_array_equal(model, reset)
        assert updater == "0x00ff"


# -- legacy namespaces, against the legacy client ------------------------

def test_legacy_namespace_info(legacy_daemon):
    with legacy_daemon.client() as client:
        trusted = client.namespace(legacy_daemon.trusted_ns)
        untrusted = client.namespace(legacy_daemon.untrusted_ns)
    assert (trusted.layout, trusted.trust_pickle) == ("legacy", True)
    assert (untrusted.layout, untrusted.trust_pickle) == ("legacy", False)


def test_untrusted_legacy_namespace_is_refused(legacy_daemon):
    with pytest.raises(PickleNotTrusted, match="trust_pickle"):
        RedisComm(legacy_daemon.untrusted_ns, socket=legacy_daemon.socket)
    with pytest.raises(PickleNotTrusted):
        Mapper(legacy_daemon.untrusted_ns, socket=legacy_daemon.socket)


def test_legacy_client_push_then_redis_comm_pull(legacy_daemon, run_legacy, key, tmp_path):
    model = np.asfortranarray(weights((6, 7), dtype=">f8"))
    np.save(tmp_path / "in.npy", model)
    done = run_legacy("push", "--namespace", legacy_daemon.trusted_ns, "--key", key,
                      "--npy", str(tmp_path / "in.npy"), "--address", "legacy-7")
    assert done.returncode == 0, done.stderr

    comm = RedisComm(legacy_daemon.trusted_ns, socket=legacy_daemon.socket)
    assert comm.pickled
    pulled, found = comm.Pull(None, key=key)
    assert found is True
    assert pulled.dtype.str == ">f8" and np.array_equal(pulled, model)

    # The plain client sees the pickle's bytes, never unpickled, at version 0.
    with legacy_daemon.client() as client:
        raw = client.pull(legacy_daemon.trusted_ns, key)
    assert (raw.version, raw.updater) == (0, "legacy-7")
    assert isinstance(raw.value, bytes) and raw.data.startswith(b"\x80")


def test_redis_comm_push_then_legacy_client_pull(legacy_daemon, run_legacy, redis_server,
                                                  key, tmp_path):
    import redis

    model = weights((5, 3), dtype=np.float16)
    comm = RedisComm(legacy_daemon.trusted_ns, socket=legacy_daemon.socket)
    assert comm.Push(model, key=key) == [True]

    done = run_legacy("pull", "--namespace", legacy_daemon.trusted_ns, "--key", key,
                      "--npy", str(tmp_path / "out.npy"))
    assert done.returncode == 0, done.stderr
    pulled = np.load(tmp_path / "out.npy")
    assert pulled.dtype == model.dtype and np.array_equal(pulled, model)

    # Exactly the legacy hash.
    conn = redis.Redis.from_url(redis_server.url)
    name = f"{legacy_daemon.trusted_ns}_key-value:{key}:0"
    stored = conn.hgetall(name)
    assert set(stored) == {b"updater", b"content", b"lastUpdatedTime"}
    assert stored[b"updater"] == b"node-legacy"
    assert np.array_equal(pickle.loads(zlib.decompress(stored[b"content"])), model)
    assert 0 < conn.ttl(name) <= 3600


def test_legacy_pull_of_a_missing_key(legacy_daemon, run_legacy, key, tmp_path):
    comm = RedisComm(legacy_daemon.trusted_ns, socket=legacy_daemon.socket)
    local = weights()
    assert comm.Pull(local, key=key)[1] is False
    done = run_legacy("pull", "--namespace", legacy_daemon.trusted_ns, "--key", key,
                      "--npy", str(tmp_path / "out.npy"))
    assert done.returncode == 3


def test_legacy_average_and_weight_difference(legacy_daemon, key):
    comm = RedisComm(legacy_daemon.trusted_ns, socket=legacy_daemon.socket)
    remote, local = weights(), weights()
    comm.Push(remote, key=key)
    averaged, found, difference = comm.Pull(local, key=key, average=True, calcWD=True)
    assert found
    np.testing.assert_array_equal(averaged, np.mean([remote, local], axis=0))
    np.testing.assert_array_equal(difference, remote - local)
    # Lists of layers, as pickled models often are, combine layer by layer.
    layers_remote, layers_local = [weights((2, 2)), weights((3,))], [weights((2, 2)), weights((3,))]
    comm.Push(layers_remote, key=key)
    averaged, _, difference = comm.Pull(layers_local, key=key, average=True, calcWD=True)
    for a, r, l in zip(averaged, layers_remote, layers_local):
        np.testing.assert_array_equal(a, np.mean([r, l], axis=0))
    for d, r, l in zip(difference, layers_remote, layers_local):
        np.testing.assert_array_equal(d, r - l)


def test_legacy_mapper_gathers_both_writers(legacy_daemon, run_legacy, key, tmp_path):
    namespace = f"{legacy_daemon.trusted_ns}"
    old = weights((2, 2))
    np.save(tmp_path / "old.npy", old)
    assert run_legacy("push", "--namespace", namespace, "--key", key + "old",
                      "--npy", str(tmp_path / "old.npy")).returncode == 0
    mapper = Mapper(namespace, socket=legacy_daemon.socket)
    new = weights((2, 2))
    mapper.Map(new, key + "new")
    gathered = mapper.AllGather(withUpdater=True)
    model, updater = gathered[key + "old"]
    assert updater == "legacy-node" and np.array_equal(model, old)
    model, updater = gathered[key + "new"]
    assert updater == "node-legacy" and np.array_equal(model, new)


def test_legacy_namespace_refuses_metadata_and_colons(legacy_daemon, key):
    with legacy_daemon.client() as client:
        with pytest.raises(InvalidArgument, match="metadata"):
            client.push(legacy_daemon.trusted_ns, key, b"x", metadata={"a": b"b"})
        with pytest.raises(InvalidArgument, match="metadata"):
            client.push(legacy_daemon.trusted_ns, key, np.ones(3))  # an array needs its metadata
        with pytest.raises(InvalidArgument, match="':'"):
            client.push(legacy_daemon.trusted_ns, "a:b", b"x")
        # Plain bytes are fine, and come back at version 0 (deleted after:
        # they are no pickle, and would spoil a gather of the namespace).
        client.push(legacy_daemon.trusted_ns, key, b"raw bytes")
        try:
            model = client.pull(legacy_daemon.trusted_ns, key)
            assert (model.data, model.version, model.updater) == (b"raw bytes", 0, "node-legacy")
        finally:
            assert client.delete(legacy_daemon.trusted_ns, key)
