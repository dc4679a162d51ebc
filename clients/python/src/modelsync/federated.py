"""Federated rounds through modelsync daemons, without gathering models.

A round has three steps. Each worker submits its model through its own
node's daemon, under a key of its own. The head asks its daemon to combine
the workers' models (their mean, or their mean weighted by how many samples
each trained on) straight into the global key: the daemon streams them from
Redis chunk by chunk, so neither the head nor its daemon ever holds the
workers' models. Then each worker pulls the new global model.

    # on every worker
    fed = Federator("fleet")                  # this node's daemon
    fed.submit(weights, samples=1200)         # key "worker-<node address>"

    # on the head, once the workers have submitted
    version = Federator("fleet").aggregate(by_samples=True)

    # on every worker again
    weights = fed.global_model()

Any number of processes may share a daemon; workers are told apart by
`worker` (the daemon's identity address by default).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from .client import Client
from .errors import Aborted, NotFound
from .records import AggregateResult, ModelHeader, PushResult

#: The metadata entry in which a worker records how many samples its model
#: was trained on.
SAMPLES_METADATA = "federated.samples"

#: The metadata entry of the global model naming each worker's model and
#: version that went into it, as JSON.
INPUTS_METADATA = "federated.inputs"

#: Rounds of the head restarted when a worker submits again while its
#: sample count is being read, before giving up with `Aborted`.
RETRIES = 3


class _Resubmitted(Exception):
    """A worker's model changed between reading its sample count and
    combining it."""


class Federator:
    """One participant, worker or head, of federated rounds in `namespace`.

    `client` (or `socket`) names this node's daemon. Workers' models are
    stored under `worker_prefix + worker`; the combined model under
    `global_key`."""

    def __init__(self, namespace: str, *, client: Optional[Client] = None,
                 socket: Optional[str] = None, worker: Optional[str] = None,
                 global_key: str = "global", worker_prefix: str = "worker-"):
        self.namespace = namespace
        self.client = client or Client(socket)
        self.global_key = global_key
        self.worker_prefix = worker_prefix
        self._worker = worker
        #: The newest version of the global model this participant made or pulled.
        self.global_version: Optional[int] = None
        #: What the last `aggregate` combined and stored.
        self.last_round: Optional[AggregateResult] = None

    @property
    def worker_key(self) -> str:
        """The key this worker's model is submitted under."""
        if self._worker is None:
            self._worker = self.client.status().address
        return self.worker_prefix + self._worker

    # -- workers ---------------------------------------------------------

    def submit(self, model: Any, samples: Optional[int] = None) -> PushResult:
        """Stores this worker's model for the next round. `samples`, the
        number of samples it was trained on, weights it in
        `aggregate(by_samples=True)`."""
        metadata = {}
        if samples is not None:
            if int(samples) < 0:
                raise ValueError(f"samples is {samples}; it counts samples, so it is >= 0")
            metadata[SAMPLES_METADATA] = str(int(samples))
        return self.client.push(self.namespace, self.worker_key, np.asarray(model), metadata)

    def global_model(self, *, wait: Optional[float] = None) -> np.ndarray:
        """The newest global model. With `wait` (seconds), a worker that has
        already seen a global version waits for a newer one, the next
        round's, and raises `DeadlineExceeded` if none is committed in time;
        the first call waits for the global key to exist."""
        if wait is None:
            model = self.client.pull(self.namespace, self.global_key)
        else:
            model = self.client.pull(self.namespace, self.global_key,
                                     newer_than=self.global_version or 0, wait=wait)
        self.global_version = model.version
        return model.value

    # -- the head --------------------------------------------------------

    def workers(self) -> List[ModelHeader]:
        """The header of every submitted worker model, by key."""
        headers = [h for h in self.client.list(self.namespace)
                   if h.key.startswith(self.worker_prefix)]
        return sorted(headers, key=lambda h: h.key)

    def aggregate(self, op: str = "mean", *, by_samples: bool = False,
                  weights: Optional[Mapping[str, float]] = None,
                  dtype: Any = np.float32) -> int:
        """Combines every worker's model into the global key; returns the
        global model's new version. `op` is "mean" (the default), "sum",
        "min" or "max"; `by_samples` makes the mean weighted by each
        worker's submitted sample count, and `weights` (worker key ->
        weight) by weights of the caller's choosing."""
        for _ in range(RETRIES):
            headers = self.workers()
            if not headers:
                raise NotFound(f"no worker has submitted a model to {self.namespace!r} yet")
            chosen = _samples(headers) if by_samples else weights
            try:
                result = self._combine(headers, op, chosen, dtype, check=by_samples)
            except _Resubmitted:
                continue
            self.last_round = result
            self.global_version = result.version
            return result.version
        raise Aborted(f"workers kept submitting while the round of {self.namespace!r} "
                      f"was combined; {RETRIES} attempts failed")

    def _combine(self, headers: List[ModelHeader], op: str, weights, dtype,
                 check: bool) -> AggregateResult:
        expected = {h.key: h.version for h in headers}

        def same_versions(inputs: List[ModelHeader]) -> None:
            if check and {h.key: h.version for h in inputs} != expected:
                raise _Resubmitted()

        return self.client.aggregate_into(
            self.namespace, list(expected), op, self.global_key, dtype=dtype, weights=weights,
            metadata={INPUTS_METADATA: json.dumps(expected, sort_keys=True)},
            check_inputs=same_versions)


def _samples(headers: List[ModelHeader]) -> Dict[str, float]:
    weights = {}
    for header in headers:
        recorded = header.metadata.get(SAMPLES_METADATA)
        if recorded is None:
            raise ValueError(f"worker model {header.key!r} was submitted without samples; "
                             "submit(model, samples=N) on every worker to weight by samples")
        weights[header.key] = float(int(recorded))
    return weights
