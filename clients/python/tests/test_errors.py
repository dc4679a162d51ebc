"""Failures surface as exceptions that keep the gRPC code and the daemon's message."""
import grpc
import pytest

from modelsync import Client, InvalidArgument, ModelSyncError, NotFound, Unavailable, errors


def test_missing_key_is_not_found(client, namespace):
    with pytest.raises(NotFound) as caught:
        client.pull(namespace, "missing")
    error = caught.value
    assert isinstance(error, ModelSyncError)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert "missing" in error.details and namespace in error.details


@pytest.mark.parametrize("bad", ["", "tab\there", "x" * 10_000])
def test_bad_namespace_is_invalid_argument(client, bad):
    with pytest.raises(InvalidArgument) as caught:
        client.pull(bad, "k")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "namespace" in caught.value.details
    with pytest.raises(InvalidArgument):
        client.push(bad, "k", b"data")
    with pytest.raises(InvalidArgument):
        client.exists(bad, "k")
    with pytest.raises(InvalidArgument):
        list(client.list(bad))
    with pytest.raises(InvalidArgument):
        client.delete(bad, "k")


def test_bad_key_is_invalid_argument(client, namespace):
    with pytest.raises(InvalidArgument, match="key"):
        client.push(namespace, "", b"data")


def test_no_daemon_is_unavailable(tmp_path):
    with Client(str(tmp_path / "nobody.sock"), timeout=5) as client:
        with pytest.raises(Unavailable) as caught:
            client.status()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_every_code_has_its_class():
    for code in grpc.StatusCode:
        if code == grpc.StatusCode.OK:
            continue
        cls = errors._BY_CODE[code]
        assert cls.code_class == code
        assert issubclass(cls, ModelSyncError)


def test_unsupported_data_is_a_type_error(client, namespace):
    with pytest.raises(TypeError):
        client.push(namespace, "k", "text is not bytes")
    with pytest.raises(TypeError):
        client.push(namespace, "k", 42)
    with pytest.raises(TypeError):
        client.push(namespace, "k", iter(["text"]))
