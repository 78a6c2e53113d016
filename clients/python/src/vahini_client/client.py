"""A typed client for Vahini's three gRPC services: FeatureService, InteractionService
and ModelProxy. Deadlines per call; retries by gRPC itself, from the channel's
service config (`retryPolicy`), so every call retries the same way in every
language's client; TLS and bearer tokens as the server's `serving.auth` expects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import grpc
import numpy as np

from vahini_client._proto import feature_service_pb2 as fpb
from vahini_client._proto import feature_service_pb2_grpc as fpb_grpc
from vahini_client._proto import interaction_service_pb2 as ipb
from vahini_client._proto import interaction_service_pb2_grpc as ipb_grpc
from vahini_client._proto import model_proxy_pb2 as mpb
from vahini_client._proto import model_proxy_pb2_grpc as mpb_grpc
from vahini_client.results import Features, GroupValues, History, Interaction, ModelFeatures, SearchHits

SERVICES = ("vahini.v1.FeatureService", "vahini.v1.InteractionService", "vahini.v1.ModelProxy")


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's retryPolicy for every method of the three services. Retries stay within
    the call's deadline; the backoff is jittered by gRPC. Every method is safe to
    retry: reads, and Persist, whose writes are last-write-wins by event time."""

    max_attempts: int = 3  # gRPC caps it at 5
    initial_backoff_s: float = 0.01
    max_backoff_s: float = 0.2
    backoff_multiplier: float = 2.0
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def service_config(self) -> str:
        if self.max_attempts < 2:  # gRPC refuses a retryPolicy of one attempt
            return json.dumps({"methodConfig": [{"name": [{"service": s} for s in SERVICES]}]})
        retry = {"maxAttempts": self.max_attempts, "initialBackoff": f"{self.initial_backoff_s}s",
                 "maxBackoff": f"{self.max_backoff_s}s", "backoffMultiplier": self.backoff_multiplier,
                 "retryableStatusCodes": list(self.retryable_status_codes)}
        return json.dumps({"methodConfig": [{"name": [{"service": s} for s in SERVICES], "retryPolicy": retry}]})


NO_RETRIES = RetryPolicy(max_attempts=1)


class VahiniClient:
    """`target`: host:port of `vahini serve`. `timeout_s`: each call's deadline unless the
    call gives its own. `token` (or `token_file`): this caller's bearer token. `ca_file`
    (or `tls=True` for the system roots): TLS to the server; `cert_file` and `key_file`:
    a client certificate for mutual TLS. Without TLS a token goes in the clear, so only
    to a server on loopback."""

    def __init__(self, target: str, *, timeout_s: float = 1.0, retry: RetryPolicy = RetryPolicy(),
                 token: str | None = None, token_file: str | Path | None = None, ca_file: str | Path | None = None,
                 cert_file: str | Path | None = None, key_file: str | Path | None = None, tls: bool = False,
                 options: Sequence[tuple[str, object]] = ()):
        if token_file is not None:
            token = Path(token_file).read_text().strip()
        options = [("grpc.enable_retries", 1 if retry.max_attempts > 1 else 0),
                   ("grpc.service_config", retry.service_config()), *options]
        if tls or ca_file or cert_file:
            self._channel = grpc.secure_channel(target, _credentials(ca_file, cert_file, key_file, token), options)
            self._metadata = None
        else:
            self._channel = grpc.insecure_channel(target, options)
            self._metadata = [("authorization", f"Bearer {token}")] if token else None
        self.target, self.timeout_s = target, timeout_s
        self._features = fpb_grpc.FeatureServiceStub(self._channel)
        self._interactions = ipb_grpc.InteractionServiceStub(self._channel)
        self._proxy = mpb_grpc.ModelProxyStub(self._channel)

    def retrieve(self, entity: str, keys: Sequence[str], groups: Sequence[str] | Mapping[str, Sequence[str]],
                 timeout_s: float | None = None) -> Features:
        """Features of `keys` (composite keys joined by `|`). `groups`: names, for every
        feature of each, or {group: [features]}."""
        selected = groups.items() if isinstance(groups, Mapping) else ((g, ()) for g in groups)
        request = fpb.RetrieveRequest(entity=entity, keys=list(keys), groups=[
            fpb.GroupSelector(group=g, features=list(f)) for g, f in selected])
        reply = self._features.Retrieve(request, timeout=self._deadline(timeout_s), metadata=self._metadata)
        return Features(list(reply.keys), {g.group: _group_values(g) for g in reply.groups})

    def search(self, index: str, k: int, vector: Sequence[float] | None = None, key: str = "",
               filters: Mapping[str, bool | int | str] | None = None, timeout_s: float | None = None) -> SearchHits:
        """The `k` keys nearest `vector`, or nearest the vector stored for `key`, in a registry
        index, whose filter features equal `filters` (e.g. {"in_stock": True})."""
        request = fpb.SearchRequest(index=index, k=k, key=key, vector=[] if vector is None else list(vector),
                                    filters={n: _value(v) for n, v in (filters or {}).items()})
        reply = self._features.Search(request, timeout=self._deadline(timeout_s), metadata=self._metadata)
        return SearchHits(list(reply.keys), np.array(reply.scores, dtype=np.float64), reply.metric)

    def persist(self, updates: Sequence[Mapping], timeout_s: float | None = None) -> int:
        """Write feature updates synchronously ({entity, keys, group, values, event_time_ms});
        returns the rows written once durable. Producers should prefer Kafka."""
        request = fpb.PersistRequest(updates=[fpb.FeatureUpdate(
            entity=u["entity"], keys=dict(u["keys"]), group=u["group"], event_time_ms=u.get("event_time_ms", 0),
            producer_id=u.get("producer_id", ""), values={k: _value(v) for k, v in u["values"].items()})
            for u in updates])
        reply = self._features.Persist(request, timeout=self._deadline(timeout_s), metadata=self._metadata)
        return reply.rows_written

    def history(self, user_id: str, types: Sequence[str] = (), limit: int = 0, since_ms: int = 0,
                until_ms: int = 0, timeout_s: float | None = None) -> History:
        """A user's interactions, newest first: `types` of CLICK, ORDER, WISHLIST (none: all),
        at most `limit` (0: the server's 100), event time in [since_ms, until_ms)."""
        request = ipb.GetInteractionsRequest(user_id=user_id, types=[ipb.InteractionType.Value(t) for t in types],
                                             limit=limit, since_ms=since_ms, until_ms=until_ms)
        reply = self._interactions.GetInteractions(request, timeout=self._deadline(timeout_s),
                                                   metadata=self._metadata)
        return History(reply.user_id, reply.source, [
            Interaction(r.event_id, ipb.InteractionType.Name(r.type), r.product_id, r.category_id, r.event_time_ms,
                        dict(r.attributes)) for r in reply.interactions])

    def get_features(self, model: str, version: int = 0, timeout_s: float | None = None,
                     **context: str | Sequence[str]) -> ModelFeatures:
        """The model's feature matrix for `context` (each input an id or a list of ids), by the
        latest version of its graph, or by `version`."""
        request = mpb.GetFeaturesRequest(model=model, version=version, context={
            name: mpb.ContextIds(ids=[ids] if isinstance(ids, str) else list(ids)) for name, ids in context.items()})
        reply = self._proxy.GetFeatures(request, timeout=self._deadline(timeout_s), metadata=self._metadata)
        return ModelFeatures(reply.model, reply.version, list(reply.columns), list(reply.row_ids),
                             np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape)), list(reply.dtypes),
                             {c: {"missing": n.missing, "expired": n.expired, "unreadable": n.unreadable}
                              for c, n in reply.counts.items()}, reply.degraded,
                             {s.node: np.frombuffer(s.values, "<f4") for s in reply.scores},
                             {s.node: s.endpoint for s in reply.scores}, reply.request_id)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "VahiniClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _deadline(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s


def _credentials(ca_file, cert_file, key_file, token: str | None) -> grpc.ChannelCredentials:
    def read(path):
        return None if path is None else Path(path).read_bytes()
    credentials = grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))
    if token:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    return credentials


def _group_values(group: fpb.GroupValues) -> GroupValues:
    values, status = {}, {}
    for column in group.features:
        if column.type == "string":
            values[column.name] = list(column.strings.values)
        else:
            tensor = column.tensor
            values[column.name] = np.frombuffer(tensor.data, np.dtype(tensor.dtype)).reshape(tuple(tensor.shape))
        status[column.name] = np.frombuffer(column.status, np.int8)
    event_times = np.frombuffer(group.event_time_ms.data, np.dtype(group.event_time_ms.dtype))
    return GroupValues(group.group, group.schema_version, values, status, event_times)


def _value(value) -> fpb.Value:
    if isinstance(value, bool):
        return fpb.Value(bool_value=value)
    if isinstance(value, int):
        return fpb.Value(int_value=value)
    if isinstance(value, float):
        return fpb.Value(float_value=value)
    if isinstance(value, str):
        return fpb.Value(string_value=value)
    return fpb.Value(vector_value=fpb.FloatVector(values=[float(v) for v in value]))
