"""The Python client rankers use: one reused channel, deadlines on every call, and
retries with exponential backoff on UNAVAILABLE (a server restarting, a store
briefly down), all within the call's deadline.

    client = VahiniClient("127.0.0.1:50051", timeout_s=0.05)
    features = client.get_features("home_ranker", user_id="u42", product_ids=["p1", "p2"])
    features.matrix            # numpy float32, rows x columns
    features.scores["rank"]    # the model nodes' scores, when the graph has any
    features.to_pandas()       # needs pandas
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

import grpc
import numpy as np

from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.tls import channel_credentials

RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass
class ModelFeatures:
    model: str
    columns: list[str]
    row_ids: list[str]
    matrix: np.ndarray  # float32, rows x columns
    counts: dict[str, dict[str, int]]  # column -> {missing, expired, unreadable}, where a default was used
    degraded: str = ""  # non-empty: a store was down and defaults were served (on_outage: defaults)
    version: int = 0  # the version of the model's graph that built the matrix
    dtypes: list[str] = field(default_factory=list)  # per column: float32, or int32 for integer-valued columns
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # score node -> float32 score per row
    endpoints: dict[str, str] = field(default_factory=dict)  # score node -> the endpoint that scored

    def to_pandas(self):
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("ModelFeatures.to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame(self.matrix, index=self.row_ids, columns=self.columns)


def connect(target: str, token: str | None = None, ca_file: str | None = None, cert_file: str | None = None,
            key_file: str | None = None, tls: bool = False) -> tuple[grpc.Channel, list | None]:
    """A channel to a Vahini server, and the metadata to send on each call: with a CA
    file (or tls=True: the system roots) TLS with the token in its call credentials;
    without, plaintext with the token in the metadata (loopback only)."""
    if tls or ca_file or cert_file:
        return grpc.secure_channel(target, channel_credentials(ca_file, cert_file, key_file, token)), None
    return grpc.insecure_channel(target), ([("authorization", f"Bearer {token}")] if token else None)


class VahiniClient:
    """`token`: this caller's bearer token (serving.auth). `ca_file` (or `tls=True` for
    the system roots): TLS to the server; `cert_file` and `key_file`: a client
    certificate for mutual TLS. A token without TLS is sent in the clear: loopback only."""

    def __init__(self, target: str, timeout_s: float = 0.1, max_attempts: int = 4, backoff_s: float = 0.01,
                 token: str | None = None, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, tls: bool = False):
        self._channel, self._metadata = connect(target, token, ca_file, cert_file, key_file, tls)
        self._proxy = mpb_grpc.ModelProxyStub(self._channel)
        self.timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s

    def get_features(self, model: str, timeout_s: float | None = None, version: int = 0,
                     **context: str | Sequence[str]) -> ModelFeatures:
        """The model's feature matrix for `context` (each input an id or a list of ids),
        built by the latest version of its graph, or by `version`."""
        request = mpb.GetFeaturesRequest(model=model, version=version, context={
            name: mpb.ContextIds(ids=[ids] if isinstance(ids, str) else list(ids)) for name, ids in context.items()})
        reply = self._call(self._proxy.GetFeatures, request, timeout_s or self.timeout_s)
        return ModelFeatures(reply.model, list(reply.columns), list(reply.row_ids),
                             np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape)),
                             {c: {"missing": n.missing, "expired": n.expired, "unreadable": n.unreadable}
                              for c, n in reply.counts.items()}, reply.degraded, reply.version, list(reply.dtypes),
                             {s.node: np.frombuffer(s.values, "<f4") for s in reply.scores},
                             {s.node: s.endpoint for s in reply.scores})

    def call_raw(self, request: mpb.GetFeaturesRequest, timeout_s: float | None = None) -> mpb.GetFeaturesResponse:
        """GetFeatures with the client's channel, credentials, deadline and retries; the reply as is."""
        return self._call(self._proxy.GetFeatures, request, timeout_s or self.timeout_s)

    def _call(self, method, request, timeout_s: float):
        """Retry UNAVAILABLE with jittered exponential backoff until the deadline."""
        deadline = time.monotonic() + timeout_s
        delay = self._backoff_s
        for attempt in range(1, self._max_attempts + 1):
            left = deadline - time.monotonic()
            try:
                return method(request, timeout=max(left, 0.001), metadata=self._metadata)
            except grpc.RpcError as exc:
                if exc.code() not in RETRIED or attempt == self._max_attempts:
                    raise
                pause = delay * random.uniform(0.5, 1.5)
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
                delay *= 2
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "VahiniClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
