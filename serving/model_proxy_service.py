"""gRPC ModelProxy: GetFeatures, the feature matrix of a model for its context ids."""

from __future__ import annotations

import grpc

from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.feature_log import FeatureLogger, Served, new_request_id
from vahini.serving.grpc_errors import BadRequest, time_left
from vahini.serving.model_proxy import ModelExecutor

MODEL_PROXY_SERVICE_NAME = mpb.DESCRIPTOR.services_by_name["ModelProxy"].full_name


class ModelProxyServicer(mpb_grpc.ModelProxyServicer):
    def __init__(self, executor: ModelExecutor, max_rows: int, feature_log: FeatureLogger | None = None):
        self._executor = executor
        self._max_rows = max_rows
        self._feature_log = feature_log

    def GetFeatures(self, request: mpb.GetFeaturesRequest, context) -> mpb.GetFeaturesResponse:
        if not request.model:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, "model: required")
        ids = {name: list(value.ids) for name, value in request.context.items()}
        largest = max((len(v) for v in ids.values()), default=0)
        if largest > self._max_rows:
            raise BadRequest(grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"context: {largest} ids exceed the limit of {self._max_rows} rows per request")
        matrix = self._executor.run(request.model, ids, version=request.version, timeout_s=time_left(context))
        time_left(context)
        request_id = new_request_id()
        if self._feature_log is not None and matrix.log_sample > 0:
            self._feature_log.offer(Served(request_id, ids, matrix))
        return mpb.GetFeaturesResponse(
            request_id=request_id, model=matrix.model, version=matrix.version, columns=matrix.columns, dtypes=matrix.dtypes,
            row_ids=matrix.row_ids, shape=list(matrix.values.shape),
            matrix=matrix.values.astype("<f4", copy=False).tobytes(),
            counts={c: mpb.ColumnCounts(**n) for c, n in matrix.counts.items()}, degraded=matrix.degraded,
            scores=[mpb.NodeScores(node=name, endpoint=s.endpoint, values=s.values.astype("<f4").tobytes())
                    for name, s in matrix.scores.items()])
