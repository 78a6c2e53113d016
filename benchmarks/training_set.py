"""Building a training set of N label rows for the sample ranker's features: `vahini
training-set` beside Feast 0.67's `get_historical_features`, on the same data, in the
same run, each in a process of its own (wall time and peak RSS), in alternating rounds.

The data: the sample registry's user_profile, product_core, product_stats and
user_category_affinity groups, each key with several versions over 30 days, and the
users' clicks. Labels: requests of one user and 100 products at moments spread over
20 days (N / 100 requests).

Vahini builds home_ranker's full matrix as the Model Proxy would have served it: the
chained user x category lookup resolved as of each moment, the click sequences, every
transform and default. Feast gets the same four feature views from Parquet files and
does what it can: one point-in-time join of the user and product views, then a second
for user_category_affinity keyed by the category the first one found (the chained
lookup, by hand). It has no sequences and no transforms, so it does less of the work.

    python -m benchmarks.training_set [--rows 1000000] [--rounds 2] [--offline-store duckdb|file]

Runs in .venv-bench (make bench-training-set), which has Feast."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import table
from vahini.adapters.parquet_archive import ParquetArchive
from vahini.demo import SAMPLE_REGISTRY
from vahini.feature_rows import row_of
from vahini.ports.interaction_store import StoredInteraction
from vahini.registry.loader import load_registry
from vahini.validation import EventLimits, validate_feature_update

DAY_MS = 86_400_000
USERS, PRODUCTS, CATEGORIES, ROWS_PER_REQUEST = 2000, 20_000, 50, 100
BRANDS = ["acme", "globex", "initech", "umbrella", "hooli"]


def _versions(rng: random.Random, now: int, n: int) -> list[int]:
    return sorted(now - rng.randrange(30 * DAY_MS) for _ in range(n))


def feature_updates(now: int, seed: int = 7):
    """(entity, keys, group, values, event_time_ms) of every version of every key."""
    rng = random.Random(seed)
    for u in range(USERS):
        for t in _versions(rng, now, 3):
            yield "user", {"user_id": f"u{u}"}, "user_profile", {
                "account_age_days": rng.randrange(2000), "is_premium": rng.random() < 0.2, "city": f"c{u % 40}",
                "avg_order_value": rng.uniform(5, 500), "embedding": [rng.uniform(-1, 1) for _ in range(16)]}, t
    for p in range(PRODUCTS):
        for t in _versions(rng, now, 3):
            yield "product", {"product_id": f"p{p}"}, "product_core", {
                "category_id": f"cat{rng.randrange(CATEGORIES)}", "brand": rng.choice(BRANDS),
                "price": rng.uniform(1, 900), "in_stock": rng.random() < 0.9,
                "listed_at_ms": now - rng.randrange(400 * DAY_MS)}, t
        for t in _versions(rng, now, 4):
            yield "product", {"product_id": f"p{p}"}, "product_stats", {
                "ctr_7d": rng.uniform(0, 0.2), "cvr_7d": rng.uniform(0, 0.05), "rating": rng.uniform(1, 5),
                "embedding": [rng.uniform(-1, 1) for _ in range(16)]}, t
    for u in range(USERS):
        for c in range(CATEGORIES):
            for t in _versions(rng, now, 2):
                yield "user_category", {"user_id": f"u{u}", "category_id": f"cat{c}"}, "user_category_affinity", {
                    "clicks_30d": rng.randrange(100), "orders_30d": rng.randrange(10), "affinity": rng.random()}, t


def clicks(now: int, seed: int = 8) -> list[StoredInteraction]:
    rng = random.Random(seed)
    return [StoredInteraction(f"e{u}-{i}", f"u{u}", f"p{rng.randrange(PRODUCTS)}", f"cat{rng.randrange(CATEGORIES)}",
                              "CLICK", now - rng.randrange(30 * DAY_MS)) for u in range(USERS) for i in range(40)]


def write_data(root: Path, now: int) -> None:
    """The same data for both: Vahini's archive (as the archive worker writes it) and
    one Parquet file per Feast feature view."""
    registry = load_registry(SAMPLE_REGISTRY)
    archive, rows, feast = ParquetArchive(root / "archive"), [], {}
    for entity, keys, group, values, t in feature_updates(now):
        event = {"entity": entity, "keys": keys, "group": group, "values": values, "event_time_ms": t}
        rows.append(row_of(validate_feature_update(event, registry, now, EventLimits())))
        feast.setdefault(group, []).append({**keys, **values, "event_timestamp": t})
    archive.append(rows, clicks(now))
    (root / "feast" / "data").mkdir(parents=True)
    for group, records in feast.items():
        frame = pa.Table.from_pylist(records)
        frame = frame.set_column(frame.column_names.index("event_timestamp"), "event_timestamp",
                                 frame["event_timestamp"].cast(pa.timestamp("ms", tz="UTC")))
        pq.write_table(frame, root / "feast" / "data" / f"{group}.parquet")


def write_labels(path: Path, rows: int, now: int, seed: int = 9) -> None:
    rng = np.random.default_rng(seed)
    requests = rows // ROWS_PER_REQUEST
    users = rng.integers(0, USERS, requests)
    moments = now - rng.integers(0, 20 * DAY_MS, requests)
    products = rng.integers(0, PRODUCTS, (requests, ROWS_PER_REQUEST))
    pq.write_table(pa.table({
        "user_id": pa.array([f"u{u}" for u in np.repeat(users, ROWS_PER_REQUEST)]),
        "product_ids": pa.array([f"p{p}" for p in products.ravel()]),
        "event_time": pa.array(np.repeat(moments, ROWS_PER_REQUEST), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "label": pa.array(rng.random(requests * ROWS_PER_REQUEST) < 0.05)}), path)


def vahini_command(root: Path, labels: Path, out: Path, workers: int = 1, method: str = "columnar") -> list[str]:
    settings = root / "vahini.toml"
    if not settings.exists():
        settings.write_text(f'config_store = "file://{root}/config"\n[archive]\nurl = "file://{root}/archive"\n')
        subprocess.run([sys.executable, "-m", "vahini.cli", "apply", str(SAMPLE_REGISTRY), "--settings",
                        str(settings)], check=True, stdout=subprocess.DEVNULL)
    return [sys.executable, "-m", "vahini.cli", "training-set", "home_ranker", "--labels", str(labels),
            "--out", str(out), "--settings", str(settings), "--no-progress", "--workers", str(workers),
            "--method", method]


def measured(command: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `command` run to completion. The RSS is that of
    the process and its children together, sampled every 20 ms: a builder that runs
    several processes is charged for all of them."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, root = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {proc.stderr.read().decode()[-3000:]}")
    return seconds, peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="label rows (100 per request)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each running both, in alternating order")
    parser.add_argument("--offline-store", choices=("duckdb", "file"), default="duckdb",
                        help="Feast's offline store for get_historical_features")
    parser.add_argument("--no-feast", action="store_true", help="Vahini alone")
    parser.add_argument("--replay", action="store_true",
                        help="also time --method replay (the executor per request: the reference, ~10x slower)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vahini-training-bench-"))
    try:
        now = int(time.time() * 1000)
        print(f"writing the archive, Feast's files and {args.rows:,} label rows ...", flush=True)
        write_data(root, now)
        labels = root / "labels.parquet"
        write_labels(labels, args.rows, now)
        runs = {"vahini, 1 process": vahini_command(root, labels, root / "vahini.parquet"),
                f"vahini, {os.cpu_count()} processes": vahini_command(root, labels, root / "vahini-n.parquet",
                                                                       os.cpu_count() or 1)}
        if args.replay:
            runs["vahini --method replay, 1 process"] = vahini_command(root, labels, root / "vahini-replay.parquet",
                                                                       method="replay")
        if not args.no_feast:
            runs["feast"] = [sys.executable, "-m", "benchmarks.training_set_feast", str(root / "feast"),
                             str(labels), str(root / "feast.parquet"), args.offline_store]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                results[name].append(measured(runs[name], Path.cwd()))
                print(f"round {r + 1}: {name} {results[name][-1][0]:.1f} s, {results[name][-1][1]:.0f} MB",
                      flush=True)
        out_rows = pq.read_metadata(root / "vahini.parquet")
        rows = []
        for name, measurements in results.items():
            seconds = float(np.median([s for s, _ in measurements]))
            peak = max(m for _, m in measurements)
            rows.append([name, f"{seconds:.1f}", f"{args.rows / seconds:,.0f}", f"{peak:.0f}"])
        if "feast" in results:
            f, fm = float(np.median([s for s, _ in results["feast"]])), max(m for _, m in results["feast"])
            for name in (n for n in names if n != "feast"):
                v, vm = float(np.median([s for s, _ in results[name]])), max(m for _, m in results[name])
                rows.append([f"feast / {name}", f"{f / v:.2f}x", "", f"{fm / vm:.2f}x"])
        print(table(f"Training set of {args.rows:,} label rows ({args.rows // ROWS_PER_REQUEST:,} requests of 100 "
                    f"products); Vahini: home_ranker, {out_rows.num_columns} columns; Feast 0.67 "
                    f"get_historical_features, {args.offline_store} offline store; median of {args.rounds} rounds",
                    ["builder", "seconds", "rows/s", "peak RSS MB"], rows))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
