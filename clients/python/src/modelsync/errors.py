"""The exceptions of the modelsync client.

Every failed call raises a `ModelSyncError` subclass chosen by the gRPC status
code, carrying that code (`.code`, a `grpc.StatusCode`) and the daemon's own
message (`.details`). Catch the subclass for what you can handle:

    NotFound            the key does not exist or has expired: push first
    InvalidArgument     the request is wrong (empty or bad name, bad codec...)
    Aborted             `expected_version` did not match: pull, then push again
    ResourceExhausted   a limit was hit, or Redis is out of memory
    Unavailable         the daemon or its Redis cannot be reached: retry later
    DeadlineExceeded    no answer in time: retry later
    DataLoss            what is stored is damaged: push the model again
    ...                 and one class for each other gRPC code
"""
from __future__ import annotations

import grpc


class ModelSyncError(Exception):
    """A call to the modelsync daemon failed."""

    #: The gRPC code of this class; the instance's `.code` says what was received.
    code_class = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str, code: grpc.StatusCode | None = None):
        super().__init__(details)
        self.details = details
        self.code = code if code is not None else self.code_class

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}"


class Cancelled(ModelSyncError):
    code_class = grpc.StatusCode.CANCELLED


class Unknown(ModelSyncError):
    code_class = grpc.StatusCode.UNKNOWN


class InvalidArgument(ModelSyncError):
    code_class = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(ModelSyncError):
    code_class = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ModelSyncError):
    code_class = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ModelSyncError):
    code_class = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(ModelSyncError):
    code_class = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ModelSyncError):
    code_class = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ModelSyncError):
    code_class = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ModelSyncError):
    code_class = grpc.StatusCode.ABORTED


class OutOfRange(ModelSyncError):
    code_class = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(ModelSyncError):
    code_class = grpc.StatusCode.UNIMPLEMENTED


class Internal(ModelSyncError):
    code_class = grpc.StatusCode.INTERNAL


class Unavailable(ModelSyncError):
    code_class = grpc.StatusCode.UNAVAILABLE


class DataLoss(ModelSyncError):
    code_class = grpc.StatusCode.DATA_LOSS


class Unauthenticated(ModelSyncError):
    code_class = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {
    cls.code_class: cls
    for cls in ModelSyncError.__subclasses__()
}


def from_rpc_error(error: grpc.RpcError) -> ModelSyncError:
    """The `ModelSyncError` for a failed gRPC call."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    cls = _BY_CODE.get(code, Unknown)
    return cls(details or code.name, code)


class PickleNotTrusted(FailedPrecondition):
    """A legacy-layout namespace whose configuration does not set
    `trust_pickle`: its models are pickles, and nothing is unpickled unless
    the daemon's configuration says every writer is trusted."""
