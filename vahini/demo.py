"""`vahini demo`: the whole write and read path on the embedded adapters.

Applies the sample registry, produces a synthetic e-commerce stream (users,
products, categories; feature updates, interactions, sessions) through the
event log, ingests the feature updates with the real worker, and reads features
back through the real read path.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from vahini import wiring
from vahini.producer import EventProducer
from vahini.registry import publish
from vahini.runtime import tune_gc_for_throughput
from vahini.settings import InteractionSettings, Settings

SAMPLE_REGISTRY = Path(__file__).resolve().parent / "samples" / "registry"


@dataclass(frozen=True)
class DemoSize:
    users: int = 10_000
    products: int = 50_000
    categories: int = 200
    interactions: int = 50_000
    sessions: int = 10_000


DEMO_INACTIVITY_S = 2.0
LIVE_CLICKS = 5  # u42's live session: served hot, then cold after the idle flush


def embedded_settings(workdir: Path) -> Settings:
    return Settings(event_log=f"sqlite:///{workdir}/events.db", feature_store=f"sqlite:///{workdir}/features.db",
                    feature_cache=f"sqlite:///{workdir}/hot.db", config_store=f"file://{workdir}/config",
                    interactions=InteractionSettings(hot_tier=f"sqlite:///{workdir}/interactions-hot.db",
                                                     inactivity_timeout_s=DEMO_INACTIVITY_S))


def _vector(rng: random.Random, dim: int = 16) -> list[float]:
    return [round(rng.gauss(0, 1), 4) for _ in range(dim)]


CITIES = ("Bengaluru", "Mumbai", "Delhi", "Pune", "Jaipur", "Surat", "Kolkata", "Chennai")
INTERACTION_KINDS = ["CLICK"] * 90 + ["WISHLIST"] * 7 + ["ORDER"] * 3
BRANDS = ("acme", "globex", "initech", "umbrella", "hooli", "stark")
YEAR_MS = 365 * 86_400_000


class _Stream:
    """One synthetic e-commerce hour, sent through the producer API."""

    def __init__(self, producer: EventProducer, size: DemoSize, rng: random.Random, now_ms: int):
        self.producer, self.size, self.rng, self.now_ms = producer, size, rng, now_ms
        self.category_of = {p: f"c{rng.randrange(size.categories)}" for p in range(size.products)}

    def t(self) -> int:
        return self.now_ms - self.rng.randrange(0, 3_600_000)

    def user(self, u: int) -> int:
        rng, send, keys = self.rng, self.producer.feature_update, {"user_id": f"u{u}"}
        send("user", keys, "user_profile", {
            "account_age_days": rng.randrange(1, 3000), "is_premium": rng.random() < 0.1, "city": rng.choice(CITIES),
            "avg_order_value": round(rng.lognormvariate(6, 0.6), 2), "embedding": _vector(rng)}, self.t())
        send("user", keys, "user_activity", {
            "clicks_1d": rng.randrange(0, 80), "orders_7d": rng.randrange(0, 5),
            "session_count_7d": rng.randrange(0, 30)}, self.t())
        send("user", keys, "user_preferences", {
            "favourite_brand": f"brand{rng.randrange(500)}", "price_sensitivity": round(rng.random(), 3),
            "category_embedding": _vector(rng, 8)}, self.t())
        for c in rng.sample(range(self.size.categories), 3):
            send("user_category", {**keys, "category_id": f"c{c}"}, "user_category_affinity", {
                "clicks_30d": rng.randrange(0, 200), "orders_30d": rng.randrange(0, 6),
                "affinity": round(rng.random(), 4)}, self.t())
        return 6

    def product(self, p: int) -> int:
        rng, send, keys = self.rng, self.producer.feature_update, {"product_id": f"p{p}"}
        send("product", keys, "product_core", {
            "category_id": self.category_of[p], "brand": rng.choice(BRANDS),
            "price": round(rng.lognormvariate(6.5, 0.8), 2), "in_stock": rng.random() < 0.95,
            "listed_at_ms": self.now_ms - rng.randrange(YEAR_MS)}, self.t())
        send("product", keys, "product_stats", {
            "ctr_7d": round(rng.betavariate(2, 40), 5), "cvr_7d": round(rng.betavariate(1, 80), 5),
            "rating": round(rng.uniform(2.5, 5), 1), "embedding": _vector(rng)}, self.t())
        return 2

    def interaction(self, i: int) -> None:
        p = self.rng.randrange(self.size.products)
        self.producer.interaction(f"e{i}", f"u{self.rng.randrange(self.size.users)}", f"p{p}",
                                  self.rng.choice(INTERACTION_KINDS), self.t(), category_id=self.category_of[p],
                                  attributes={"surface": "home"})

    def session(self, s: int) -> None:
        user, start = f"u{self.rng.randrange(self.size.users)}", self.t()
        self.producer.session_event(user, f"s{s}", "START", start)
        self.producer.session_event(user, f"s{s}", "END",
                                    min(self.now_ms, start + self.rng.randrange(60_000, 1_800_000)))


def synthesize(producer: EventProducer, size: DemoSize, rng: random.Random, now_ms: int) -> int:
    """Produce the synthetic stream; return the number of feature updates."""
    stream = _Stream(producer, size, rng, now_ms)
    updates = 0
    total = size.users * 6 + size.products * 2 + size.interactions + size.sessions * 2
    with tqdm(total=total, unit="ev", unit_scale=True, desc="produce") as bar:
        for u in range(size.users):
            updates += stream.user(u)
            bar.update(6)
        for p in range(size.products):
            updates += stream.product(p)
            bar.update(2)
        for i in range(size.interactions):
            stream.interaction(i)
        bar.update(size.interactions)
        for s in range(size.sessions):
            stream.session(s)
        bar.update(size.sessions * 2)
        producer.flush()
    return updates


def _print_features(title: str, results) -> None:
    from vahini.serving.retrieval import STATUS_NAMES

    print(f"\n{title}:")
    for r in results:
        for j, name in enumerate(r.features):
            value = r.values[name][0]
            value = [round(float(x), 3) for x in value[:4]] + ["…"] if getattr(value, "ndim", 0) else value
            print(f"  {r.group + '.' + name:<36} {str(value):<44} {STATUS_NAMES[r.status[0, j]]}")


def _ingest(settings: Settings, backends, updates: int):
    from vahini.streams.app import build_worker

    topic = settings.topics.feature_updates
    ends = {(topic, p): o for p, o in backends.event_log.end_offsets(topic).items()}
    worker = build_worker(settings, backends, stop_offsets=ends)
    tune_gc_for_throughput()
    with tqdm(total=updates, unit="ev", unit_scale=True, desc="ingest ") as bar:
        stats = worker.run(threading.Event(), on_batch=bar.update)
    worker.close()
    return stats


def run_demo(workdir: Path, size: DemoSize = DemoSize(), seed: int = 7) -> dict:
    from vahini.serving.retrieval import FeatureReader
    from vahini.streams.app import Backends

    shutil.rmtree(workdir, ignore_errors=True)
    settings = embedded_settings(workdir)
    print(f"Vahini demo: embedded adapters under {workdir} (SQLite event log, store and caches)")
    registry = publish.apply(SAMPLE_REGISTRY, wiring.config_store(settings)).registry
    print(f"applied registry: {len(registry.entities)} entities, {len(registry.groups)} feature groups, "
          f"{len(registry.models)} model graphs")

    backends = Backends.open(settings)
    producer = EventProducer(backends.event_log, _codec(), lambda: backends.registry.current, settings, "demo")
    produce_started = time.perf_counter()
    updates = synthesize(producer, size, random.Random(seed), int(time.time() * 1000))
    produce_s = time.perf_counter() - produce_started
    stats = _ingest(settings, backends, updates)

    reader = FeatureReader(backends.store, backends.cache, lambda: backends.registry.current)
    _print_features("user u42", reader.retrieve("user", ["u42"],
                                                ["user_profile", "user_activity", "user_preferences"]))
    _print_features("product p1234", reader.retrieve("product", ["p1234"], ["product_core", "product_stats"]))
    summary = {"feature_updates": updates, "produce_seconds": round(produce_s, 2),
               "ingested_events": stats.events, "rows_written": stats.rows_written,
               "dead_lettered": stats.dead_lettered, "ingest_seconds": round(stats.seconds, 2),
               "ingest_events_per_s": round(stats.events / max(stats.seconds, 1e-9))}
    print(f"\ningest throughput: {summary['ingest_events_per_s']:,} events/s "
          f"({stats.events:,} events in {stats.seconds:.1f}s, one worker process, embedded SQLite store)")
    summary.update(_sessions(settings, backends.event_log, producer))
    summary.update(_model_proxy(settings))
    _print_console(workdir, settings)
    print(json.dumps(summary))
    backends.close()
    return summary


def _print_console(workdir: Path, settings: Settings) -> None:
    """Write the demo's settings to a file, so `vahini console` (and every other command)
    can open what the demo left behind, and say where the console will be."""
    path = workdir.resolve() / "settings.toml"
    path.write_text(demo_settings_toml(workdir))
    c = settings.console
    print(f"\nSee it in the operator console: vahini console --settings {path}\n"
          f"  then open http://{c.host}:{c.port}/registry (the registry, the model graphs drawn, Try it, Live, "
          f"dead letters)")


def demo_settings_toml(workdir: Path) -> str:
    """The settings of `embedded_settings(workdir)` as a TOML file, with absolute paths."""
    w = workdir.resolve()
    return (f'event_log = "sqlite:///{w}/events.db"\nfeature_store = "sqlite:///{w}/features.db"\n'
            f'feature_cache = "sqlite:///{w}/hot.db"\nconfig_store = "file://{w}/config"\n\n'
            f'[interactions]\nhot_tier = "sqlite:///{w}/interactions-hot.db"\n'
            f"inactivity_timeout_s = {DEMO_INACTIVITY_S}\n")


def _sessions(settings: Settings, event_log, producer: EventProducer) -> dict:
    """The interaction store: ingest the stream's interactions and sessions, then a live
    session of u42 served hot, flushed to the cold tier when it goes idle."""
    from vahini.serving.interactions import InteractionReader
    from vahini.streams.app import build_interaction_worker, interaction_topics
    from vahini.ports.interaction_store import HistoryQuery

    cold, hot = wiring.cold_interactions(settings), wiring.interaction_hot_tier(settings)
    worker = build_interaction_worker(settings, event_log, cold, hot)
    reader = InteractionReader(wiring.interaction_hot_tier(settings), wiring.cold_interactions(settings), settings)
    total = sum(sum(event_log.end_offsets(t).values()) for t in interaction_topics(settings))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    with tqdm(total=total, unit="ev", unit_scale=True, desc="ingest interactions") as bar:
        while worker.stats.events < total:
            bar.update(worker.stats.events - bar.n)
            time.sleep(0.1)
        bar.update(total - bar.n)
    before = worker.stats.cold_writes

    now = int(time.time() * 1000)
    producer.session_event("u42", "live", "START", now)
    for k in range(LIVE_CLICKS):
        producer.interaction(f"live-{k}", "u42", f"p{k * 7}", "CLICK", now + k, category_id="c1")
    producer.flush()
    history = _wait_for_source(reader, HistoryQuery("u42", limit=LIVE_CLICKS), "hot")
    _print_history("u42 during the session (served from the hot tier)", history)
    during = worker.stats.cold_writes - before
    print(f"  cold-tier writes so far for these {LIVE_CLICKS} clicks: {during}")
    history = _wait_for_source(reader, HistoryQuery("u42", limit=LIVE_CLICKS), "cold", DEMO_INACTIVITY_S * 10)
    _print_history(f"u42 after {DEMO_INACTIVITY_S:g} s without an event (flushed, evicted, served from the cold "
                   f"tier)", history)
    after = worker.stats.cold_writes - before
    print(f"  cold-tier writes for the whole session: {after} (write-through would have made {LIVE_CLICKS})")
    stop.set()
    thread.join(30)
    worker.close()
    reader.close()
    hot.close()
    cold.close()
    s = worker.stats
    return {"interaction_events": s.events, "interactions_to_hot": s.to_hot, "interactions_to_cold": s.to_cold,
            "sessions_started": s.sessions_started, "cold_writes": s.cold_writes,
            "live_session_clicks": LIVE_CLICKS, "live_session_cold_writes": after}


# The reference model server's scorers (sigmoid of a weighted sum) for home_ranker_scored:
# ctr_model reads its 4 feature columns; rank_a and rank_b also read ctr_model's score.
DEMO_MODELS = {"ctr_model": ((-0.3, 25.0, 40.0, 0.4), 0.0), "rank_a": ((-0.1, 10.0, 20.0, 0.2, 3.0), -1.0),
               "rank_b": (None, 0.0)}
SHOWN_COLUMNS = ("product.price", "log_price", "price_band", "brand=acme", "category_bucket", "days_listed",
                 "stats.ctr_7d", "clicks_on_category", "recent_categories_0")


def _model_proxy(settings: Settings) -> dict:
    """Start a reference model server and the Model Proxy, and ask for home_ranker's
    matrix and home_ranker_scored's scores through the client, as a ranker would."""
    from vahini.serving.reference_model import LinearModel, start_model_server
    from vahini.serving.server import start_server

    model_server, model_port, _ = start_model_server({n: LinearModel(w, b) for n, (w, b) in DEMO_MODELS.items()})
    serving = settings.serving.model_copy(update={"model_endpoints": {"reference": f"127.0.0.1:{model_port}"}})
    running = start_server(settings.model_copy(update={"serving": serving}), port=0)
    products = [f"p{p}" for p in (1234, 7, 42, 999_999)]  # the last one does not exist: defaults
    try:
        summary = _query_models(f"127.0.0.1:{running.port}", products)
    finally:
        running.stop(0)
        model_server.stop(0)
    return summary


class _Matrix(NamedTuple):
    """What the demo shows of a GetFeatures reply."""

    version: int
    columns: list[str]
    row_ids: list[str]
    matrix: np.ndarray
    counts: dict[str, dict[str, int]]
    scores: dict[str, np.ndarray]
    endpoints: dict[str, str]


def _get_features(stub, model: str, **context: list[str] | str) -> _Matrix:
    from vahini.serving.api import model_proxy_pb2 as mpb

    reply = stub.GetFeatures(mpb.GetFeaturesRequest(model=model, context={
        name: mpb.ContextIds(ids=[ids] if isinstance(ids, str) else ids) for name, ids in context.items()}), timeout=5.0)
    return _Matrix(reply.version, list(reply.columns), list(reply.row_ids),
                   np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape)),
                   {c: {"missing": n.missing} for c, n in reply.counts.items()},
                   {s.node: np.frombuffer(s.values, "<f4") for s in reply.scores},
                   {s.node: s.endpoint for s in reply.scores})


def _query_models(target: str, products: list[str]) -> dict:
    import grpc

    from vahini.serving.api.model_proxy_pb2_grpc import ModelProxyStub

    with grpc.insecure_channel(target) as channel:
        stub = ModelProxyStub(channel)
        features = _get_features(stub, "home_ranker", user_id="u42", product_ids=products)
        scored = _get_features(stub, "home_ranker_scored", user_id="u42", product_ids=products)
        latencies = []
        for _ in range(50):
            started = time.perf_counter()
            _get_features(stub, "home_ranker", user_id="u42", product_ids=products)
            latencies.append((time.perf_counter() - started) * 1000)
    _print_matrix(features)
    print(f"\nModel Proxy: home_ranker_scored v{scored.version}, scored by the reference model server "
          f"(KServe v2 gRPC):")
    for node, values in scored.scores.items():
        print(f"  {node:<5} by {scored.endpoints[node]:<20} " + " ".join(f"{v:>8.4f}" for v in values))
    p50 = float(np.percentile(latencies, 50))
    print(f"  GetFeatures latency over 50 calls: p50 {p50:.2f} ms, p99 {np.percentile(latencies, 99):.2f} ms "
          f"(embedded SQLite store, one process)")
    return {"model_proxy_shape": list(features.matrix.shape), "model_proxy_columns": list(features.columns),
            "model_proxy_products": len(products), "model_proxy_p50_ms": round(p50, 2),
            "model_proxy_scores": {n: [round(float(v), 4) for v in s] for n, s in scored.scores.items()}}


def _print_matrix(features) -> None:
    shown = [features.columns.index(c) for c in SHOWN_COLUMNS]
    print(f"\nModel Proxy: home_ranker v{features.version} for u42 and {len(features.row_ids)} products "
          f"({features.matrix.shape[0]} x {features.matrix.shape[1]} float32 matrix, {len(shown)} of its columns):")
    print("  " + " ".join(f"{c[:14]:>14}" for c in ["row", *SHOWN_COLUMNS]))
    for row_id, row in zip(features.row_ids, features.matrix):
        print("  " + " ".join([f"{row_id:>14}", *(f"{row[j]:>14.4g}" for j in shown)]))
    defaulted = {c: n["missing"] for c, n in features.counts.items() if c in SHOWN_COLUMNS}
    print(f"  defaults used (missing values) per column: {defaulted}")


def _wait_for_source(reader, query, source: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        history = reader.history(query)
        if history.source == source and history.interactions or time.monotonic() > deadline:
            return history
        time.sleep(0.1)


def _print_history(title: str, history) -> None:
    print(f"\n{title}:")
    for i in history.interactions:
        when = datetime.fromtimestamp(i.event_time_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
        print(f"  {when}  {i.type:<8} {i.product_id:<8} {i.category_id or '-':<6} {i.event_id}")


def _codec():
    from vahini.codecs.avro import AvroCodec, SchemaCatalog

    return AvroCodec(SchemaCatalog.default())
