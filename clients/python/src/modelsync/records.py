"""What the client's calls return: plain dataclasses, independent of the
generated protobuf classes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

import numpy as np


@dataclass(frozen=True)
class PushResult:
    """The version a push committed, and how it was stored."""

    version: int
    raw_size: int
    stored_size: int
    chunk_count: int
    #: The codec the version is stored with, as the daemon settled `auto`.
    codec: str = ""

    @classmethod
    def from_proto(cls, message) -> "PushResult":
        return cls(
            message.version,
            message.raw_size,
            message.stored_size,
            message.chunk_count,
            message.codec,
        )


@dataclass(frozen=True)
class Commit:
    """One commit seen by `Client.watch`: `key` is at `version` now, pushed by
    the daemon whose identity address is `updater`."""

    key: str
    version: int
    updater: str


@dataclass(frozen=True)
class ModelHeader:
    """What the daemon knows of one committed version of a model.

    `metadata` holds every entry byte-exact, the reserved `modelsync.*` ones
    of an array included."""

    namespace: str
    key: str
    version: int
    updater: str
    updated_at_ms: int
    raw_size: int
    metadata: Dict[str, bytes]
    codec: str
    stored_size: int
    chunk_count: int
    ttl_ms: int

    @classmethod
    def from_proto(cls, message) -> "ModelHeader":
        return cls(
            namespace=message.namespace,
            key=message.key,
            version=message.version,
            updater=message.updater,
            updated_at_ms=message.updated_at_ms,
            raw_size=message.raw_size,
            metadata=dict(message.metadata),
            codec=message.codec,
            stored_size=message.stored_size,
            chunk_count=message.chunk_count,
            ttl_ms=message.ttl_ms,
        )


@dataclass(frozen=True, eq=False)
class Model(ModelHeader):
    """A pulled model: its header's fields, and its content.

    `value` is the numpy array when the model was pushed as one, else the
    bytes. `data` is always the bytes; for an array it is made from the
    array on each access (one more full copy), so prefer `value` there."""

    value: Any = None

    @property
    def data(self) -> bytes:
        if isinstance(self.value, np.ndarray):
            order = "F" if self.metadata.get("modelsync.order") == b"F" else "C"
            return self.value.tobytes(order=order)
        return self.value

    def __repr__(self) -> str:
        if isinstance(self.value, np.ndarray):
            kind = f"array {self.value.dtype.str} {list(self.value.shape)}"
        else:
            kind = f"{len(self.value)} bytes"
        return (f"Model({self.namespace!r}, {self.key!r}, version={self.version}, "
                f"updater={self.updater!r}, {kind})")


@dataclass(frozen=True)
class NamespaceInfo:
    """How one namespace is stored. `layout` is "chunked" or "legacy";
    `trust_pickle` (legacy only) says the daemon's configuration trusts every
    writer, the one case where `modelsync.legacy` unpickles models."""

    namespace: str
    layout: str
    codec: str
    chunk_size: int
    ttl_seconds: int
    trust_pickle: bool

    @classmethod
    def from_proto(cls, message) -> "NamespaceInfo":
        return cls(message.namespace, message.layout, message.codec,
                   message.chunk_size, message.ttl_seconds, message.trust_pickle)


@dataclass(frozen=True)
class DaemonStatus:
    """What a daemon says of itself."""

    address: str
    labels: Dict[str, str]
    redis_endpoint: str
    redis_connected: bool
    version: str
    uptime_seconds: int
    calls_served: int
    max_message_bytes: int
    namespaces: List[NamespaceInfo] = field(default_factory=list)

    @classmethod
    def from_proto(cls, message) -> "DaemonStatus":
        return cls(
            address=message.address,
            labels=dict(message.labels),
            redis_endpoint=message.redis_endpoint,
            redis_connected=message.redis_connected,
            version=message.version,
            uptime_seconds=message.uptime_seconds,
            calls_served=message.calls_served,
            max_message_bytes=message.max_message_bytes,
            namespaces=[NamespaceInfo.from_proto(n) for n in message.namespaces],
        )


@dataclass(frozen=True)
class AggregateResult:
    """What `Client.aggregate_into` stored: the push of the result, and the
    header of every input at the exact version that was combined."""

    push: PushResult
    inputs: List[ModelHeader]

    @property
    def version(self) -> int:
        """The version the result was stored as."""
        return self.push.version
