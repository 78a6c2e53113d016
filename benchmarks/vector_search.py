"""Vector search: recall@100 and serving latency, against exact search and usearch in process.

    .venv/bin/python -m benchmarks.vector_search [--vectors 100000] [--recall-sizes 100000,1000000]
        [--engines embedded,cassandra] [--data clustered] [--requests 400] [--rounds 4]

Needs the real services for the `cassandra` engine (make services-start). Vectors are
64-dimensional; `--data clustered` draws them around 1,000 centres, as embeddings of a
catalogue fall, and `random` draws them uniformly on the sphere, the hardest case for
any graph index. Part 1, quality: for each size, the vectors go into each engine, and
200 held-out queries of the same distribution are answered with k=100; recall@100 is
the share of the exact top 100 (numpy, brute force over every vector) that the engine
returned. Beside the engines, usearch itself in this process with the same parameters.

Part 2, serving, at `--vectors`: a `vahini serve` process per engine answers sequential
`FeatureService.Search` calls (k=100) and `ModelProxy.GetFeatures` calls of a graph whose
200 rows come from a candidates step. In the same rounds, in this process: exact search
with numpy, and usearch. Requests/s per serving core is requests over the serving
process's CPU seconds (/proc), so the other processes on the machine do not count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import CASSANDRA, ZOOKEEPER, table
from vahini import wiring
from vahini.codecs import feature_blob
from vahini.demo import SAMPLE_REGISTRY
from vahini.indexed_store import IndexedFeatureStore
from vahini.ports.feature_store import FeatureRow
from vahini.registry import publish
from vahini.settings import Settings

DIM, K, CANDIDATES = 64, 100, 200
INDEX = """\
indexes:
  - {name: similar_products, group: product_stats, feature: embedding, metric: cosine}
models:
  - name: near_ranker
    context: [user_id]
    lookups:
      - {name: user, group: user_profile, keys: {user_id: context.user_id}}
      - {name: product, group: product_core, keys: {product_id: row}}
    candidates: {name: near, index: similar_products, query: user.embedding, k: 200}
    rows: near
    features: [near.ctr_7d, near.cvr_7d, product.price, {name: log_price, from: product.price, transform: log1p}]
"""


def vectors_of(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        v = rng.standard_normal((n, DIM)).astype(np.float32)
    else:
        centres = np.random.default_rng(1).standard_normal((1000, DIM)).astype(np.float32)
        v = centres[rng.integers(0, 1000, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def exact_top(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indexes of each query's k nearest by cosine (unit vectors: the dot product)."""
    out = []
    for start in range(0, len(queries), 50):
        s = queries[start:start + 50] @ base.T
        out.append(np.argsort(-s, axis=1)[:, :k])
    return np.vstack(out)


def registry_dir(root: Path) -> Path:
    directory = root / "registry"
    shutil.copytree(SAMPLE_REGISTRY, directory)
    groups = directory / "feature_groups.yaml"
    groups.write_text(groups.read_text().replace("{name: embedding, type: vector, dim: 16}",
                                                 f"{{name: embedding, type: vector, dim: {DIM}}}"))
    (directory / "vectors.yaml").write_text(INDEX)
    return directory


def settings_for(engine: str, root: Path, run: str) -> Settings:
    if engine == "embedded":
        return Settings(feature_store=f"sqlite:///{root}/features.db", feature_cache=f"sqlite:///{root}/hot.db",
                        config_store=f"file://{root}/config", event_log=f"sqlite:///{root}/events.db")
    return Settings(feature_store=f"cassandra://{CASSANDRA}/bench_vec_{run}", feature_cache="memory://",
                    config_store=f"zk://{ZOOKEEPER}/vahini-bench-vec-{run}", event_log=f"sqlite:///{root}/events.db")


def load(settings: Settings, base: np.ndarray, progress: str) -> None:
    """The catalogue through the path ingestion takes: product_stats and product_core rows
    into the feature store, each vector into the index."""
    config = wiring.config_store(settings)
    registry = publish.apply(registry_dir(Path(tempfile.mkdtemp())), config).registry
    config.close()
    store = IndexedFeatureStore(wiring.feature_store(settings), lambda: wiring.vector_index(settings),
                                lambda: registry)
    stats, core = registry.groups["product_stats"], registry.groups["product_core"]
    now, started = int(time.time() * 1000), time.monotonic()
    for start in range(0, len(base), 5000):
        rows = []
        for i in range(start, min(start + 5000, len(base))):
            values = {"ctr_7d": (i % 100) / 1000, "cvr_7d": (i % 37) / 1000, "embedding": base[i].tolist()}
            rows.append(FeatureRow("product", f"p{i}", "product_stats", now,
                                   feature_blob.encode(stats.features, stats.version, now, values), stats.ttl_s))
            rows.append(FeatureRow("product", f"p{i}", "product_core", now, feature_blob.encode(
                core.features, core.version, now, {"price": 5.0 + i % 500}), core.ttl_s))
        store.write(rows)
        done = min(start + 5000, len(base))
        rate = done / (time.monotonic() - started)
        print(f"\r  {progress}: {done:,}/{len(base):,} vectors ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    store.close()


def engine_recall(settings: Settings, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(recall@100, median ms a search) of the engine, through the port."""
    config = wiring.config_store(settings)
    registry = publish.read_published(config)
    config.close()
    index = wiring.vector_index(settings)
    index.search(registry, "similar_products", queries[0], K, {})  # catches the index up
    found, times = 0, []
    for q, want in zip(queries, truth):
        started = time.perf_counter()
        hits = index.search(registry, "similar_products", q, K, {})
        times.append(time.perf_counter() - started)
        found += len({int(h.key[1:]) for h in hits} & set(want.tolist()))
    index.close()
    return found / truth.size, 1000 * float(np.median(times))


def usearch_recall(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, expansion: int) -> tuple[float, float]:
    from usearch.index import Index

    ann = Index(ndim=DIM, metric="cos", dtype="f32", connectivity=32, expansion_add=200, expansion_search=expansion)
    ann.add(np.arange(len(base), dtype=np.uint64), base)
    found, times = 0, []
    for q, want in zip(queries, truth):
        started = time.perf_counter()
        keys = ann.search(q, K).keys
        times.append(time.perf_counter() - started)
        found += len(set(keys.tolist()) & set(want.tolist()))
    return found / truth.size, 1000 * float(np.median(times))


def quality(args, run: str) -> None:
    rows = []
    for n in [int(s) for s in args.recall_sizes.split(",")]:
        base, queries = vectors_of(args.data, n, 2), vectors_of(args.data, 200, 3)
        started = time.perf_counter()
        truth = exact_top(base, queries, K)
        exact_ms = 1000 * (time.perf_counter() - started) / len(queries)
        rows.append([f"{n:,}", "numpy exact (brute force)", "1.000", f"{exact_ms:.2f}"])
        if not args.engines_only:
            expansion = Settings().vectors.expansion_search
            recall, ms = usearch_recall(base, queries, truth, expansion)
            rows.append([f"{n:,}", f"usearch in process, expansion_search {expansion}", f"{recall:.3f}",
                         f"{ms:.2f}"])
        for engine in args.engines.split(","):
            if n > args.engines_max:  # the embedded engine is usearch with the same parameters, above
                continue
            root = Path(tempfile.mkdtemp(prefix="vahini-vec-"))
            settings = settings_for(engine, root, f"{run}_{n}")
            load(settings, base, f"{engine} {n:,}")
            recall, ms = engine_recall(settings, queries, truth)
            rows.append([f"{n:,}", f"Vahini {engine} (port, k=100)", f"{recall:.3f}", f"{ms:.2f}"])
        print(table(f"recall@100, {args.data} data, dim {DIM}, 200 queries", ["vectors", "search",
                                                                               "recall@100", "median ms"], rows))


class Server:
    """`vahini serve` in its own process, for its CPU time."""

    def __init__(self, settings: Settings, root: Path):
        from tests.services import free_port

        self.port = free_port()
        (root / "vahini.toml").write_text(f'feature_store = "{settings.feature_store}"\n'
                                          f'feature_cache = "{settings.feature_cache}"\n'
                                          f'config_store = "{settings.config_store}"\n'
                                          f'event_log = "{settings.event_log}"\n')
        self.proc = subprocess.Popen([sys.executable, "-m", "vahini.cli", "--settings", str(root / "vahini.toml"),
                                      "serve", "--port", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def cpu_s(self) -> float:
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def serving(args, run: str) -> None:
    import grpc

    from vahini_client import VahiniClient

    base, queries = vectors_of(args.data, args.vectors, 2), vectors_of(args.data, 500, 4)
    from usearch.index import Index

    ann = Index(ndim=DIM, metric="cos", dtype="f32", connectivity=32, expansion_add=200,
                expansion_search=Settings().vectors.expansion_search)
    ann.add(np.arange(len(base), dtype=np.uint64), base)
    ways = {"numpy exact, in process": lambda q: np.argsort(-(base @ q))[:K],
            "usearch, in process": lambda q: ann.search(q, K).keys}
    servers, cpu = [], {}
    for engine in args.engines.split(","):
        root = Path(tempfile.mkdtemp(prefix="vahini-vec-"))
        settings = settings_for(engine, root, f"{run}_serve")
        load(settings, base, f"{engine} serving set")
        server = Server(settings, root)
        client = VahiniClient(f"127.0.0.1:{server.port}", timeout_s=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.persist([{"entity": "user", "keys": {"user_id": "u1"}, "group": "user_profile",
                                 "values": {"embedding": queries[0].tolist()}}])
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.5)
        client.search("similar_products", K, vector=queries[0].tolist(), timeout_s=600)  # catches its index up
        servers.append(server)
        ways[f"Vahini {engine}: Search k={K}"] = (server, lambda q, c=client: c.search("similar_products", K,
                                                                                       vector=q.tolist()))
        ways[f"Vahini {engine}: GetFeatures, {CANDIDATES} candidate rows"] = (
            server, lambda q, c=client: c.get_features("near_ranker", user_id="u1"))
    times: dict[str, list[float]] = {name: [] for name in ways}
    per_round = args.requests // args.rounds
    for r in range(args.rounds):  # turns: the machine's speed drifts, and every way gets each stretch of it
        for name, way in ways.items():
            server, call = way if isinstance(way, tuple) else (None, way)
            before = server.cpu_s() if server else 0.0
            for q in queries[r * per_round % len(queries):][:per_round]:
                started = time.perf_counter()
                call(q)
                times[name].append(time.perf_counter() - started)
            if server:
                cpu[name] = cpu.get(name, 0.0) + server.cpu_s() - before
    rows = []
    for name, got in times.items():
        ms = 1000 * np.array(got)
        per_core = f"{len(got) / cpu[name]:,.0f}" if cpu.get(name) else "-"
        rows.append([name, f"{np.percentile(ms, 50):.2f}", f"{np.percentile(ms, 99):.2f}", per_core])
    print(table(f"serving, {args.vectors:,} vectors of dim {DIM} ({args.data}), {len(times[name])} sequential "
                f"requests each, {args.rounds} rounds in turns", ["path", "p50 ms", "p99 ms",
                                                                   "requests/s per serving core"], rows))
    for server in servers:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", type=int, default=100_000, help="catalogue size for the serving part")
    p.add_argument("--recall-sizes", default="100000,1000000", help="comma-separated catalogue sizes for recall")
    p.add_argument("--engines-max", type=int, default=100_000, help="largest size loaded into Vahini's engines "
                   "(larger sizes: usearch in process, with the embedded engine's parameters)")
    p.add_argument("--engines", default="embedded,cassandra", help="embedded, cassandra or both")
    p.add_argument("--data", choices=("clustered", "random"), default="clustered")
    p.add_argument("--requests", type=int, default=400, help="requests per path")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--skip", choices=("quality", "serving"), help="leave a part out")
    p.add_argument("--engines-only", action="store_true", help="recall: Vahini's engines and the exact answer only")
    args = p.parse_args()
    run = uuid.uuid4().hex[:8]
    if args.skip != "quality":
        quality(args, run)
    if args.skip != "serving":
        serving(args, run)


if __name__ == "__main__":
    main()
