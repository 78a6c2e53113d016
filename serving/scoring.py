"""Model nodes: the Model Proxy sends a graph's matrix to model servers over the
KServe v2 gRPC protocol (`ModelInfer`) and returns their scores per row.

Nodes run in graph order; each one's input is the feature matrix plus the scores
of the nodes before it, as extra columns, so two models chain. A node with
several endpoints splits traffic by percent, sticky per id (`split_by`): the
same user always reaches the same endpoint while the percents stay put.
A node with `batch_size` splits the rows into calls of at most that many,
sent together and put back in row order. The node's calls are bounded by its
`timeout_ms` and by what is left of the request's deadline. What is sent and
how scores are read back is serving.kserve_tensors'.

Every call is counted per endpoint (vahini_model_calls_total by outcome, its
latency, rows scored), and a failed call is logged, at most once per 10 s per
endpoint and outcome.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import grpc
import numpy as np

from vahini.serving import metrics
from vahini.serving.api import kserve_v2_pb2_grpc as kpb_grpc
from vahini.serving.kserve_tensors import TensorPlan, infer_request, read_scores
from vahini.serving.per_graph import PerGraph
from vahini.serving.model_proxy import FeatureMatrix, NodeScores
from vahini.errors import DeadlineExceeded, EndpointRejected, StoreUnavailable, VahiniError
from vahini.logs import RateLimitedLog, get_logger
from vahini.registry.graphs import input_columns
from vahini.registry.model import Endpoint, ModelGraph, ScoreNode

log = get_logger(__name__)

TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
BAD_REPLY = "BAD_REPLY"  # the outcome label of a call that answered without readable scores
# gRPC waits up to 120 s between reconnects by default: a model server back from a
# restart would go unused that long. Scoring reconnects within a second instead.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000))


def choose(node: ScoreNode, context: Mapping[str, Sequence[str]]) -> Endpoint:
    """The endpoint for this request: by percent, sticky per `split_by` id."""
    if len(node.endpoints) == 1:
        return node.endpoints[0]
    slot = zlib.crc32(f"{node.name}:{context[node.split_by][0]}".encode()) % 100
    for endpoint in node.endpoints:
        if slot < endpoint.percent:
            return endpoint
        slot -= endpoint.percent
    return node.endpoints[-1]


def _tensor_plans_of(graph: ModelGraph, columns: list[str]) -> list[list[TensorPlan]]:
    plans, scored = [], []
    for node in graph.score:
        plans.append([TensorPlan(node.input, None)] if not node.inputs else [
            TensorPlan(t.name, np.asarray(input_columns(t.columns, columns, scored), np.intp), t.datatype)
            for t in node.inputs])
        scored.append(node.name)
    return plans


def _failed(kind: type[VahiniError], message: str, outcome: str) -> VahiniError:
    exc = kind(message)
    exc.outcome = outcome
    return exc


@dataclass
class _Call:
    """One ModelInfer in flight: a batch of rows starting at `start`."""

    start: int
    rows: int
    future: grpc.Future
    sent: float = field(default_factory=time.perf_counter)
    finished: float = 0.0


class Scorer:
    def __init__(self, aliases: Mapping[str, str] | None = None, failure_log: RateLimitedLog | None = None):
        self._aliases = dict(aliases or {})  # serving.model_endpoints: name -> host:port
        self._stubs: dict[str, tuple[grpc.Channel, kpb_grpc.GRPCInferenceServiceStub]] = {}
        self._lock = threading.Lock()
        self._tensors: PerGraph[list[list[TensorPlan]]] = PerGraph()
        self._failures = failure_log or RateLimitedLog(log)

    def score(self, graph: ModelGraph, matrix: FeatureMatrix, context: Mapping[str, Sequence[str]],
              timeout_s: float | None, outages: list[str]) -> dict[str, NodeScores]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        inputs, scores = matrix.values, {}
        for node, tensors in zip(graph.score, self._tensor_plans(graph, matrix.columns)):
            endpoint = choose(node, context)
            try:
                values = self._infer(node, endpoint, tensors, inputs, deadline)
            except (StoreUnavailable, EndpointRejected) as exc:
                self._note_failure(graph, node, endpoint, exc)
                if graph.on_outage != "defaults":
                    raise
                outages.append(f"score {node.name}: {exc}")
                metrics.MODEL_SCORES_DEFAULTED.labels(graph.name, node.name).inc()
                values = np.full(len(inputs), node.default, np.float32)
            scores[node.name] = NodeScores(f"{endpoint.target}/{endpoint.model}", values)
            inputs = np.hstack([inputs, values.reshape(-1, 1)])
        return scores

    def _tensor_plans(self, graph: ModelGraph, columns: list[str]) -> list[list[TensorPlan]]:
        """Each node's input tensors, worked out once per graph."""
        return self._tensors.get(graph, lambda: _tensor_plans_of(graph, columns))

    def _note_failure(self, graph: ModelGraph, node: ScoreNode, endpoint: Endpoint, exc: Exception) -> None:
        code = getattr(exc, "outcome", None) or type(exc).__name__
        self._failures.warning((endpoint.target, endpoint.model, code), "model_call_failed", model=graph.name,
                               version=graph.version, node=node.name, endpoint=endpoint.target,
                               endpoint_model=endpoint.model, code=code, error=str(exc),
                               served="defaults" if graph.on_outage == "defaults" else "error")

    def _infer(self, node: ScoreNode, endpoint: Endpoint, tensors: list[TensorPlan], inputs: np.ndarray,
               deadline: float | None) -> np.ndarray:
        """The node's scores for every row: calls of at most `batch_size` rows, sent together."""
        timeout = node.timeout_ms / 1000
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise DeadlineExceeded(f"deadline exceeded before score node '{node.name}'")
        if len(inputs) == 0:
            return np.zeros(0, np.float32)
        stub = self._stub(endpoint.target)
        size = endpoint.batch_size or len(inputs)
        calls = []
        for start in range(0, len(inputs), size):
            batch = inputs[start:start + size]
            call = _Call(start, len(batch), stub.ModelInfer.future(infer_request(endpoint, tensors, batch),
                                                                   timeout=timeout))
            call.future.add_done_callback(lambda _, c=call: setattr(c, "finished", time.perf_counter()))
            calls.append(call)
        try:
            return np.concatenate([self._reply(node, endpoint, call, deadline) for call in calls])
        finally:
            for call in calls:
                call.future.cancel()  # a no-op on calls that finished; stops the rest after a failure

    def _reply(self, node: ScoreNode, endpoint: Endpoint, call: _Call, deadline: float | None) -> np.ndarray:
        where = f"model endpoint {endpoint.target} ({endpoint.model})"
        labels = (endpoint.target, endpoint.model)
        try:
            reply = call.future.result()
        except grpc.RpcError as exc:
            metrics.MODEL_CALLS.labels(*labels, exc.code().name).inc()
            raise _call_error(node, exc, where, deadline) from None
        finally:
            metrics.MODEL_CALL_SECONDS.labels(*labels).observe((call.finished or time.perf_counter()) - call.sent)
        try:
            scores = read_scores(reply, endpoint, call.rows, where)
        except EndpointRejected as exc:
            metrics.MODEL_CALLS.labels(*labels, BAD_REPLY).inc()
            raise _failed(EndpointRejected, f"score node '{node.name}': {exc}", BAD_REPLY) from None
        metrics.MODEL_CALLS.labels(*labels, grpc.StatusCode.OK.name).inc()
        metrics.MODEL_ROWS_SCORED.labels(*labels).inc(call.rows)
        return scores

    def _stub(self, target: str) -> kpb_grpc.GRPCInferenceServiceStub:
        address = self._aliases.get(target, target)
        with self._lock:
            if address not in self._stubs:
                channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                self._stubs[address] = (channel, kpb_grpc.GRPCInferenceServiceStub(channel))
            return self._stubs[address][1]

    def close(self) -> None:
        with self._lock:
            for channel, _ in self._stubs.values():
                channel.close()
            self._stubs.clear()


def _call_error(node: ScoreNode, exc: grpc.RpcError, where: str, deadline: float | None) -> Exception:
    code = exc.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None and deadline - time.monotonic() <= 0:
        return _failed(DeadlineExceeded, f"deadline exceeded waiting for {where}", code.name)
    if code in TRANSIENT or code == grpc.StatusCode.CANCELLED:
        return _failed(StoreUnavailable, f"{where}: {code.name} after at most {node.timeout_ms} ms: "
                                         f"{exc.details()}", code.name)
    return _failed(EndpointRejected, f"{where}: {code.name}: {exc.details()}", code.name)
