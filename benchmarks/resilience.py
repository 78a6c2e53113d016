"""Retrieve under faults and overload, against a server in its own process.

    .venv/bin/python -m benchmarks.resilience [--users 5000] [--requests 300]

Needs the real services (Cassandra, ZooKeeper); runs a private redis-server it
can SIGSTOP. Two tables, each with its baseline measured in the same run:

1. Retrieve (100 keys x 3 groups) p50/p99 with the Redis cache healthy, hung
   (SIGSTOP: connections open, no answers), down (killed: refused), against
   the same server with caching off (store only).
2. Overload: the server's sustainable rate R is measured closed-loop, then
   requests are sent open-loop at 0.5 R (baseline) and 4 R. Calls beyond
   serving.max_in_flight are refused with RESOURCE_EXHAUSTED; the p99 of the
   accepted ones is what must hold.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid

import grpc
import numpy as np

from benchmarks.common import real_settings, table
from benchmarks.retrieve import (KEYS_PER_REQUEST, grpc_call, key_sets, latencies, populate, registry_with_cache,
                                 throughput)
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from tests.faults import PrivateRedis
from tests.services import free_port, port_open
from tests.streams.processes import settings_env
from vahini import wiring
from vahini.registry import publish
from vahini.settings import ServingSettings


# The overload run pins the server and its load generators to different cores, so that
# sending 4 x R does not take CPU from the server that R was measured with.
SERVER_CPUS, LOAD_CPUS = {0}, {1}


class ServerProcess:
    def __init__(self, settings, root: str, redis_ttl_s: int, max_in_flight: int, workers: int = 8,
                 cpus: set[int] | None = None):
        self.settings = settings.model_copy(update={"config_store": f"{settings.config_store}-{root}"})
        store = wiring.config_store(self.settings)
        publish.apply(registry_with_cache(redis_ttl_s), store)
        store.close()
        self.port = free_port()
        serving_overrides = {k: v for k, v in os.environ.items() if k.startswith("VAHINI_SERVING__")}
        env = {**settings_env(self.settings), **serving_overrides, "VAHINI_SERVING__MAX_IN_FLIGHT": str(max_in_flight),
               "VAHINI_SERVING__MAX_WORKERS": str(workers), "VAHINI_LOG_LEVEL": "ERROR"}
        self.proc = subprocess.Popen([sys.executable, "-m", "vahini.serving", "--port", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", self.port):
            assert time.monotonic() < deadline and self.proc.poll() is None, "server did not start"
            time.sleep(0.1)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.FeatureServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(30)


def row(name: str, lat: np.ndarray, base_p99: float | None) -> list:
    p99 = np.percentile(lat, 99)
    extra = "" if base_p99 is None else f"{p99 - base_p99:+.2f}"
    return [name, f"{np.percentile(lat, 50):.2f}", f"{p99:.2f}", extra]


def cache_faults(settings, requests: list[list[str]], users: int) -> None:
    redis = PrivateRedis()
    cached = ServerProcess(settings.model_copy(update={"feature_cache": redis.url}), "faults", 600, 64)
    call = grpc_call(cached.stub)
    for i in range(0, users, KEYS_PER_REQUEST):
        call([f"u{u}" for u in range(i, min(i + KEYS_PER_REQUEST, users))])
    healthy = latencies(call, requests)
    redis.hang()
    hung = latencies(call, requests)
    redis.stop()
    down = latencies(call, requests)
    cached.stop()
    store_only = ServerProcess(settings, "store-only", 0, 64)
    base = latencies(grpc_call(store_only.stub), requests)
    store_only.stop()
    b99 = np.percentile(base, 99)
    print(table(f"Retrieve, {KEYS_PER_REQUEST} keys x 3 groups, {len(requests)} sequential requests per row",
                ["cache", "p50 ms", "p99 ms", "p99 vs store-only ms"],
                [row("store only (caching off): baseline", base, None), row("Redis healthy", healthy, b99),
                 row("Redis hung (SIGSTOP)", hung, b99), row("Redis down (killed)", down, b99)]))


def _open_loop_client(target: str, requests, rate: float, seconds: float, start_at: float, out) -> None:
    """One load-generating process: sends at `rate` requests/s whatever the answers."""
    os.sched_setaffinity(0, LOAD_CPUS)
    from vahini.serving.api import feature_service_pb2 as pb

    stub = pb_grpc.FeatureServiceStub(grpc.insecure_channel(target))
    selectors = [pb.GroupSelector(group=g) for g in ("user_profile", "user_activity", "user_preferences")]
    ok, outcome, lock = [], {"refused": 0, "failed": 0}, threading.Lock()

    def on_done(future, started):
        elapsed = time.perf_counter() - started
        with lock:
            try:
                future.result()
                ok.append(elapsed * 1000)
            except grpc.RpcError as exc:
                outcome["refused" if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else "failed"] += 1

    n = int(rate * seconds)
    time.sleep(max(0.0, start_at - time.time()))
    start, futures = time.perf_counter(), []
    for i in range(n):
        time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        started = time.perf_counter()
        f = stub.Retrieve.future(pb.RetrieveRequest(entity="user", keys=requests[i % len(requests)],
                                                    groups=selectors), timeout=2.0)
        f.add_done_callback(lambda fut, s=started: on_done(fut, s))
        futures.append(f)
    for f in futures:
        try:
            f.result()
        except grpc.RpcError:
            pass
    time.sleep(0.2)
    with lock:
        out.put({"sent": n, "ok": list(ok), **outcome})


def open_loop(target: str, requests, rate: float, seconds: float, clients: int) -> dict:
    """Open-loop load from `clients` separate processes, so the load generator's own
    CPU and GIL do not delay the calls it measures."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # every client process imported and connected
    procs = [ctx.Process(target=_open_loop_client,
                         args=(target, requests[c::clients], rate / clients, seconds, start_at, out))
             for c in range(clients)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return {"sent": sum(p["sent"] for p in parts), "ok": np.array([x for p in parts for x in p["ok"]]),
            "refused": sum(p["refused"] for p in parts), "failed": sum(p["failed"] for p in parts)}


def overload(settings, requests: list[list[str]], seconds: float, max_in_flight: int, workers: int,
             clients: int) -> None:
    server = ServerProcess(settings, "overload", 600, max_in_flight, workers, SERVER_CPUS)
    os.sched_setaffinity(0, LOAD_CPUS)
    call = grpc_call(server.stub)
    for keys in requests:
        call(keys)  # warm the cache
    rate = throughput(call, requests, threads=max_in_flight, seconds=seconds)
    target = f"127.0.0.1:{server.port}"
    rows, base_p99 = [], None
    for factor in (0.5, 4.0):
        r = open_loop(target, requests, rate * factor, seconds, clients)
        p99 = np.percentile(r["ok"], 99) if len(r["ok"]) else float("nan")
        base_p99 = p99 if base_p99 is None else base_p99
        rows.append([f"{factor:g} x R ({rate * factor:,.0f}/s)", r["sent"], len(r["ok"]), r["refused"], r["failed"],
                     f"{np.percentile(r['ok'], 50):.2f}", f"{p99:.2f}", f"{p99 / base_p99:.2f}x"])
    server.stop()
    print(table(f"Overload: sustainable R = {rate:,.0f} requests/s ({max_in_flight} closed-loop clients); "
                f"max_in_flight {max_in_flight}, {workers} server threads, {clients} client processes",
                ["offered", "sent", "accepted", "RESOURCE_EXHAUSTED", "other errors", "p50 ms", "p99 ms",
                 "p99 vs 0.5 R"], rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency row")
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each overload run")
    defaults = ServingSettings()
    parser.add_argument("--max-in-flight", type=int, default=defaults.max_in_flight,
                        help="serving.max_in_flight of the overload server (default: the setting's default)")
    parser.add_argument("--workers", type=int, default=defaults.max_workers,
                        help="serving.max_workers of the overload server (default: the setting's default)")
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes in the overload run")
    parser.add_argument("--only", choices=["faults", "overload"], help="run one of the two tables")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    settings = real_settings(run, f"bench_faults_{run}")
    print(f"writing 3 groups for {args.users:,} users")
    populate(settings, args.users)
    requests = key_sets(args.users, args.requests, seed=1)
    if args.only != "overload":
        cache_faults(settings, requests, args.users)
    if args.only != "faults":
        overload(settings, requests, args.seconds, args.max_in_flight, args.workers, args.clients)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("VAHINI_LOG_LEVEL", "ERROR")
    sys.exit(main())
