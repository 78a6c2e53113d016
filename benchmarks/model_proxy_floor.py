"""The gRPC floor of the Model Proxy benchmark: a ModelProxy server whose handler does
no work, answering every GetFeatures with a reply of the size the real one has (the
same columns and row ids, a zero matrix). Run by benchmarks.model_proxy as its own
process pinned like `vahini serve`, with the same thread and in-flight settings:

    python -m benchmarks.model_proxy_floor COLUMNS PORT
"""

from __future__ import annotations

import sys
from concurrent import futures

import grpc
import numpy as np

from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.settings import ServingSettings


class EmptyProxy(mpb_grpc.ModelProxyServicer):
    def __init__(self, columns: int):
        self._columns = [f"column_{i}" for i in range(columns)]

    def GetFeatures(self, request: mpb.GetFeaturesRequest, context) -> mpb.GetFeaturesResponse:
        rows = list(request.context["product_ids"].ids)
        matrix = np.zeros((len(rows), len(self._columns)), np.float32)
        return mpb.GetFeaturesResponse(model=request.model, version=1, columns=self._columns,
                                       dtypes=["float32"] * len(self._columns), row_ids=rows,
                                       shape=list(matrix.shape), matrix=matrix.tobytes())


def main() -> int:
    columns, port = int(sys.argv[1]), int(sys.argv[2])
    serving = ServingSettings()
    sys.setswitchinterval(serving.gil_switch_interval_ms / 1000)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=serving.max_workers),
                         maximum_concurrent_rpcs=serving.max_in_flight)
    mpb_grpc.add_ModelProxyServicer_to_server(EmptyProxy(columns), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
