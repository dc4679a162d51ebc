"""Python client of modelsync, the per-node daemon that stores models
chunked, compressed and versioned in a shared Redis.

    from modelsync import Client
    with Client() as ms:                       # /tmp/modelsync.sock or $MODELSYNC_SOCKET
        ms.push("team", "weights", array)      # numpy arrays travel as raw bytes
        model = ms.pull("team", "weights")     # model.value is the array again
        mean = ms.aggregate("team", ["w1", "w2"], op="mean")   # combined by the daemon

`modelsync.legacy` has the drop-in replacement of the legacy RedisComm/Mapper;
`modelsync.federated` the rounds of federated averaging (`Federator`).
"""
from .client import (CHANNEL_OPTIONS, DEFAULT_SOCKET, ELEMENT_TYPES, MAX_MESSAGE_BYTES, OPERATIONS,
                     Client)
from .errors import (Aborted, DataLoss, DeadlineExceeded, FailedPrecondition, Internal,
                     InvalidArgument, ModelSyncError, NotFound, PickleNotTrusted,
                     ResourceExhausted, Unavailable, Unimplemented)
from .federated import Federator
from .records import (AggregateResult, Commit, DaemonStatus, Model, ModelHeader, NamespaceInfo,
                      PushResult)

__version__ = "0.1.0"

__all__ = [
    "Client", "DEFAULT_SOCKET", "MAX_MESSAGE_BYTES", "CHANNEL_OPTIONS",
    "OPERATIONS", "ELEMENT_TYPES", "Federator",
    "Commit", "Model", "ModelHeader", "PushResult", "AggregateResult", "DaemonStatus", "NamespaceInfo",
    "ModelSyncError", "NotFound", "InvalidArgument", "Aborted", "ResourceExhausted",
    "Unavailable", "DeadlineExceeded", "DataLoss", "Internal", "Unimplemented",
    "FailedPrecondition", "PickleNotTrusted",
]
