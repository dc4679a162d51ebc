from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ElementType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ELEMENT_TYPE_UNSPECIFIED: _ClassVar[ElementType]
    ELEMENT_TYPE_FLOAT32: _ClassVar[ElementType]
    ELEMENT_TYPE_FLOAT64: _ClassVar[ElementType]

class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_UNSPECIFIED: _ClassVar[Operation]
    OPERATION_SUM: _ClassVar[Operation]
    OPERATION_MEAN: _ClassVar[Operation]
    OPERATION_WEIGHTED_MEAN: _ClassVar[Operation]
    OPERATION_MIN: _ClassVar[Operation]
    OPERATION_MAX: _ClassVar[Operation]
ELEMENT_TYPE_UNSPECIFIED: ElementType
ELEMENT_TYPE_FLOAT32: ElementType
ELEMENT_TYPE_FLOAT64: ElementType
OPERATION_UNSPECIFIED: Operation
OPERATION_SUM: Operation
OPERATION_MEAN: Operation
OPERATION_WEIGHTED_MEAN: Operation
OPERATION_MIN: Operation
OPERATION_MAX: Operation

class PushHeader(_message.Message):
    __slots__ = ("namespace", "key", "metadata", "ttl_seconds", "raw_size", "codec", "expected_version", "element_width")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    metadata: _containers.ScalarMap[str, bytes]
    ttl_seconds: int
    raw_size: int
    codec: str
    expected_version: int
    element_width: int
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., metadata: _Optional[_Mapping[str, bytes]] = ..., ttl_seconds: _Optional[int] = ..., raw_size: _Optional[int] = ..., codec: _Optional[str] = ..., expected_version: _Optional[int] = ..., element_width: _Optional[int] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: PushHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[PushHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("version", "raw_size", "stored_size", "chunk_count", "codec")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    STORED_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    version: int
    raw_size: int
    stored_size: int
    chunk_count: int
    codec: str
    def __init__(self, version: _Optional[int] = ..., raw_size: _Optional[int] = ..., stored_size: _Optional[int] = ..., chunk_count: _Optional[int] = ..., codec: _Optional[str] = ...) -> None: ...

class ModelHeader(_message.Message):
    __slots__ = ("namespace", "key", "version", "updater", "updated_at_ms", "raw_size", "metadata", "codec", "stored_size", "chunk_count", "ttl_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    STORED_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    version: int
    updater: str
    updated_at_ms: int
    raw_size: int
    metadata: _containers.ScalarMap[str, bytes]
    codec: str
    stored_size: int
    chunk_count: int
    ttl_ms: int
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., version: _Optional[int] = ..., updater: _Optional[str] = ..., updated_at_ms: _Optional[int] = ..., raw_size: _Optional[int] = ..., metadata: _Optional[_Mapping[str, bytes]] = ..., codec: _Optional[str] = ..., stored_size: _Optional[int] = ..., chunk_count: _Optional[int] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("namespace", "key", "newer_than", "wait_ms")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NEWER_THAN_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    newer_than: int
    wait_ms: int
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., newer_than: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class PullResponse(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ModelHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ModelHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ExistsRequest(_message.Message):
    __slots__ = ("namespace", "key", "newer_than", "wait_ms")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NEWER_THAN_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    newer_than: int
    wait_ms: int
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., newer_than: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class ExistsResponse(_message.Message):
    __slots__ = ("exists", "header")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    header: ModelHeader
    def __init__(self, exists: _Optional[bool] = ..., header: _Optional[_Union[ModelHeader, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ModelHeader
    def __init__(self, header: _Optional[_Union[ModelHeader, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("namespace", "key")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("address", "labels", "redis_endpoint", "redis_connected", "version", "uptime_seconds", "calls_served", "max_message_bytes", "namespaces", "redis_rtt_ms")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REDIS_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    REDIS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CALLS_SERVED_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    REDIS_RTT_MS_FIELD_NUMBER: _ClassVar[int]
    address: str
    labels: _containers.ScalarMap[str, str]
    redis_endpoint: str
    redis_connected: bool
    version: str
    uptime_seconds: int
    calls_served: int
    max_message_bytes: int
    namespaces: _containers.RepeatedCompositeFieldContainer[NamespaceInfo]
    redis_rtt_ms: float
    def __init__(self, address: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., redis_endpoint: _Optional[str] = ..., redis_connected: _Optional[bool] = ..., version: _Optional[str] = ..., uptime_seconds: _Optional[int] = ..., calls_served: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., namespaces: _Optional[_Iterable[_Union[NamespaceInfo, _Mapping]]] = ..., redis_rtt_ms: _Optional[float] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("namespace", "keys", "current")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    current: bool
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., current: _Optional[bool] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("key", "version", "updater")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATER_FIELD_NUMBER: _ClassVar[int]
    key: str
    version: int
    updater: str
    def __init__(self, key: _Optional[str] = ..., version: _Optional[int] = ..., updater: _Optional[str] = ...) -> None: ...

class NamespaceRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class NamespaceInfo(_message.Message):
    __slots__ = ("namespace", "layout", "codec", "chunk_size", "ttl_seconds", "trust_pickle")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRUST_PICKLE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    layout: str
    codec: str
    chunk_size: int
    ttl_seconds: int
    trust_pickle: bool
    def __init__(self, namespace: _Optional[str] = ..., layout: _Optional[str] = ..., codec: _Optional[str] = ..., chunk_size: _Optional[int] = ..., ttl_seconds: _Optional[int] = ..., trust_pickle: _Optional[bool] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("namespace", "keys", "element_type", "operation", "weights")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    element_type: ElementType
    operation: Operation
    weights: _containers.ScalarMap[str, float]
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., element_type: _Optional[_Union[ElementType, str]] = ..., operation: _Optional[_Union[Operation, str]] = ..., weights: _Optional[_Mapping[str, float]] = ...) -> None: ...

class AggregateHeader(_message.Message):
    __slots__ = ("element_count", "raw_size", "inputs", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    ELEMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    element_count: int
    raw_size: int
    inputs: _containers.RepeatedCompositeFieldContainer[ModelHeader]
    metadata: _containers.ScalarMap[str, bytes]
    def __init__(self, element_count: _Optional[int] = ..., raw_size: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[ModelHeader, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class AggregateResponse(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: AggregateHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[AggregateHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
