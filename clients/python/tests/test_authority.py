"""grpcio sends a Unix socket's path as the HTTP/2 :authority, which the
daemon's HTTP/2 server rejects; the client names "localhost" instead."""

import grpc
import pytest

from modelsync import CHANNEL_OPTIONS, Client
from modelsync._proto import modelsync_pb2 as pb
from modelsync._proto import modelsync_pb2_grpc as pb_grpc


def test_client_sets_the_authority():
    assert ("grpc.default_authority", "localhost") in CHANNEL_OPTIONS


def test_client_talks_to_the_real_daemon(daemon, namespace):
    print(f"grpcio {grpc.__version__}")
    with Client(daemon.socket) as client:
        assert client.status().address == "node-a"
        client.push(namespace, "k", b"hello")
        assert client.pull(namespace, "k").data == b"hello"


def test_a_bare_grpcio_channel_is_what_needs_it(daemon):
    """Documents why the option exists, with the grpcio that pip installed:
    a channel with grpcio's defaults fails where the client's works."""
    with grpc.insecure_channel(f"unix:{daemon.socket}") as channel:
        try:
            pb_grpc.ModelSyncStub(channel).Status(pb.StatusRequest(), timeout=10)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INTERNAL, e
            return
    pytest.skip(f"grpcio {grpc.__version__} and this daemon agree on the default authority; "
                "the option is then harmless")


def test_socket_from_environment(daemon, monkeypatch):
    monkeypatch.setenv("MODELSYNC_SOCKET", daemon.socket)
    with Client() as client:
        assert client.socket == daemon.socket
        assert client.status().address == "node-a"


def test_default_socket(monkeypatch):
    monkeypatch.delenv("MODELSYNC_SOCKET", raising=False)
    with Client() as client:
        assert client.socket == "/tmp/modelsync.sock"
