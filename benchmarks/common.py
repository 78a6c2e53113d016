"""Shared pieces of the benchmarks: real-service settings, synthetic data, tables."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

import numpy as np

from vahini.codecs.avro import FEATURE_UPDATE, AvroCodec, SchemaCatalog
from vahini.settings import CacheSettings, Settings

KAFKA = os.environ.get("VAHINI_BENCH_KAFKA", "127.0.0.1:9092")
CASSANDRA = os.environ.get("VAHINI_BENCH_CASSANDRA", "127.0.0.1:9042")
REDIS = os.environ.get("VAHINI_BENCH_REDIS", "redis://127.0.0.1:6379/0")
ZOOKEEPER = os.environ.get("VAHINI_BENCH_ZOOKEEPER", "127.0.0.1:2181")


def real_settings(run: str, keyspace: str, **overrides) -> Settings:
    """Settings of one benchmark run: its own keyspace, registry path and cache namespace."""
    overrides.setdefault("cache", CacheSettings(namespace=f"bench-{run}"))
    return Settings(event_log=f"kafka://{KAFKA}", feature_store=f"cassandra://{CASSANDRA}/{keyspace}",
                    hot_tier=REDIS, config_store=f"zk://{ZOOKEEPER}/vahini-bench-{run}", **overrides)


# The mix of one e-commerce day: product and user-activity counters dominate,
# embeddings (16 float32) ride on a third of the updates.
MIX = (("product_stats", 0.30), ("user_activity", 0.25), ("user_category_affinity", 0.20),
       ("user_profile", 0.15), ("product_core", 0.10))


@dataclass
class Synthetic:
    payloads: list[bytes]
    keys: list[bytes]


def synthesize(n: int, seed: int = 11, users: int = 200_000, products: int = 500_000,
               categories: int = 1_000) -> Synthetic:
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    codec = AvroCodec(SchemaCatalog.default())
    groups = rng.choices([g for g, _ in MIX], weights=[w for _, w in MIX], k=n)
    now = int(time.time() * 1000)
    embeddings = nrng.standard_normal((4096, 16)).astype(np.float32).round(4).tolist()
    payloads, keys = [], []
    for i, group in enumerate(groups):
        t = now - rng.randrange(3_600_000)
        u, p = f"u{rng.randrange(users)}", f"p{rng.randrange(products)}"
        if group == "product_stats":
            entity, k, values = "product", {"product_id": p}, {
                "ctr_7d": rng.random() / 10, "cvr_7d": rng.random() / 50, "rating": 4.2,
                "embedding": embeddings[i % 4096]}
        elif group == "product_core":
            entity, k, values = "product", {"product_id": p}, {
                "category_id": f"c{rng.randrange(categories)}", "brand": f"b{rng.randrange(900)}",
                "price": round(rng.uniform(99, 9999), 2), "in_stock": True}
        elif group == "user_activity":
            entity, k, values = "user", {"user_id": u}, {
                "clicks_1d": rng.randrange(90), "orders_7d": rng.randrange(6), "session_count_7d": rng.randrange(30)}
        elif group == "user_profile":
            entity, k, values = "user", {"user_id": u}, {
                "account_age_days": rng.randrange(4000), "is_premium": rng.random() < 0.1, "city": "Pune",
                "avg_order_value": rng.uniform(100, 3000), "embedding": embeddings[(i * 7) % 4096]}
        else:
            entity, k, values = "user_category", {"user_id": u, "category_id": f"c{rng.randrange(categories)}"}, {
                "clicks_30d": rng.randrange(200), "orders_30d": rng.randrange(8), "affinity": rng.random()}
        payloads.append(codec.encode(FEATURE_UPDATE, {"entity": entity, "keys": k, "group": group, "values": values,
                                                      "event_time_ms": t, "producer_id": "bench"}))
        keys.append(f"{entity}:{'|'.join(k.values())}".encode())
    return Synthetic(payloads, keys)


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [f"\n{title}", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
