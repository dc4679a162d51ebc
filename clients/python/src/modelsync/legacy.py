"""A drop-in replacement for the legacy Python client's RedisComm and Mapper.

    from modelsync.legacy import RedisComm, Mapper

    comm = RedisComm("fleet")                 # talks to this node's daemon
    comm.Push(weights, key="0x0")             # [True]
    model, found = comm.Pull(weights, key="0x0")
    avg, found = comm.Pull(weights, average=True)
    model, found, diff = comm.Pull(weights, calcWD=True)

How models travel depends on the namespace, as the daemon describes it:

* layout "chunked" (the default): a model is a numpy array (anything
  `numpy.asarray` turns into a non-object array), sent as its raw bytes with
  its dtype, shape and order. Nothing is pickled.
* layout "legacy" with `trust_pickle: true` in the daemon's configuration:
  models are pickled and unpickled exactly as the legacy client did, so that
  legacy nodes and this client can share the namespace during a migration.
  Unpickling runs code chosen by whoever wrote the model: that configuration
  trusts EVERY writer of the namespace (every node, and anyone who can write
  to its Redis). It is the only place this package ever unpickles anything.
* layout "legacy" without `trust_pickle`: refused with `PickleNotTrusted`.
"""
from __future__ import annotations

import logging
import pickle
from typing import Any, Dict, List, Optional

import numpy as np

from .arrays import DTYPE_KEY
from .client import Client
from .errors import FailedPrecondition, ModelSyncError, NotFound, PickleNotTrusted, Unimplemented
from .records import NamespaceInfo

log = logging.getLogger(__name__)

#: The key the legacy client used when none was given.
DEFAULT_KEY = "0x0"


class RedisComm:
    """One namespace of models, read and written through this node's daemon.

    `address` is the daemon's identity address: the updater of what it pushes."""

    def __init__(self, namespace: str, socket: Optional[str] = None, *,
                 client: Optional[Client] = None):
        self.namespace = namespace
        self.client = client or Client(socket)
        self.address = self.client.status().address
        self.info = _namespace_info(self.client, namespace)
        if self.info.layout == "legacy" and not self.info.trust_pickle:
            raise PickleNotTrusted(
                f"namespace {namespace!r} has the legacy layout, whose models are pickles, "
                "and the daemon's configuration does not set trust_pickle for it: "
                "refusing to unpickle. Set `trust_pickle: true` for it only if every "
                "writer of the namespace is trusted, or move it to the chunked layout.")
        self.pickled = self.info.layout == "legacy"

    def loadContract(self) -> None:
        """Kept for compatibility: checks that the daemon answers."""
        self.client.status()

    def Push(self, modelLocal: Any, key: str = DEFAULT_KEY, wait4Tx: Any = None) -> List[bool]:
        """Stores `modelLocal` under `key`: [True], or [False] when the daemon
        refused or could not be reached (the reason is logged). `wait4Tx` is
        accepted and ignored: a push is complete when it returns."""
        payload = self._encode(modelLocal)
        try:
            self.client.push(self.namespace, key, payload)
        except ModelSyncError as e:
            log.warning("push of %s/%s failed: %s", self.namespace, key, e)
            return [False]
        return [True]

    def Pull(self, modelLocal: Any, key: str = DEFAULT_KEY, calcWD: bool = False,
             average: bool = False):
        """The model stored under `key`: (model, True), or (modelLocal, False)
        when there is none.

        average=True returns the element-wise mean of the pulled model and
        `modelLocal` instead of the pulled model. calcWD=True adds a third
        element, the weight difference pulled - modelLocal (of the pulled
        model, not of the average), or None when the key is missing. Models
        that are lists, tuples or dicts of arrays are combined item by item."""
        try:
            pulled = self._decode(self.client.pull(self.namespace, key))
        except NotFound:
            return (modelLocal, False, None) if calcWD else (modelLocal, False)
        model = _combine(pulled, modelLocal, _mean) if average else pulled
        if calcWD:
            return model, True, _combine(pulled, modelLocal, np.subtract)
        return model, True

    def _encode(self, model: Any):
        if self.pickled:
            return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            array = np.asarray(model)
        except ValueError:  # ragged: a list of layers of different shapes
            array = np.empty(0, dtype=object)
        if array.dtype.hasobject:
            raise TypeError(
                f"namespace {self.namespace!r} stores numpy arrays, and a "
                f"{type(model).__name__} is not one (nor convertible to one without "
                "Python objects); only a legacy namespace with trust_pickle takes any object")
        return array

    def _decode(self, model):
        if self.pickled:
            return pickle.loads(model.data)  # trusted: see the module's docstring
        return model.value


class Mapper(RedisComm):
    """Every node's model in one namespace, as the legacy Mapper kept them."""

    def Map(self, model: Any, key: Optional[str] = None) -> List[bool]:
        """Stores `model` under `key` (this node's address when None)."""
        return self.Push(model, key=self.address if key is None else key)

    def AllGather(self, withUpdater: bool = False) -> Dict[str, Any]:
        """Every model of the namespace: key -> model, or key -> (model,
        updater) with withUpdater=True. A key that expires while gathering is
        left out."""
        gathered = {}
        for header in list(self.client.list(self.namespace)):
            try:
                model = self.client.pull(self.namespace, header.key)
            except NotFound:
                continue
            value = self._decode(model)
            gathered[header.key] = (value, model.updater) if withUpdater else value
        return gathered

    def Reduce(self, op: str = "mean", weights: Optional[Dict[str, float]] = None,
               keys: Optional[List[str]] = None, dtype: Any = None) -> np.ndarray:
        """The element-wise `op` ("mean", "sum", "weighted_mean", "min",
        "max") of the models under `keys` (every key when None), computed by
        the daemon chunk by chunk: unlike `AllGather`, no model but the
        result comes to this process. `weights` (key -> weight) makes "mean"
        a weighted mean. `dtype` (float32 or float64) is the models' element
        type; by default, that of the first model's array metadata, else
        float32. Only for chunked namespaces: a legacy namespace holds
        pickles, which the daemon cannot do arithmetic on."""
        if self.pickled:
            raise FailedPrecondition(
                f"namespace {self.namespace!r} has the legacy layout, whose models are "
                "pickles: Reduce needs a chunked namespace; use AllGather and reduce locally")
        if dtype is None:
            dtype = self._element_dtype(keys)
        return self.client.aggregate(self.namespace, keys, op=op, dtype=dtype, weights=weights)

    def _element_dtype(self, keys: Optional[List[str]]) -> np.dtype:
        """The dtype one of the models was pushed with, if a float one."""
        if keys:
            header = self.client.head(self.namespace, keys[0])
        else:
            header = next(iter(self.client.list(self.namespace)), None)
        named = header.metadata.get(DTYPE_KEY) if header is not None else None
        if named in (b"<f8", b"=f8"):
            return np.dtype(np.float64)
        return np.dtype(np.float32)

    def resetAll(self, model: Any) -> List[str]:
        """Writes `model` under every existing key; returns the keys written."""
        keys = [header.key for header in self.client.list(self.namespace)]
        payload = self._encode(model)
        for key in keys:
            self.client.push(self.namespace, key, payload)
        return keys


def _namespace_info(client: Client, namespace: str) -> NamespaceInfo:
    try:
        return client.namespace(namespace)
    except Unimplemented:
        # A daemon older than the Namespace call knows no layout but the
        # chunked one: nothing there is a pickle.
        return NamespaceInfo(namespace, "chunked", "", 0, 0, False)


def _mean(pulled, local):
    return np.mean([np.asarray(pulled), np.asarray(local)], axis=0)


def _combine(pulled, local, op):
    """op(pulled, local), item by item through lists, tuples and dicts."""
    if isinstance(pulled, dict):
        return {k: _combine(pulled[k], local[k], op) for k in pulled}
    if isinstance(pulled, (list, tuple)) and not isinstance(pulled, np.ndarray):
        if len(pulled) != len(local):
            raise ValueError(f"the pulled model has {len(pulled)} parts, the local one {len(local)}")
        return type(pulled)(_combine(p, l, op) for p, l in zip(pulled, local))
    return op(np.asarray(pulled), np.asarray(local))
