"""FeatureService.Retrieve latency and throughput: 100 keys x 3 groups.

    .venv/bin/python -m benchmarks.retrieve [--users 20000] [--requests 1000] [--seconds 10]

Needs the real services. Writes 3 feature groups for --users users into
Cassandra, then serves them over gRPC twice: once with Redis caching (warmed)
and once with caching off, so every read goes to the store. Baselines measured
in the same run: the same keys read straight with scylla-driver (the store
adapter, no gRPC, no decoding) and straight from Redis with one MGET.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import numpy as np

from benchmarks.common import real_settings, table
from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.server import start_server
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.feature_rows import row_of
from vahini.registry import publish
from vahini.validation import EventLimits, validate_feature_update

GROUPS = ["user_profile", "user_activity", "user_preferences"]
KEYS_PER_REQUEST = 100


def registry_with_cache(redis_ttl_s: int) -> Path:
    """The sample registry with every group's cache policy set for this measurement."""
    directory = Path(tempfile.mkdtemp(prefix="vahini-bench-registry-"))
    shutil.copytree(SAMPLE_REGISTRY, directory, dirs_exist_ok=True)
    text = (directory / "feature_groups.yaml").read_text()
    text = text.replace("    cache: {redis_ttl_s: 300, lru_size: 10000, lru_ttl_s: 1}\n", "")
    text = text.replace("    cache: {redis_ttl_s: 600, lru_size: 50000, lru_ttl_s: 5}\n", "")
    text = text.replace("    version: 1\n", f"    version: 1\n    cache: {{redis_ttl_s: {redis_ttl_s}, lru_size: 0}}\n")
    (directory / "feature_groups.yaml").write_text(text)
    return directory


def populate(settings, users: int) -> None:
    store = wiring.config_store(settings)
    registry = publish.apply(registry_with_cache(600), store).registry
    store.close()
    feature_store = wiring.feature_store(settings)
    rng, now = random.Random(5), int(time.time() * 1000)
    rows = []
    for u in range(users):
        keys = {"user_id": f"u{u}"}
        for group, values in (
                ("user_profile", {"account_age_days": u, "city": "Pune", "is_premium": u % 9 == 0,
                                  "avg_order_value": 500.0, "embedding": [rng.random() for _ in range(16)]}),
                ("user_activity", {"clicks_1d": u % 50, "orders_7d": 1, "session_count_7d": 3}),
                ("user_preferences", {"favourite_brand": "b7", "price_sensitivity": 0.3,
                                      "category_embedding": [rng.random() for _ in range(8)]})):
            event = {"entity": "user", "keys": keys, "group": group, "values": values, "event_time_ms": now - 1000}
            rows.append(row_of(validate_feature_update(event, registry, now, EventLimits(max_future_skew_ms=0))))
    for i in range(0, len(rows), 5000):
        feature_store.write(rows[i:i + 5000])
    feature_store.close()


def key_sets(users: int, n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[f"u{rng.randrange(users)}" for _ in range(KEYS_PER_REQUEST)] for _ in range(n)]


def latencies(call, requests) -> np.ndarray:
    out = []
    for keys in requests:
        started = time.perf_counter()
        call(keys)
        out.append(time.perf_counter() - started)
    return np.array(out) * 1000


def throughput(call, requests, threads: int, seconds: float) -> float:
    done, stop = [0] * threads, threading.Event()

    def loop(i):
        j = i
        while not stop.is_set():
            call(requests[j % len(requests)])
            done[i] += 1
            j += threads

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return sum(done) / seconds


def grpc_call(stub):
    selectors = [pb.GroupSelector(group=g) for g in GROUPS]
    return lambda keys: stub.Retrieve(pb.RetrieveRequest(entity="user", keys=keys, groups=selectors), timeout=10)


def measure(name, call, requests, args) -> list:
    call(requests[0])
    lat = latencies(call, requests)
    rps = throughput(call, requests, args.threads, args.seconds)
    return [name, f"{np.percentile(lat, 50):.2f}", f"{np.percentile(lat, 99):.2f}", f"{rps:,.0f}"]


def serve(settings, registry_dir: Path, root: str):
    settings = settings.model_copy(update={"config_store": f"{settings.config_store}-{root}"})
    store = wiring.config_store(settings)
    publish.apply(registry_dir, store)
    store.close()
    running = start_server(settings, port=0)
    return running, pb_grpc.FeatureServiceStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests for p50/p99")
    parser.add_argument("--threads", type=int, default=8, help="client threads for requests/s")
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each throughput run")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    settings = real_settings(run, f"bench_read_{run}")
    print(f"writing 3 groups for {args.users:,} users")
    populate(settings, args.users)
    requests = key_sets(args.users, args.requests, seed=1)

    store = wiring.feature_store(settings)
    raw_store = measure("raw store read (driver, no gRPC/decoding)", lambda k: store.read("user", k, GROUPS),
                        requests, args)
    cache = wiring.hot_tier(settings)
    warm = key_sets(args.users, 1, seed=9)[0]
    raw_cache = measure("raw Redis MGET of 300 keys", lambda k: cache.get_many(
        [f"{settings.cache.namespace}:0:user:{g}:{key}" for key in k for g in GROUPS]), requests, args)

    cached_server, cached = serve(settings, registry_with_cache(600), "cached")
    for i in range(0, args.users, KEYS_PER_REQUEST):  # warm the cache with every key
        grpc_call(cached)([f"u{u}" for u in range(i, min(i + KEYS_PER_REQUEST, args.users))])
    from_cache = measure("Retrieve from the Redis cache", grpc_call(cached), requests, args)
    cached_server.stop(0)
    store_server, uncached = serve(settings, registry_with_cache(0), "store")
    from_store = measure("Retrieve from the store (cache off)", grpc_call(uncached), requests, args)
    store_server.stop(0)
    store.close()
    cache.close()
    del warm

    def ratio(row, base):
        return f"{float(row[1]) / float(base[1]):.2f}x"

    rows = [raw_cache + ["1.00x"], from_cache + [ratio(from_cache, raw_cache)],
            raw_store + ["1.00x"], from_store + [ratio(from_store, raw_store)]]
    print(table(f"Retrieve, {KEYS_PER_REQUEST} keys x {len(GROUPS)} groups, {args.requests} sequential requests, "
                f"{args.threads} client threads for requests/s",
                ["path", "p50 ms", "p99 ms", "requests/s", "p50 vs raw"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
