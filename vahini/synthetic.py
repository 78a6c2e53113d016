"""A realistic synthetic stream of FeatureUpdates, Avro-encoded as producers send them:
the benchmarks' data, and the contract tests' input for the decoders."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from vahini.codecs.avro import FEATURE_UPDATE, AvroCodec, SchemaCatalog

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
    """`n` encoded FeatureUpdates of the sample registry's groups in MIX's proportions, and their keys."""
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
