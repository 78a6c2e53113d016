"""Real model servers for the scoring tests, each started from the venv that
infra/model-servers.sh installs (or VAHINI_MLSERVER_PYTHON / VAHINI_TRITON_PYTHON):

- Seldon MLServer with its scikit-learn runtime, serving `lr`, a LogisticRegression;
- Triton through PyTriton, serving tests.model_servers.functions.

A server that cannot start fails the test under `make test` and skips it elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from vahini.serving.api import kserve_v2_pb2 as kpb
from vahini.serving.api import kserve_v2_pb2_grpc as kpb_grpc
from tests.services import free_port

HERE = Path(__file__).parent
INFRA_HOME = Path(os.environ.get("VAHINI_INFRA_HOME", Path.home() / ".cache" / "vahini-infra"))
# The LogisticRegression's features, each trained on [0, high): the tests' price, log_price, ctr_7d,
# cvr_7d, rating and is_premium.
MLSERVER_FEATURE_HIGHS = (500, 6.3, 0.3, 0.05, 5, 1)


def venv_python(name: str) -> Path:
    python = Path(os.environ.get(f"VAHINI_{name.upper()}_PYTHON", INFRA_HOME / name / "venv" / "bin" / "python"))
    if not python.exists():
        message = f"no {name} venv at {python}: run `bash infra/model-servers.sh install`"
        if os.environ.get("VAHINI_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python


@dataclass
class ModelServer:
    """A model server process of its own process group (so SIGSTOP reaches every part of it)."""

    name: str
    command: list[str]
    cwd: Path
    grpc_port: int
    models: tuple[str, ...]
    log_file: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 120) -> None:
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        give_up = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = kpb_grpc.GRPCInferenceServiceStub(channel)
            while time.monotonic() < give_up:
                if self.process.poll() is not None:
                    break
                try:
                    if all(stub.ModelReady(kpb.ModelReadyRequest(name=m), timeout=2).ready for m in self.models):
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} did not get ready on {self.target}; log tail:\n"
                           + self.log_file.read_text(errors="replace")[-3000:])

    def signal(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)  # a stopped server cannot act on SIGTERM
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(10)


def mlserver(workdir: Path, columns: int | None = None) -> ModelServer:
    """MLServer serving `lr`, a LogisticRegression over MLSERVER_FEATURE_HIGHS (or over `columns`
    features in [0, 1)), not yet started."""
    python = venv_python("mlserver")
    model_dir = workdir / "lr"
    highs = MLSERVER_FEATURE_HIGHS if columns is None else (1,) * columns
    subprocess.run([str(python), str(HERE / "mlserver_model.py"), "train", str(model_dir),
                    ",".join(map(str, highs))], check=True)
    grpc_port = free_port()
    (workdir / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "grpc_port": grpc_port, "http_port": free_port(), "metrics_port": free_port(),
        "parallel_workers": 0}))
    return ModelServer("MLServer", [str(python.parent / "mlserver"), "start", "."], workdir, grpc_port, ("lr",),
                       workdir / "mlserver.log")


def mlserver_predict_proba(server: ModelServer, matrix: np.ndarray, scratch: Path) -> np.ndarray:
    """The served LogisticRegression's own predict_proba on `matrix`, computed in MLServer's venv."""
    np.save(scratch / "x.npy", matrix)
    subprocess.run([str(venv_python("mlserver")), str(HERE / "mlserver_model.py"), "predict_proba",
                    str(server.cwd / "lr"), str(scratch / "x.npy"), str(scratch / "y.npy")], check=True)
    return np.load(scratch / "y.npy")


def triton(workdir: Path) -> ModelServer:
    """Triton (PyTriton) serving `ranker64` and `two_inputs`, both with max_batch_size 64, not yet started."""
    python = venv_python("triton")
    grpc_port = free_port()
    command = [str(python), str(HERE / "triton_server.py"), str(grpc_port), str(free_port()), str(free_port())]
    return ModelServer("Triton", command, workdir, grpc_port, ("ranker64", "two_inputs"), workdir / "triton.log")
