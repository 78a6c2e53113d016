"""Open-loop load on ModelProxy.GetFeatures from separate processes: requests are
sent at a fixed rate whatever the answers, and each latency is measured from
when its request was due, so a server that falls behind shows it.

The clients take turns: client c of C sends the requests due at (i * C + c) / rate,
so the server sees one evenly spaced stream at the offered rate, as a constant-rate
load tool (ghz, vegeta) sends it. Clients on the same schedule would send their
requests in simultaneous bursts of C, which measures the burst, not the rate."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import grpc
import numpy as np


def _client(target: str, requests, rate: float, seconds: float, start_at: float, cpus, out,
            model: str = "bench_ranker") -> None:
    """Send `requests` in turn at `rate` per second from `start_at` (epoch seconds)."""
    os.sched_setaffinity(0, cpus)
    from vahini.serving.api import model_proxy_pb2 as mpb
    from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc

    stub = mpb_grpc.ModelProxyStub(grpc.insecure_channel(target))
    built = [mpb.GetFeaturesRequest(model=model, context={
        "user_id": mpb.ContextIds(ids=[user]), "product_ids": mpb.ContextIds(ids=products)})
        for user, products in requests]
    ok, outcome, lock = [], {"refused": 0, "failed": 0}, threading.Lock()

    def done(future, due: float) -> None:
        elapsed = time.perf_counter() - due
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
        due = start + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        f = stub.GetFeatures.future(built[i % len(built)], timeout=5.0)
        f.add_done_callback(lambda fut, d=due: done(fut, d))
        futures.append(f)
    for f in futures:
        try:
            f.result()
        except grpc.RpcError:
            pass
    time.sleep(0.2)
    with lock:
        out.put({"sent": n, "ok": list(ok), **outcome})


def open_loop(target: str, requests, rate: float, seconds: float, cpus, clients: int = 2,
              model: str = "bench_ranker") -> dict:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # every client imported and connected
    procs = [ctx.Process(target=_client, args=(target, requests[c::clients], rate / clients, seconds,
                                               start_at + c / rate, cpus, out, model)) for c in range(clients)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return {"sent": sum(p["sent"] for p in parts), "ok": np.array([x for p in parts for x in p["ok"]]),
            "refused": sum(p["refused"] for p in parts), "failed": sum(p["failed"] for p in parts)}
