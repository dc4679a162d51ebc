"""The client of the modelsync daemon, over its Unix socket."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Tuple

import grpc
import numpy as np

from . import arrays
from ._proto import modelsync_pb2 as pb
from ._proto import modelsync_pb2_grpc as pb_grpc
from .errors import DataLoss, from_rpc_error
from .records import (AggregateResult, Commit, DaemonStatus, Model, ModelHeader, NamespaceInfo,
                      PushResult)

#: Where the daemon listens unless told otherwise (MODELSYNC_SOCKET overrides it).
DEFAULT_SOCKET = "/tmp/modelsync.sock"

#: The largest data message this client sends: the daemon's default limit.
MAX_MESSAGE_BYTES = 1 << 20

#: grpcio (1.6x and later) sends a Unix socket's path as the HTTP/2
#: `:authority`, which the daemon's HTTP/2 server rejects (the call fails
#: with INTERNAL, "RST_STREAM with error code 1"). Naming the authority
#: "localhost", as the daemon's own CLI does, avoids it. Every other option
#: keeps grpcio's default; messages stay far below its 4 MiB limit.
CHANNEL_OPTIONS = (("grpc.default_authority", "localhost"),)

Data = Any  # bytes-like, binary file, iterable of bytes-like, or numpy array

#: What `Client.aggregate` computes at each element position.
OPERATIONS = {
    "sum": pb.OPERATION_SUM,
    "mean": pb.OPERATION_MEAN,
    "weighted_mean": pb.OPERATION_WEIGHTED_MEAN,
    "min": pb.OPERATION_MIN,
    "max": pb.OPERATION_MAX,
}

#: The element types the daemon combines, as numpy dtypes.
ELEMENT_TYPES = {
    np.dtype("<f4"): pb.ELEMENT_TYPE_FLOAT32,
    np.dtype("<f8"): pb.ELEMENT_TYPE_FLOAT64,
}


class Client:
    """A connection to the modelsync daemon of this node.

    `socket` defaults to $MODELSYNC_SOCKET, then /tmp/modelsync.sock.
    `timeout` (seconds) applies to every call; None waits as long as it takes.
    Use it as a context manager, or call `close()`."""

    def __init__(self, socket: Optional[str] = None, *, timeout: Optional[float] = None,
                 options: Iterable[Tuple[str, Any]] = ()):
        self.socket = socket or os.environ.get("MODELSYNC_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        merged = dict(CHANNEL_OPTIONS)
        merged.update(options)
        self._channel = grpc.insecure_channel(f"unix:{self.socket}", options=list(merged.items()))
        self._stub = pb_grpc.ModelSyncStub(self._channel)
        self._piece_size: Optional[int] = None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(socket={self.socket!r})"

    # -- writing ---------------------------------------------------------

    def push(self, namespace: str, key: str, data: Data,
             metadata: Optional[Mapping[str, Any]] = None, ttl: Optional[int] = None,
             codec: Optional[str] = None, *, expected_version: Optional[int] = None) -> PushResult:
        """Stores `data` as a new version of (namespace, key).

        `data` is bytes/bytearray/memoryview, a binary file object, an
        iterable of byte chunks, or a numpy array (sent as its raw bytes
        with its dtype, shape and order in the reserved metadata; see
        `modelsync.arrays`). It is streamed in messages of at most 1 MiB and
        never gathered whole. `metadata` values are bytes (str is encoded as
        UTF-8); names starting with "modelsync." are reserved. `ttl` is in
        seconds; `codec` is "auto", "none", "zstd", "zlib" or "shuffle-zstd"
        (a level may follow a colon), else the namespace's codec (by
        default "auto"); the result names the codec used. With `expected_version` the push commits only
        if the key is at that version now (0: absent), else raises
        `Aborted`."""
        entries = _user_metadata(metadata)
        size = self._message_limit()
        raw_size, pieces = _pieces(data, size, entries)
        header = _push_header(namespace, key, entries, raw_size, ttl, codec, expected_version)
        return self._send(header, pieces)

    def _send(self, header: pb.PushHeader, pieces: Iterable) -> PushResult:
        """Pushes the header, then every non-empty piece, as one push."""
        failure = []

        def requests() -> Iterator[pb.PushRequest]:
            yield pb.PushRequest(header=header)
            try:
                for piece in pieces:
                    if len(piece):
                        yield pb.PushRequest(data=bytes(piece))
            except BaseException as e:  # re-raised below, instead of grpc's CANCELLED
                failure.append(e)
                raise

        try:
            response = self._stub.Push(requests(), timeout=self.timeout)
        except grpc.RpcError as e:
            if failure:
                raise failure[0] from None
            raise from_rpc_error(e) from None
        return PushResult.from_proto(response)

    def delete(self, namespace: str, key: str) -> bool:
        """Removes a model and all its versions; False when there was none."""
        request = pb.DeleteRequest(namespace=namespace, key=key)
        return self._unary(self._stub.Delete, request).deleted

    # -- reading ---------------------------------------------------------

    def pull(self, namespace: str, key: str, *, newer_than: Optional[int] = None,
             wait: Optional[float] = None) -> Model:
        """The newest version of (namespace, key), whole. Raises `NotFound`
        when the key does not exist. An array is filled into a preallocated
        buffer as the data streams in: it is the only full copy.

        With `newer_than` (a version), answers only with a newer version:
        when there is none yet, waits up to `wait` seconds (60 by default)
        for one to be committed, then raises `DeadlineExceeded`. `wait`
        alone waits for the key to exist. Nothing polls: the daemon hears
        of the commit when it happens."""
        request = pb.PullRequest(namespace=namespace, key=key,
                                 **_waiting(newer_than, wait))
        call = self._stub.Pull(request, timeout=self._timeout_for(request.wait_ms))
        try:
            first = next(call, None)
            if first is None or first.WhichOneof("message") != "header":
                raise DataLoss("the daemon's answer did not start with a header")
            header = ModelHeader.from_proto(first.header)
            value = _receive(header, call)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        except BaseException:
            call.cancel()
            raise
        return Model(**vars(header), value=value)

    def exists(self, namespace: str, key: str) -> bool:
        """Whether (namespace, key) exists now."""
        return self.head(namespace, key) is not None

    def head(self, namespace: str, key: str, *, newer_than: Optional[int] = None,
             wait: Optional[float] = None) -> Optional[ModelHeader]:
        """The header of the newest version of (namespace, key), or None.
        `newer_than` and `wait` wait for a newer version as in `pull`."""
        request = pb.ExistsRequest(namespace=namespace, key=key, **_waiting(newer_than, wait))
        try:
            answer = self._stub.Exists(request, timeout=self._timeout_for(request.wait_ms))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return ModelHeader.from_proto(answer.header) if answer.exists else None

    def watch(self, namespace: str, keys: Optional[Iterable[str]] = None, *,
              current: bool = False) -> Iterator[Commit]:
        """Every commit in `namespace` (of `keys` only, when given) from now
        on, as it happens; first the current version of each model with
        `current=True`. It runs until the caller stops iterating. A commit
        whose announcement was lost arrives within the daemon's
        check_interval, and several commits of one model in such a gap may
        come as the newest alone."""
        request = pb.WatchRequest(namespace=namespace, keys=list(keys or ()), current=current)
        call = self._stub.Watch(request)
        try:
            for commit in call:
                yield Commit(commit.key, commit.version, commit.updater)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    def list(self, namespace: str) -> Iterator[ModelHeader]:
        """The header of every model in `namespace`, streamed as they come."""
        call = self._stub.List(pb.ListRequest(namespace=namespace), timeout=self.timeout)
        try:
            for answer in call:
                yield ModelHeader.from_proto(answer.header)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()  # a no-op once the stream is done; ends it when the caller stops early

    # -- aggregating -----------------------------------------------------

    def aggregate(self, namespace: str, keys: Optional[Iterable[str]] = None,
                  op: str = "mean", dtype: Any = np.float32,
                  weights: Optional[Mapping[str, float]] = None) -> np.ndarray:
        """The element-wise `op` of the models `keys` of `namespace` (every
        model of it when None), computed by the daemon as it streams them
        from Redis, so that no model but the result reaches this process.

        `op` is "sum", "mean", "weighted_mean", "min" or "max"; "mean" with
        `weights` (key -> weight, such as sample counts) is the weighted mean.
        `dtype` is float32 or float64: the inputs' element type, and the
        result's. The result has the inputs' shape when they share one, else
        it is flat. Refusals raise `InvalidArgument` (sizes or dtypes differ,
        bad weights), `NotFound` (a key is missing) or `FailedPrecondition`
        (a legacy namespace)."""
        call, header = self._open_aggregate(namespace, keys, op, dtype, weights)
        try:
            builder = arrays.ArrayBuilder(header.metadata, header.raw_size)
            for piece in _aggregate_data(call):
                builder.write(piece)
            return builder.finish()
        except ValueError as e:
            raise DataLoss(f"aggregation of {namespace}: {e}") from None
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()  # a no-op once the stream is done

    def aggregate_into(self, namespace: str, keys: Optional[Iterable[str]], op: str,
                       target_key: str, *, dtype: Any = np.float32,
                       weights: Optional[Mapping[str, float]] = None,
                       metadata: Optional[Mapping[str, Any]] = None, ttl: Optional[int] = None,
                       codec: Optional[str] = None, expected_version: Optional[int] = None,
                       check_inputs: Optional[Callable[[List[ModelHeader]], None]] = None,
                       ) -> AggregateResult:
        """Like `aggregate`, but stores the result as a new version of
        (namespace, target_key) instead of returning it: each piece of the
        Aggregate stream is sent on as a piece of a Push on the same
        channel, so the result is never held here, not even once. The
        result keeps its array metadata; `metadata`, `ttl`, `codec` and
        `expected_version` are as for `push`. `check_inputs`, when given, is
        called with the inputs' headers (the exact versions being combined)
        before anything is stored; an exception it raises ends the call and
        is raised here. Nothing is stored if the aggregation fails part-way."""
        entries = _user_metadata(metadata)
        call, header = self._open_aggregate(namespace, keys, op, dtype, weights)
        inputs = [ModelHeader.from_proto(h) for h in header.inputs]
        try:
            if check_inputs is not None:
                check_inputs(inputs)
            entries.update(header.metadata)
            push_header = _push_header(namespace, target_key, entries, header.raw_size, ttl,
                                       codec, expected_version)
            pushed = self._send(push_header, _converted(_aggregate_data(call)))
        finally:
            call.cancel()
        return AggregateResult(pushed, inputs)

    def _open_aggregate(self, namespace, keys, op, dtype, weights):
        """Starts an Aggregate call; answers it and its header."""
        request = pb.AggregateRequest(
            namespace=namespace, keys=list(keys or ()), element_type=_element_type(dtype),
            operation=_operation(op, weights),
            weights={str(k): float(w) for k, w in (weights or {}).items()})
        call = self._stub.Aggregate(request, timeout=self.timeout)
        try:
            first = next(call, None)
            if first is None or first.WhichOneof("message") != "header":
                raise DataLoss("the daemon's answer did not start with a header")
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        except BaseException:
            call.cancel()
            raise
        return call, first.header

    # -- the daemon ------------------------------------------------------

    def status(self) -> DaemonStatus:
        """What the daemon says of itself: identity address, Redis, limits."""
        return DaemonStatus.from_proto(self._unary(self._stub.Status, pb.StatusRequest()))

    def namespace(self, namespace: str) -> NamespaceInfo:
        """How `namespace` is stored: layout, codec, chunk size, TTL."""
        request = pb.NamespaceRequest(namespace=namespace)
        return NamespaceInfo.from_proto(self._unary(self._stub.Namespace, request))

    # -- internals -------------------------------------------------------

    def _unary(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _timeout_for(self, wait_ms: int) -> Optional[float]:
        """The client's timeout, stretched to cover a wait the call asks for."""
        if self.timeout is None:
            return None
        return self.timeout + wait_ms / 1000

    def _message_limit(self) -> int:
        """1 MiB, or less when the daemon says it takes less."""
        if self._piece_size is None:
            announced = self.status().max_message_bytes
            self._piece_size = min(MAX_MESSAGE_BYTES, announced or MAX_MESSAGE_BYTES)
        return self._piece_size


def _waiting(newer_than: Optional[int], wait: Optional[float]) -> dict:
    """The request fields of a wait for a newer version."""
    if newer_than is None and wait is None:
        return {}
    if wait is None:
        wait = 60.0
    if not 0 <= wait <= 86400:
        raise ValueError(f"wait={wait} is not between 0 and 86400 seconds")
    fields = {"wait_ms": round(wait * 1000)}
    if newer_than is not None:
        fields["newer_than"] = newer_than
    return fields


def _push_header(namespace, key, metadata, raw_size, ttl, codec, expected_version):
    header = pb.PushHeader(namespace=namespace, key=key, metadata=metadata, codec=codec or "")
    if ttl is not None:
        header.ttl_seconds = int(ttl)
    if raw_size is not None:
        header.raw_size = raw_size
    if expected_version is not None:
        header.expected_version = int(expected_version)
    return header


def _element_type(dtype) -> int:
    wanted = np.dtype(dtype)
    element = ELEMENT_TYPES.get(wanted.newbyteorder("<") if wanted.byteorder == "=" else wanted)
    if element is None:
        raise ValueError(f"the daemon aggregates little-endian float32 or float64, not {wanted.str}")
    return element


def _operation(op: str, weights) -> int:
    if op == "mean" and weights is not None:
        op = "weighted_mean"
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}: give one of {', '.join(OPERATIONS)}")
    return OPERATIONS[op]


def _aggregate_data(call) -> Iterator[bytes]:
    for message in call:
        if message.WhichOneof("message") != "data":
            raise DataLoss("the daemon sent a second header in one aggregation")
        yield message.data


def _converted(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """`pieces`, with a failure of the call they come from raised as the
    client's own error rather than grpc's."""
    try:
        yield from pieces
    except grpc.RpcError as e:
        raise from_rpc_error(e) from None


def _user_metadata(metadata: Optional[Mapping[str, Any]]) -> dict:
    entries = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str):
            raise TypeError(f"metadata names are str, not {type(name).__name__}")
        if name.startswith(arrays.RESERVED_PREFIX):
            raise ValueError(f"metadata name {name!r}: names starting with "
                             f"{arrays.RESERVED_PREFIX!r} are reserved for the client")
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value)
        else:
            raise TypeError(f"metadata {name!r}: values are bytes or str, not {type(value).__name__}")
        entries[name] = value
    return entries


def _pieces(data: Data, size: int, metadata: dict) -> Tuple[Optional[int], Iterable]:
    """The raw size (when known) and the pieces of at most `size` bytes of
    `data`; adds the array entries to `metadata` for an array."""
    if isinstance(data, np.generic):
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        metadata.update(arrays.metadata_for(data))
        return data.nbytes, arrays.pieces(data, size)
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = _byte_view(data)
        return len(view), (view[i:i + size] for i in range(0, len(view), size))
    if hasattr(data, "read"):
        return None, _read_file(data, size)
    if isinstance(data, str):
        raise TypeError("data is str; encode it to bytes first")
    if isinstance(data, Iterable):
        return None, _resplit(data, size)
    raise TypeError(f"cannot push a {type(data).__name__}: give bytes, a binary file, "
                    "an iterable of bytes or a numpy array")


def _byte_view(data) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")  # needs a C-contiguous buffer, as bytes() would
    return view


def _read_file(file, size: int) -> Iterator[bytes]:
    while True:
        piece = file.read(size)
        if not piece:
            return
        if isinstance(piece, str):
            raise TypeError("the file is open in text mode; open it with 'rb'")
        yield piece


def _resplit(chunks: Iterable, size: int) -> Iterator[memoryview]:
    for chunk in chunks:
        if isinstance(chunk, str) or not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"the iterator gave a {type(chunk).__name__}, not bytes")
        view = _byte_view(chunk)
        for start in range(0, len(view), size):
            yield view[start:start + size]


def _receive(header: ModelHeader, messages) -> Any:
    """The value of a pull, from its data messages."""
    def data():
        for message in messages:
            if message.WhichOneof("message") != "data":
                raise DataLoss("the daemon sent a second header in one pull")
            yield message.data

    if arrays.is_array(header.metadata):
        try:
            builder = arrays.ArrayBuilder(header.metadata, header.raw_size)
            for piece in data():
                builder.write(piece)
            return builder.finish()
        except ValueError as e:
            raise DataLoss(f"{header.namespace}/{header.key} v{header.version}: {e}") from None
    value = b"".join(data())
    if len(value) != header.raw_size:
        raise DataLoss(f"{header.namespace}/{header.key} v{header.version}: received "
                       f"{len(value)} bytes, the header announced {header.raw_size}")
    return value
