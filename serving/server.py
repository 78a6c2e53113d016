"""gRPC FeatureService: Retrieve and Persist, with health checking and reflection."""

from __future__ import annotations

import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from vahini import wiring
from vahini.errors import InvalidEvent
from vahini.feature_rows import invalidate_cached, newest_per_key, row_of
from vahini.logs import get_logger
from vahini.runtime import tune_gc_for_throughput
from vahini.ports.feature_store import FeatureStore
from vahini.ports.hot_tier import HotTier
from vahini.registry.model import Registry
from vahini.registry.publish import RegistryFollower
from vahini.settings import Settings
from vahini.validation import validate_feature_update
from serving import convert
from serving.api import feature_service_pb2 as pb
from serving.api import feature_service_pb2_grpc as pb_grpc
from serving.grpc_errors import BadRequest, ErrorMapping
from serving.retrieval import FeatureReader

log = get_logger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FeatureService"].full_name
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _check_deadline(context: grpc.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise BadRequest(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the response was ready")


class FeatureServicer(pb_grpc.FeatureServiceServicer):
    def __init__(self, reader: FeatureReader, store: FeatureStore, cache: HotTier,
                 registry: Callable[[], Registry], settings: Settings):
        self._reader = reader
        self._store = store
        self._cache = cache
        self._registry = registry
        self._max_keys = settings.serving.max_keys_per_request
        self._skew_ms = settings.ingest.max_future_skew_ms

    def Retrieve(self, request: pb.RetrieveRequest, context) -> pb.RetrieveResponse:
        self._check_retrieve(request)
        _check_deadline(context)
        selected = {g.group: list(g.features) for g in request.groups}
        results = self._reader.retrieve(request.entity, list(request.keys), list(selected),
                                        {g: f for g, f in selected.items() if f})
        _check_deadline(context)
        groups = self._registry().groups
        return pb.RetrieveResponse(keys=request.keys,
                                   groups=[convert.group_values(r, groups[r.group]) for r in results])

    def _check_retrieve(self, request: pb.RetrieveRequest) -> None:
        if not request.entity:
            raise BadRequest(INVALID, "entity: required")
        if not request.keys:
            raise BadRequest(INVALID, "keys: at least one key is required")
        if len(request.keys) > self._max_keys:
            raise BadRequest(grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"keys: {len(request.keys)} keys exceed the limit of {self._max_keys} per request")
        for i, key in enumerate(request.keys):
            if not key:
                raise BadRequest(INVALID, f"keys[{i}]: empty key")
        if not request.groups:
            raise BadRequest(INVALID, "groups: at least one feature group is required")
        for i, g in enumerate(request.groups):
            if not g.group:
                raise BadRequest(INVALID, f"groups[{i}].group: required")

    def Persist(self, request: pb.PersistRequest, context) -> pb.PersistResponse:
        if not request.updates:
            raise BadRequest(INVALID, "updates: at least one update is required")
        if len(request.updates) > self._max_keys:
            raise BadRequest(grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"updates: {len(request.updates)} exceed the limit of {self._max_keys} per request")
        registry, now_ms = self._registry(), int(time.time() * 1000)
        valid = []
        for i, update in enumerate(request.updates):
            try:
                valid.append(validate_feature_update(convert.update_dict(update, now_ms), registry, now_ms,
                                                     self._skew_ms))
            except InvalidEvent as exc:
                raise type(exc)(exc.reason, f"updates[{i}]: {exc.detail}") from None
        _check_deadline(context)
        rows = newest_per_key(row_of(v) for v in valid)
        self._store.write(rows)
        invalidate_cached(self._cache, rows)
        return pb.PersistResponse(rows_written=len(rows))


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    close_backends: Callable[[], None]

    def stop(self, grace_s: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()  # load balancers stop sending before we stop serving
        self.server.stop(grace_s).wait()
        self.close_backends()


def start_server(settings: Settings, port: int | None = None) -> RunningServer:
    """Start serving on settings.serving.host:port (port 0 picks a free port)."""
    store, cache = wiring.feature_store(settings), wiring.hot_tier(settings)
    follower = RegistryFollower(wiring.config_store(settings))
    registry = lambda: follower.current  # noqa: E731
    reader = FeatureReader(store, cache, registry)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.serving.max_workers),
                         interceptors=[ErrorMapping()],
                         options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                  ("grpc.max_send_message_length", 64 * 1024 * 1024)])
    pb_grpc.add_FeatureServiceServicer_to_server(FeatureServicer(reader, store, cache, registry, settings), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bound = server.add_insecure_port(f"{settings.serving.host}:{settings.serving.port if port is None else port}")
    server.start()

    def close_backends() -> None:
        follower.close()
        store.close()
        cache.close()

    return RunningServer(server, bound, health_servicer, close_backends)


def run_server(settings: Settings) -> None:
    """`vahini serve`: serve until SIGTERM/SIGINT, then drain in-flight calls."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    running = start_server(settings)
    tune_gc_for_throughput()
    log.info("serving", address=f"{settings.serving.host}:{running.port}", metrics_port=settings.metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    running.stop()
