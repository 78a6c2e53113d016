"""What feature logging costs the Model Proxy: p99 and capacity with every response
logged (`log: {sample: 1.0}`) beside none, in the same run, on the same serving process.

One `vahini serve` pinned to core 0 serves two models with the same graph: the
Model Proxy benchmark's bench_ranker (no logging) and bench_ranker_logged (every
response published to the feature log on Kafka). Latencies are taken in turns on the
same requests (1 user x 100 products); capacity is the highest open-loop rate from core
1 whose p99 stays under twice the unlogged model's idle p99, searched for each model.
At the end the feature log's records are counted against the logged responses.

    python -m benchmarks.feature_log [--requests 2000] [--rounds 20] [--seconds 8]

Needs the local services (make services) and the `bench` virtualenv's dependencies."""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import yaml

from benchmarks.common import REDIS, real_settings, table
from benchmarks.model_proxy import (REGISTRY_DIR, SERVER_CPUS, capacity, in_turns, latencies, load_vahini,
                                    requests_of, vahini_call, vahini_server, warm)
from vahini import wiring
from vahini.settings import InteractionSettings

LOGGED = "bench_ranker_logged"


def logging_registry(directory: Path) -> Path:
    """The Model Proxy benchmark's registry plus bench_ranker_logged: bench_ranker, logging every response."""
    shutil.copytree(REGISTRY_DIR, directory, dirs_exist_ok=True)
    path = directory / "registry.yaml"
    document = yaml.safe_load(path.read_text())
    model = next(m for m in document["models"] if m["name"] == "bench_ranker")
    document["models"].append({**model, "name": LOGGED, "log": {"sample": 1.0}})
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return directory


def logged_records(settings) -> int:
    log = wiring.event_log(settings)
    try:
        topic = settings.topics.feature_log
        return sum(log.end_offsets(topic).values()) if log.exists(topic) else 0
    finally:
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per latency row, in turns")
    parser.add_argument("--rounds", type=int, default=20, help="turns the two rows take on the machine")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each open-loop step")
    args = parser.parse_args()
    from vahini_client import VahiniClient

    run = uuid.uuid4().hex[:8]
    settings = real_settings(run, f"bench_fl_{run}").model_copy(update={
        "interactions": InteractionSettings(hot_tier=REDIS, namespace=f"bench-ih-{run}")})
    settings = settings.model_copy(update={"topics": settings.topics.model_copy(
        update={"feature_log": f"bench-feature-log-{run}"})})
    with tempfile.TemporaryDirectory() as scratch:
        print("loading the Model Proxy benchmark's data ...", flush=True)
        load_vahini(settings, logging_registry(Path(scratch)))
    server = vahini_server(settings, SERVER_CPUS)
    client = VahiniClient(server.target, timeout_s=5.0)
    calls = {"log 0%": vahini_call(client), "log 100%": vahini_call(client, LOGGED)}
    for call in calls.values():
        warm(call)
    gc.freeze()
    try:
        requests = requests_of(100, args.requests, seed=100)
        lat = in_turns(calls, requests, args.rounds)
        idle = latencies(calls["log 0%"], requests)
        idle_p99 = float(np.percentile(idle, 99))
        start = 0.3 * 1000 / idle.mean()
        steps = {name: capacity(server.target, requests_of(100, 2000, seed=1), idle_p99, 4 * idle_p99, args.seconds,
                                start_rate=start, model=model)
                 for name, model in (("log 0%", "bench_ranker"), ("log 100%", LOGGED))}
    finally:
        client.close()
        server.stop()  # flushes the feature log
    rows, p99s, rates = [], {}, {}
    for name, values in lat.items():
        p99s[name] = float(np.percentile(values, 99))
        rates[name] = max((float(r[0]) for r in steps[name] if r[-2] == "yes"), default=0.0)
        rows.append([name, f"{np.percentile(values, 50):.2f}", f"{p99s[name]:.2f}", f"{rates[name]:.0f}"])
    rows.append(["100% / 0%", "", f"{p99s['log 100%'] / p99s['log 0%']:.3f}x",
                 f"{rates['log 100%'] / max(rates['log 0%'], 1e-9):.3f}x"])
    print(table(f"Feature logging, 1 user x 100 products, one serving process pinned to core 0 ({len(requests)} "
                f"sequential requests per row in {args.rounds} turns; capacity: highest open-loop rate from core 1 "
                f"with p99 < 2x the unlogged idle p99 {idle_p99:.2f} ms)",
                ["model", "p50 ms", "p99 ms", "capacity req/s"], rows))
    for name, of_model in steps.items():
        print(table(f"open-loop steps, {name}", ["req/s offered", "p50 ms", "p99 ms", "p99 vs idle", "refused",
                                                 "p99 < 2x idle", "p99 <= 4x idle"], of_model))
    print(f"feature log records: {logged_records(settings)} (every response of {LOGGED}: the warm-up, "
          f"{len(requests)} timed and those of its capacity steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
