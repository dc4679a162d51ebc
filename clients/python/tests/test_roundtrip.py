"""Push and pull through a real daemon: bytes, files, iterators, arrays."""
import io

import numpy as np
import pytest

from modelsync import MAX_MESSAGE_BYTES, Model

MIB = 1 << 20


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@pytest.mark.parametrize("size", [0, 1, MIB, MIB + 1, 3 * MIB + 17])
def test_bytes_round_trip(client, namespace, size):
    data = pattern(size)
    result = client.push(namespace, "k", data)
    assert (result.version, result.raw_size) == (1, size)
    model = client.pull(namespace, "k")
    assert isinstance(model, Model)
    assert model.data == data and model.value == data
    assert (model.version, model.raw_size, model.updater) == (1, size, "node-a")
    assert model.updated_at_ms > 0


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_round_trip(client, namespace, kind):
    data = pattern(MIB + 5)
    client.push(namespace, "k", kind(data))
    assert client.pull(namespace, "k").data == data


def test_file_object_round_trip(client, namespace, tmp_path):
    data = pattern(2 * MIB + 3)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        result = client.push(namespace, "file", f)
    assert result.raw_size == len(data)
    assert client.pull(namespace, "file").data == data
    client.push(namespace, "bytesio", io.BytesIO(data))
    assert client.pull(namespace, "bytesio").data == data


def test_iterator_round_trip(client, namespace):
    # Chunks larger than a message are split, empty ones skipped.
    chunks = [b"", pattern(10), pattern(3 * MIB), b"", pattern(MIB - 1)]
    result = client.push(namespace, "k", iter(chunks))
    assert result.raw_size == sum(map(len, chunks))
    assert client.pull(namespace, "k").data == b"".join(chunks)


def test_every_message_is_at_most_one_mib(client, namespace, monkeypatch):
    from modelsync._proto import modelsync_pb2

    sizes = []
    original = modelsync_pb2.PushRequest

    def spy(**kwargs):
        if "data" in kwargs:
            sizes.append(len(kwargs["data"]))
        return original(**kwargs)

    monkeypatch.setattr("modelsync.client.pb.PushRequest", spy)
    client.push(namespace, "k", np.zeros(5 * MIB + 3, dtype=np.uint8))
    client.push(namespace, "k", iter([pattern(4 * MIB)]))
    assert sizes and max(sizes) <= MAX_MESSAGE_BYTES


ARRAYS = {
    "float32": np.random.default_rng(1).standard_normal((64, 33)).astype(np.float32),
    "big-endian >f8": np.arange(1000, dtype=">f8").reshape(10, 100) / 7,
    "fortran": np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4)),
    "fortran big-endian": np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4)),
    "float16": np.linspace(-3, 3, 1001, dtype=np.float16),
    "little-endian <f2": np.arange(7, dtype="<f2"),
    "int8": np.arange(-128, 128, dtype=np.int8),
    "0-d": np.array(3.25, dtype=np.float64),
    "empty": np.zeros((0,), dtype=np.float32),
    "empty 2-d": np.zeros((3, 0), dtype=">f4"),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, -3j], dtype=np.complex128),
    "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[ns]"),
    "large": np.arange(3 * MIB // 8 + 5, dtype=np.float64),
    "non-contiguous": np.arange(200, dtype=np.float32).reshape(20, 10)[::3, 1::2],
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_array_round_trip(client, namespace, name):
    array = ARRAYS[name]
    client.push(namespace, "a", array)
    model = client.pull(namespace, "a")
    value = model.value
    assert isinstance(value, np.ndarray)
    assert value.dtype == array.dtype and value.dtype.str == array.dtype.str
    assert value.shape == array.shape
    assert np.array_equal(value, array)
    assert model.raw_size == array.nbytes
    if array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous:
        assert value.flags.f_contiguous and not value.flags.c_contiguous
    assert model.metadata["modelsync.dtype"] == array.dtype.str.encode()


def test_array_metadata_entries(client, namespace):
    array = np.asfortranarray(np.zeros((2, 3), dtype=">f4"))
    client.push(namespace, "a", array)
    metadata = client.head(namespace, "a").metadata
    assert metadata["modelsync.dtype"] == b">f4"
    assert metadata["modelsync.shape"] == b"[2, 3]"
    assert metadata["modelsync.order"] == b"F"


def test_array_data_is_its_raw_bytes(client, namespace):
    array = np.asfortranarray(np.arange(6, dtype="<u2").reshape(2, 3))
    client.push(namespace, "a", array)
    assert client.pull(namespace, "a").data == array.tobytes(order="F")


def test_object_arrays_are_refused(client, namespace):
    with pytest.raises(TypeError, match="pickle"):
        client.push(namespace, "a", np.array([{"a": 1}], dtype=object))


def test_metadata_is_byte_exact(client, namespace):
    metadata = {"every-byte": bytes(range(256)), "empty": b"", "nul": b"\x00\x00",
                "text": "héllo", "utf8-invalid": b"\xff\xfe"}
    client.push(namespace, "k", b"payload", metadata=metadata)
    expected = {**metadata, "text": "héllo".encode()}
    assert client.pull(namespace, "k").metadata == expected
    assert client.head(namespace, "k").metadata == expected
    [header] = client.list(namespace)
    assert header.metadata == expected


def test_array_keeps_user_metadata(client, namespace):
    client.push(namespace, "a", np.ones(3), metadata={"epoch": b"7"})
    assert client.pull(namespace, "a").metadata["epoch"] == b"7"


def test_reserved_metadata_names_are_refused(client, namespace):
    with pytest.raises(ValueError, match="reserved"):
        client.push(namespace, "k", b"x", metadata={"modelsync.dtype": b"<f4"})


def test_versions_exists_list_delete(client, namespace):
    assert not client.exists(namespace, "k")
    assert client.head(namespace, "k") is None
    assert client.push(namespace, "k", b"one").version == 1
    assert client.push(namespace, "k", b"two").version == 2
    client.push(namespace, "other", b"x")
    assert client.exists(namespace, "k")
    header = client.head(namespace, "k")
    assert (header.version, header.raw_size, header.updater) == (2, 3, "node-a")
    assert client.pull(namespace, "k").data == b"two"
    assert sorted(h.key for h in client.list(namespace)) == ["k", "other"]
    assert client.delete(namespace, "k") is True
    assert client.delete(namespace, "k") is False
    assert not client.exists(namespace, "k")
    assert [h.key for h in client.list(namespace)] == ["other"]


def test_ttl_and_codec(client, namespace):
    client.push(namespace, "k", pattern(5000), ttl=120, codec="zlib")
    header = client.head(namespace, "k")
    assert header.codec == "zlib"
    assert 0 < header.ttl_ms <= 120_000
    client.push(namespace, "n", pattern(5000), codec="none")
    assert client.head(namespace, "n").codec == "none"
    assert client.pull(namespace, "n").data == pattern(5000)


def test_the_default_codec_shuffles_float_arrays(client, namespace):
    weights = np.random.default_rng(3).normal(0, 0.05, 300_000).astype(np.float32)
    pushed = client.push(namespace, "w", weights)
    assert pushed.codec == "shuffle-zstd"
    assert client.head(namespace, "w").codec == "shuffle-zstd"
    assert np.array_equal(client.pull(namespace, "w").value, weights)
    # Text is not fixed-width numbers: it keeps zstd. (39 bytes a line, so
    # no element width lines up with its repeats.)
    text = b"notes on a model card, in plain words. " * 30_000
    assert client.push(namespace, "t", text).codec == "zstd"


def test_expected_version(client, namespace):
    from modelsync import Aborted

    client.push(namespace, "k", b"a", expected_version=0)
    client.push(namespace, "k", b"b", expected_version=1)
    with pytest.raises(Aborted):
        client.push(namespace, "k", b"c", expected_version=1)
    assert client.pull(namespace, "k").data == b"b"


def test_an_iterator_error_is_raised_as_itself(client, namespace):
    def chunks():
        yield b"partial"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        client.push(namespace, "k", chunks())
    assert not client.exists(namespace, "k")


def test_status(client):
    status = client.status()
    assert status.address == "node-a"
    assert status.redis_connected
    assert status.max_message_bytes == MAX_MESSAGE_BYTES


def test_namespace_info(client, namespace):
    from modelsync import Unimplemented

    try:
        info = client.namespace(namespace)
    except Unimplemented:
        pytest.skip("this daemon predates the Namespace call")
    assert info.namespace == namespace
    assert info.layout == "chunked"
    assert not info.trust_pickle
