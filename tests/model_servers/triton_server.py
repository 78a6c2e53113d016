"""Serves tests.model_servers.functions on Triton through PyTriton (run in its own venv):

    python triton_server.py GRPC_PORT HTTP_PORT METRICS_PORT

It prints `ready` once both models are loaded, and serves until SIGTERM.
"""

import sys
from pathlib import Path

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

sys.path.insert(0, str(Path(__file__).parent))
import functions  # after the path is set: the same file the tests import

MAX_BATCH_SIZE = 64


def main(grpc_port: int, http_port: int, metrics_port: int) -> None:
    config = TritonConfig(grpc_address="127.0.0.1", grpc_port=grpc_port, http_address="127.0.0.1",
                          http_port=http_port, metrics_port=metrics_port)
    with Triton(config=config) as triton:
        triton.bind(model_name="ranker64", infer_func=batch(functions.ranker),
                    inputs=[Tensor(name="features", dtype=np.float32, shape=(-1,))],
                    outputs=[Tensor(name="output_label", dtype=np.int64, shape=(1,)),
                             Tensor(name="output_probability", dtype=np.float32, shape=(2,))],
                    config=ModelConfig(max_batch_size=MAX_BATCH_SIZE))
        triton.bind(model_name="two_inputs", infer_func=batch(functions.two_inputs),
                    inputs=[Tensor(name="dense", dtype=np.float64, shape=(-1,)),
                            Tensor(name="ids", dtype=np.int64, shape=(-1,))],
                    outputs=[Tensor(name="score", dtype=np.float32, shape=(1,))],
                    config=ModelConfig(max_batch_size=MAX_BATCH_SIZE))
        print("ready", flush=True)
        triton.serve()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
