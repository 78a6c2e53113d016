"""A tiny model server that speaks KServe v2 gRPC: linear scorers with numpy.

It stands in for Triton or KServe in the demo and the tests, and shows what a
model node expects of an endpoint. Each model scores a float32 matrix (rows x
columns) as sigmoid(matrix . weights + bias), one FP32 score per row. A model
without weights weighs every column equally (1 / columns).

    vahini dev model-server --port 8500 --model ranker --model reranker=weights.json

where weights.json is {"weights": [0.1, -0.3, ...], "bias": 0.0}.
"""

from __future__ import annotations

import json
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from vahini.serving.api import kserve_v2_pb2 as kpb
from vahini.serving.api import kserve_v2_pb2_grpc as kpb_grpc


@dataclass(frozen=True)
class LinearModel:
    weights: tuple[float, ...] | None = None  # None: 1 / columns for each column
    bias: float = 0.0

    def score(self, matrix: np.ndarray) -> np.ndarray:
        rows, cols = matrix.shape
        w = np.full(cols, 1.0 / max(cols, 1)) if self.weights is None else np.asarray(self.weights)
        if len(w) != cols:
            raise ValueError(f"the model has {len(w)} weights; the input has {cols} columns")
        return (1.0 / (1.0 + np.exp(-(matrix.astype(np.float64) @ w + self.bias)))).astype(np.float32)

    @classmethod
    def from_file(cls, path: Path) -> "LinearModel":
        spec = json.loads(path.read_text())
        return cls(tuple(float(w) for w in spec["weights"]), float(spec.get("bias", 0.0)))


class ReferenceModels(kpb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, models: dict[str, LinearModel]):
        self._models = models
        self.calls = 0  # ModelInfer calls answered, for tests and logs

    def ServerLive(self, request, context):
        return kpb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return kpb.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        return kpb.ModelReadyResponse(ready=request.name in self._models)

    def ModelMetadata(self, request, context):
        self._model(request.name, context)
        tensor = kpb.ModelMetadataResponse.TensorMetadata
        return kpb.ModelMetadataResponse(name=request.name, versions=["1"], platform="vahini_linear",
                                         inputs=[tensor(name="features", datatype="FP32", shape=[-1, -1])],
                                         outputs=[tensor(name="scores", datatype="FP32", shape=[-1])])

    def ModelInfer(self, request, context):
        model = self._model(request.model_name, context)
        matrix = _input_matrix(request, context)
        try:
            scores = model.score(matrix)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self.calls += 1
        out = kpb.ModelInferResponse.InferOutputTensor(name="scores", datatype="FP32", shape=[len(scores)])
        return kpb.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id,
                                      outputs=[out], raw_output_contents=[scores.astype("<f4").tobytes()])

    def _model(self, name: str, context) -> LinearModel:
        if name not in self._models:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{name}' (serving: {sorted(self._models)})")
        return self._models[name]


def _input_matrix(request: kpb.ModelInferRequest, context) -> np.ndarray:
    if len(request.inputs) != 1 or request.inputs[0].datatype != "FP32" or len(request.inputs[0].shape) != 2:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected one FP32 input of shape [rows, columns]")
    shape = tuple(request.inputs[0].shape)
    if request.raw_input_contents:
        data = np.frombuffer(request.raw_input_contents[0], "<f4")
    else:
        data = np.asarray(request.inputs[0].contents.fp32_contents, np.float32)
    if data.size != shape[0] * shape[1]:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{data.size} values do not fill shape {list(shape)}")
    return data.reshape(shape)


def start_model_server(models: dict[str, LinearModel], port: int = 0,
                       host: str = "127.0.0.1") -> tuple[grpc.Server, int, ReferenceModels]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = ReferenceModels(models)
    kpb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
        bound = 0
    if bound:
        server.start()
    return server, bound, servicer


def parse_model_args(specs: list[str]) -> dict[str, LinearModel]:
    """`name` (equal weights) or `name=weights.json`, as given to `vahini dev model-server --model`."""
    models = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        models[name] = LinearModel.from_file(Path(path)) if path else LinearModel()
    return models
