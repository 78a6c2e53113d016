"""The gRPC server: FeatureService (Retrieve, Persist) and InteractionService, with
health checking and reflection."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Callable

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from vahini import wiring
from vahini.codecs import loops
from vahini.errors import BadSettings, InvalidEvent
from vahini.feature_cache import FeatureCache
from vahini.feature_rows import newest_per_key, row_of, unexpired
from vahini.indexed_store import IndexedFeatureStore
from vahini.logs import get_logger
from vahini.runtime import pin_to_cpus, tune_gc_for_throughput
from vahini.ports.feature_store import FeatureStore
from vahini.registry.model import Registry
from vahini.registry.publish import RegistryFollower
from vahini.settings import Settings
from vahini.validation import EventLimits, validate_feature_update
from vahini.serving import convert
from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.api import interaction_service_pb2_grpc as ipb_grpc
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.grpc_errors import BadRequest, ErrorMapping, time_left
from vahini.serving.interaction_service import INTERACTION_SERVICE_NAME, InteractionServicer
from vahini.serving.interactions import InteractionReader
from vahini.serving.model_proxy import ModelExecutor
from vahini.serving.feature_log import FeatureLogger
from vahini.serving.model_proxy_service import MODEL_PROXY_SERVICE_NAME, ModelProxyServicer
from vahini.serving.scoring import Scorer
from vahini.serving.auth import CallerAuth, CallerTable
from vahini.serving.tls import server_credentials
from vahini.serving.retrieval import FeatureReader
from vahini.serving.search import InvalidSearch, VectorSearch

log = get_logger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FeatureService"].full_name
INVALID = grpc.StatusCode.INVALID_ARGUMENT


class FeatureServicer(pb_grpc.FeatureServiceServicer):
    def __init__(self, reader: FeatureReader, store: FeatureStore, cache: FeatureCache,
                 registry: Callable[[], Registry], settings: Settings, search: VectorSearch | None = None):
        self._search = search
        self._reader = reader
        self._store = store
        self._cache = cache
        self._registry = registry
        self._max_keys = settings.serving.max_keys_per_request
        self._limits = EventLimits.of(settings.ingest)

    def Retrieve(self, request: pb.RetrieveRequest, context) -> pb.RetrieveResponse:
        self._check_retrieve(request)
        selected = {g.group: list(g.features) for g in request.groups}
        results = self._reader.retrieve(request.entity, list(request.keys), list(selected),
                                        {g: f for g, f in selected.items() if f}, timeout_s=time_left(context),
                                        registry=self._registry())
        time_left(context)
        return pb.RetrieveResponse(keys=request.keys, groups=[convert.group_values(r) for r in results])

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

    def Search(self, request: pb.SearchRequest, context) -> pb.SearchResponse:
        if self._search is None:
            raise BadRequest(grpc.StatusCode.UNIMPLEMENTED, "this server was built without vector search")
        if not request.index:
            raise BadRequest(INVALID, "index: required")
        filters = {name: _filter_value(name, value) for name, value in request.filters.items()}
        vector = np.asarray(request.vector, dtype=np.float32) if request.vector else None
        registry = self._registry()
        try:
            hits = self._search.search(request.index, request.k, filters, vector, request.key,
                                       timeout_s=time_left(context), registry=registry)
        except InvalidSearch as exc:
            raise BadRequest(INVALID, str(exc)) from None
        time_left(context)
        return pb.SearchResponse(keys=[h.key for h in hits], scores=[h.score for h in hits],
                                 metric=registry.indexes[request.index].metric)

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
                                                     self._limits))
            except InvalidEvent as exc:
                raise type(exc)(exc.reason, f"updates[{i}]: {exc.detail}") from None
        rows = unexpired(newest_per_key(row_of(v) for v in valid), now_ms)
        self._store.write(rows, timeout_s=time_left(context))
        self._cache.fence(rows)
        self._reader.forget(rows)
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


def _filter_value(name: str, value: pb.Value):
    kind = value.WhichOneof("kind")
    if kind not in ("int_value", "bool_value", "string_value"):
        raise BadRequest(INVALID, f"filters[{name}]: a filter equals a bool, an int or a string, not {kind}")
    return getattr(value, kind)


@dataclass
class ReadSide:
    """What the servicers read through, wired from settings; `close` closes its clients."""

    store: IndexedFeatureStore
    cache: FeatureCache
    registry: Callable[[], Registry]
    reader: FeatureReader
    histories: InteractionReader
    scorer: Scorer
    close: Callable[[], None]

    feature_log: FeatureLogger

    def search(self, settings: Settings) -> VectorSearch:
        return VectorSearch(self.store, self.reader, self.registry, settings.vectors.max_k)

    def model_proxy(self, settings: Settings) -> ModelProxyServicer:
        return ModelProxyServicer(ModelExecutor(self.reader, self.registry, self.histories, self.scorer,
                                                search=self.search(settings)),
                                  settings.serving.max_keys_per_request, self.feature_log)


def open_read_side(settings: Settings) -> ReadSide:
    follower = RegistryFollower(wiring.config_store(settings))
    registry = lambda: follower.current  # noqa: E731
    store = IndexedFeatureStore(wiring.feature_store(settings), lambda: wiring.vector_index(settings), registry)
    cache = wiring.feature_cache(settings, store)
    histories = InteractionReader(wiring.interaction_hot_tier(settings, timeout_s=settings.cache.timeout_ms / 1000),
                                  wiring.cold_interactions(settings), settings)
    scorer = Scorer(settings.serving.model_endpoints)
    event_log = wiring.event_log(settings)
    feature_log = FeatureLogger(event_log, settings.topics.feature_log, settings.topics.partitions,
                                settings.serving.feature_log_queue)

    def close() -> None:
        feature_log.close()
        event_log.close()
        scorer.close()
        histories.close()
        follower.close()
        cache.close()
        store.close()
    return ReadSide(store, cache, registry, FeatureReader(store, cache, registry), histories, scorer, close,
                    feature_log)


def start_server(settings: Settings, port: int | None = None) -> RunningServer:
    """Start serving on settings.serving.host:port (port 0 picks a free port). A port
    that another process already serves is refused (BadSettings), never shared."""
    side = open_read_side(settings)
    close_backends = side.close
    try:
        server = _grpc_server(settings)
    except BadSettings:
        close_backends()
        raise
    pb_grpc.add_FeatureServiceServicer_to_server(
        FeatureServicer(side.reader, side.store, side.cache, side.registry, settings, side.search(settings)), server)
    ipb_grpc.add_InteractionServiceServicer_to_server(InteractionServicer(side.histories), server)
    mpb_grpc.add_ModelProxyServicer_to_server(side.model_proxy(settings), server)
    health_servicer = _add_health_and_reflection(server)
    address = f"{settings.serving.host}:{settings.serving.port if port is None else port}"
    try:
        bound = _add_port(server, address, settings.serving.tls)
    except RuntimeError as exc:  # grpcio >= 1.60 raises where older versions returned 0
        bound, cause = 0, exc
    else:
        cause = None
    if not bound:
        close_backends()
        raise BadSettings(f"cannot listen on {address}: the port is in use or the address is not local") from cause
    server.start()
    return RunningServer(server, bound, health_servicer, close_backends)


def _add_port(server: grpc.Server, address: str, tls) -> int:
    if tls.cert_file is None and tls.key_file is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, server_credentials(tls))


def _grpc_server(settings: Settings) -> grpc.Server:
    """Calls beyond `max_in_flight` get RESOURCE_EXHAUSTED at once instead of queueing
    without limit; SO_REUSEPORT is off, so two servers never split one port's traffic."""
    interceptors: list[grpc.ServerInterceptor] = [ErrorMapping()]
    auth = settings.serving.auth
    if auth.tokens_file is not None:  # outermost: refused calls never reach a handler
        interceptors.insert(0, CallerAuth(CallerTable(auth.tokens_file, auth.reload_interval_s), auth.open_reflection))
    return grpc.server(futures.ThreadPoolExecutor(max_workers=settings.serving.max_workers),
                       interceptors=interceptors,
                       maximum_concurrent_rpcs=settings.serving.max_in_flight,
                       options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                                ("grpc.so_reuseport", 0)])


def _add_health_and_reflection(server: grpc.Server) -> health.HealthServicer:
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME, INTERACTION_SERVICE_NAME, MODEL_PROXY_SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, INTERACTION_SERVICE_NAME, MODEL_PROXY_SERVICE_NAME,
                                         health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return health_servicer


def run_server(settings: Settings) -> None:
    """`vahini serve`: serve until SIGTERM/SIGINT, then drain in-flight calls."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    # gRPC's poller is a Python thread: it must get the GIL quickly to refuse excess
    # calls, or they queue unseen in front of the in-flight limit.
    sys.setswitchinterval(settings.serving.gil_switch_interval_ms / 1000)
    if settings.serving.cpus:
        pin_to_cpus(settings.serving.cpus, "serving.cpus")
    running = start_server(settings)
    tune_gc_for_throughput()
    log.info("serving", address=f"{settings.serving.host}:{running.port}", metrics_port=settings.metrics_port,
             compiled_loops=loops.built is not None, cpus=sorted(os.sched_getaffinity(0)))
    if loops.built is None:
        log.warning("compiled_loops_missing", detail="vahini.codecs._loops was not built (no C compiler when "
                    "Vahini was installed): reads run the same loops in Python, at about 1.7x the CPU per request")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    running.stop()
