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
from pathlib import Path

from tqdm import tqdm

from vahini import wiring
from vahini.producer import EventProducer
from vahini.registry import publish
from vahini.runtime import tune_gc_for_throughput
from vahini.settings import Settings

SAMPLE_REGISTRY = Path(__file__).resolve().parent / "samples" / "registry"


@dataclass(frozen=True)
class DemoSize:
    users: int = 10_000
    products: int = 50_000
    categories: int = 200
    interactions: int = 50_000
    sessions: int = 10_000


def embedded_settings(workdir: Path) -> Settings:
    return Settings(event_log=f"sqlite:///{workdir}/events.db", feature_store=f"sqlite:///{workdir}/features.db",
                    hot_tier="memory://", config_store=f"file://{workdir}/config")


def _vector(rng: random.Random, dim: int = 16) -> list[float]:
    return [round(rng.gauss(0, 1), 4) for _ in range(dim)]


def synthesize(producer: EventProducer, size: DemoSize, rng: random.Random, now_ms: int) -> int:
    """Produce the synthetic stream; return the number of feature updates."""
    cities = ["Bengaluru", "Mumbai", "Delhi", "Pune", "Jaipur", "Surat", "Kolkata", "Chennai"]
    category_of = {p: f"c{rng.randrange(size.categories)}" for p in range(size.products)}
    t = lambda: now_ms - rng.randrange(0, 3_600_000)  # noqa: E731  last hour
    updates = 0
    total = size.users * 6 + size.products * 2 + size.interactions + size.sessions * 2
    with tqdm(total=total, unit="ev", unit_scale=True, desc="produce") as bar:
        for u in range(size.users):
            producer.feature_update("user", {"user_id": f"u{u}"}, "user_profile", {
                "account_age_days": rng.randrange(1, 3000), "is_premium": rng.random() < 0.1,
                "city": rng.choice(cities), "avg_order_value": round(rng.lognormvariate(6, 0.6), 2),
                "embedding": _vector(rng)}, t())
            producer.feature_update("user", {"user_id": f"u{u}"}, "user_activity", {
                "clicks_1d": rng.randrange(0, 80), "orders_7d": rng.randrange(0, 5),
                "session_count_7d": rng.randrange(0, 30)}, t())
            producer.feature_update("user", {"user_id": f"u{u}"}, "user_preferences", {
                "favourite_brand": f"brand{rng.randrange(500)}", "price_sensitivity": round(rng.random(), 3),
                "category_embedding": _vector(rng, 8)}, t())
            for c in rng.sample(range(size.categories), 3):
                producer.feature_update("user_category", {"user_id": f"u{u}", "category_id": f"c{c}"},
                                        "user_category_affinity", {
                                            "clicks_30d": rng.randrange(0, 200), "orders_30d": rng.randrange(0, 6),
                                            "affinity": round(rng.random(), 4)}, t())
            bar.update(6)
            updates += 6
        for p in range(size.products):
            producer.feature_update("product", {"product_id": f"p{p}"}, "product_core", {
                "category_id": category_of[p], "brand": f"brand{rng.randrange(500)}",
                "price": round(rng.lognormvariate(6.5, 0.8), 2), "in_stock": rng.random() < 0.95}, t())
            producer.feature_update("product", {"product_id": f"p{p}"}, "product_stats", {
                "ctr_7d": round(rng.betavariate(2, 40), 5), "cvr_7d": round(rng.betavariate(1, 80), 5),
                "rating": round(rng.uniform(2.5, 5), 1), "embedding": _vector(rng)}, t())
            bar.update(2)
            updates += 2
        kinds = ["CLICK"] * 90 + ["WISHLIST"] * 7 + ["ORDER"] * 3
        for i in range(size.interactions):
            p = rng.randrange(size.products)
            producer.interaction(f"e{i}", f"u{rng.randrange(size.users)}", f"p{p}", rng.choice(kinds), t(),
                                 category_id=category_of[p], attributes={"surface": "home"})
        bar.update(size.interactions)
        for s in range(size.sessions):
            user, start = f"u{rng.randrange(size.users)}", t()
            producer.session_event(user, f"s{s}", "START", start)
            producer.session_event(user, f"s{s}", "END", min(now_ms, start + rng.randrange(60_000, 1_800_000)))
        bar.update(size.sessions * 2)
        producer.flush()
    return updates


def run_demo(workdir: Path, size: DemoSize = DemoSize(), seed: int = 7) -> dict:
    from serving.retrieval import FeatureReader, STATUS_NAMES
    from streams.app import Backends, build_worker

    shutil.rmtree(workdir, ignore_errors=True)
    settings = embedded_settings(workdir)
    print(f"Vahini demo: embedded adapters under {workdir} (SQLite event log and store, in-process cache)")
    registry = publish.apply(SAMPLE_REGISTRY, wiring.config_store(settings))
    print(f"applied registry: {len(registry.entities)} entities, {len(registry.groups)} feature groups, "
          f"{len(registry.models)} model graphs")

    backends = Backends.open(settings)
    producer = EventProducer(backends.event_log, _codec(), lambda: backends.registry.current, settings, "demo")
    produce_started = time.perf_counter()
    updates = synthesize(producer, size, random.Random(seed), int(time.time() * 1000))
    produce_s = time.perf_counter() - produce_started

    topic = settings.topics.feature_updates
    ends = {(topic, p): o for p, o in backends.event_log.end_offsets(topic).items()}
    worker = build_worker(settings, backends, stop_offsets=ends)
    tune_gc_for_throughput()
    with tqdm(total=updates, unit="ev", unit_scale=True, desc="ingest ") as bar:
        stats = worker.run(threading.Event(), on_batch=bar.update)
    worker.close()

    reader = FeatureReader(backends.store, backends.cache, lambda: backends.registry.current)
    user = reader.retrieve("user", ["u42"], ["user_profile", "user_activity", "user_preferences"])
    product = reader.retrieve("product", ["p1234"], ["product_core", "product_stats"])
    for title, results in (("user u42", user), ("product p1234", product)):
        print(f"\n{title}:")
        for r in results:
            for j, name in enumerate(r.features):
                value = r.values[name][0]
                value = [round(float(x), 3) for x in value[:4]] + ["…"] if getattr(value, "ndim", 0) else value
                print(f"  {r.group + '.' + name:<36} {str(value):<44} {STATUS_NAMES[r.status[0, j]]}")
    summary = {"feature_updates": updates, "produce_seconds": round(produce_s, 2),
               "ingested_events": stats.events, "rows_written": stats.rows_written,
               "dead_lettered": stats.dead_lettered, "ingest_seconds": round(stats.seconds, 2),
               "ingest_events_per_s": round(stats.events / max(stats.seconds, 1e-9))}
    print(f"\ningest throughput: {summary['ingest_events_per_s']:,} events/s "
          f"({stats.events:,} events in {stats.seconds:.1f}s, one worker process, embedded SQLite store)")
    print(json.dumps(summary))
    backends.close()
    return summary


def _codec():
    from vahini.codecs.avro import AvroCodec, SchemaCatalog

    return AvroCodec(SchemaCatalog.default())
