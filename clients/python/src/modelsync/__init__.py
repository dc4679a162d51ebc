"""Python client of modelsync, the per-node daemon that stores models
chunked, compressed and versioned in a shared Redis.

    from modelsync import Client
    with Client() as ms:                       # /tmp/modelsync.sock or $MODELSYNC_SOCKET
        ms.push("team", "weights", array)      # numpy arrays travel as raw bytes
        model = ms.pull("team", "weights")     # model.value is the array again

`modelsync.legacy` has the drop-in replacement of the legacy RedisComm/Mapper.
"""
from .client import CHANNEL_OPTIONS, DEFAULT_SOCKET, MAX_MESSAGE_BYTES, Client
from .errors import (Aborted, DataLoss, DeadlineExceeded, FailedPrecondition, Internal,
                     InvalidArgument, ModelSyncError, NotFound, PickleNotTrusted,
                     ResourceExhausted, Unavailable, Unimplemented)
from .records import Commit, DaemonStatus, Model, ModelHeader, NamespaceInfo, PushResult

__version__ = "0.1.0"

__all__ = [
    "Client", "DEFAULT_SOCKET", "MAX_MESSAGE_BYTES", "CHANNEL_OPTIONS",
    "Commit", "Model", "ModelHeader", "PushResult", "DaemonStatus", "NamespaceInfo",
    "ModelSyncError", "NotFound", "InvalidArgument", "Aborted", "ResourceExhausted",
    "Unavailable", "DeadlineExceeded", "DataLoss", "Internal", "Unimplemented",
    "FailedPrecondition", "PickleNotTrusted",
]
