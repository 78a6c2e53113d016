"""Model nodes: the Model Proxy sends a graph's matrix to model servers over the
KServe v2 gRPC protocol (`ModelInfer`) and returns their scores per row.

Nodes run in graph order; each one's input is the feature matrix plus the scores
of the nodes before it, as extra columns, so two models chain. A node with
several endpoints splits traffic by percent, sticky per id (`split_by`): the
same user always reaches the same endpoint while the percents stay put.
Each call is bounded by the node's `timeout_ms` and by what is left of the
request's deadline.
"""

from __future__ import annotations

import threading
import time
import zlib
from typing import Mapping, Sequence

import grpc
import numpy as np

from serving.api import kserve_v2_pb2 as kpb
from serving.api import kserve_v2_pb2_grpc as kpb_grpc
from serving.model_proxy import FeatureMatrix, NodeScores
from vahini.errors import DeadlineExceeded, EndpointRejected, StoreUnavailable
from vahini.logs import get_logger
from vahini.registry.model import Endpoint, ModelGraph, ScoreNode

log = get_logger(__name__)

OUTPUT_DTYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "INT32": "<i4", "INT64": "<i8"}
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


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


class Scorer:
    def __init__(self, aliases: Mapping[str, str] | None = None):
        self._aliases = dict(aliases or {})  # serving.model_endpoints: name -> host:port
        self._stubs: dict[str, tuple[grpc.Channel, kpb_grpc.GRPCInferenceServiceStub]] = {}
        self._lock = threading.Lock()

    def score(self, graph: ModelGraph, matrix: FeatureMatrix, context: Mapping[str, Sequence[str]],
              timeout_s: float | None, outages: list[str]) -> dict[str, NodeScores]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        inputs, scores = matrix.values, {}
        for node in graph.score:
            endpoint = choose(node, context)
            try:
                values = self._infer(node, endpoint, inputs, deadline)
            except (StoreUnavailable, EndpointRejected) as exc:
                if graph.on_outage != "defaults":
                    raise
                outages.append(f"score {node.name}: {exc}")
                values = np.full(len(inputs), node.default, np.float32)
            scores[node.name] = NodeScores(f"{endpoint.target}/{endpoint.model}", values)
            inputs = np.hstack([inputs, values.reshape(-1, 1)])
        return scores

    def _infer(self, node: ScoreNode, endpoint: Endpoint, inputs: np.ndarray, deadline: float | None) -> np.ndarray:
        timeout = node.timeout_ms / 1000
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise DeadlineExceeded(f"deadline exceeded before score node '{node.name}'")
        request = kpb.ModelInferRequest(
            model_name=endpoint.model, model_version=endpoint.version,
            inputs=[kpb.ModelInferRequest.InferInputTensor(name=node.input, datatype="FP32",
                                                           shape=list(inputs.shape))],
            raw_input_contents=[np.ascontiguousarray(inputs, "<f4").tobytes()])
        where = f"model endpoint {endpoint.target} ({endpoint.model})"
        try:
            reply = self._stub(endpoint.target).ModelInfer(request, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None \
                    and deadline - time.monotonic() <= 0:
                raise DeadlineExceeded(f"deadline exceeded waiting for {where}") from None
            if exc.code() in TRANSIENT:
                raise StoreUnavailable(f"{where}: {exc.code().name} after at most {node.timeout_ms} ms: "
                                       f"{exc.details()}") from None
            raise EndpointRejected(f"{where}: {exc.code().name}: {exc.details()}") from None
        return _scores(reply, len(inputs), where)

    def _stub(self, target: str) -> kpb_grpc.GRPCInferenceServiceStub:
        address = self._aliases.get(target, target)
        with self._lock:
            if address not in self._stubs:
                channel = grpc.insecure_channel(address)
                self._stubs[address] = (channel, kpb_grpc.GRPCInferenceServiceStub(channel))
            return self._stubs[address][1]

    def close(self) -> None:
        with self._lock:
            for channel, _ in self._stubs.values():
                channel.close()
            self._stubs.clear()


def _scores(reply: kpb.ModelInferResponse, rows: int, where: str) -> np.ndarray:
    """The first output tensor as float32, one value per row."""
    if not reply.outputs:
        raise EndpointRejected(f"{where} returned no output tensor")
    out = reply.outputs[0]
    if reply.raw_output_contents:
        dtype = OUTPUT_DTYPES.get(out.datatype)
        if dtype is None:
            raise EndpointRejected(f"{where} returned datatype {out.datatype}; scores must be numbers")
        values = np.frombuffer(reply.raw_output_contents[0], dtype)
    else:
        values = np.asarray(out.contents.fp32_contents or out.contents.fp64_contents or
                            out.contents.int64_contents or out.contents.int_contents, np.float64)
    if values.size != rows:
        raise EndpointRejected(f"{where} returned {values.size} scores (shape {list(out.shape)}) for {rows} rows")
    return values.astype(np.float32)
