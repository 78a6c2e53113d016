"""The interaction store on a session workload, against the real Kafka, Cassandra and Redis.

    .venv/bin/python -m benchmarks.interactions [--users 2000] [--sessionless-users 1000]

Sessions of 5 to 200 interactions (most short, a few long), for `--users` active
users; `--sessionless-users` more users act once without a session. Four tables, each
with its baseline measured in the same run:

1. Cassandra writes per interaction: the worker with the hot tier, against the
   same interactions written through (one write each, as they arrive).
2. Interaction events/s of one worker process, against the same rows written
   straight to Cassandra by the driver (no Kafka, no decoding, no Redis).
3. Session-start load of a user with 500 past events: cold read, and from the
   hot tier being ready to the history being readable (hot.load), p50/p99.
4. Read latency of a history (InteractionReader), hot against cold.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import uuid

import numpy as np

from benchmarks.common import real_settings, table
from vahini.serving.interactions import InteractionReader
from vahini.streams.app import build_interaction_worker
from vahini import wiring
from vahini.ports.interaction_store import TYPES, HistoryQuery, OpenSession, StoredInteraction
from vahini.producer import EventProducer
from vahini.settings import InteractionSettings, TopicSettings


def session_lengths(rng: random.Random, users: int) -> list[int]:
    """5 to 200, heavy-tailed: most sessions are short."""
    return [min(200, 5 + int(rng.paretovariate(1.2) * 5)) for _ in range(users)]


def produce(settings, users: int, sessionless_users: int, seed: int) -> int:
    rng = random.Random(seed)
    p = EventProducer.from_settings(settings, "bench")
    t0 = int(time.time() * 1000) - 3_600_000
    n = 0
    lengths = session_lengths(rng, users)
    for u, length in enumerate(lengths):
        p.session_event(f"a{u}", "s", "START", t0)
    step = 0
    while any(step < length for length in lengths):
        for u, length in enumerate(lengths):  # interleaved, as live traffic is
            if step < length:
                p.interaction(f"a{u}-{step}", f"a{u}", f"p{rng.randrange(50_000)}", rng.choice(TYPES), t0 + step,
                              category_id=f"c{rng.randrange(200)}")
                n += 1
        step += 1
    for u in range(users):
        p.session_event(f"a{u}", "s", "END", t0 + 10_000)
    for u in range(sessionless_users):
        p.interaction(f"i{u}", f"i{u}", f"p{rng.randrange(50_000)}", "CLICK", t0, category_id="c1")
        n += 1
    p.flush()
    p.close()
    return n


def run_worker(settings, expected_events: int, sessions: int) -> tuple[float, float, object]:
    """(seconds, CPU seconds, stats) of one worker running to the end of the workload. The
    CPU is this process's while the worker runs: the worker's thread and its clients'
    (Kafka, the Cassandra driver, Redis), with this thread asleep between checks."""
    log, cold, hot = (wiring.event_log(settings), wiring.cold_interactions(settings),
                      wiring.interaction_hot_tier(settings))
    worker = build_interaction_worker(settings, log, cold, hot)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    thread.start()
    while worker.stats.events < expected_events or worker.stats.sessions_ended < sessions:
        time.sleep(0.05)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    stop.set()
    thread.join(60)
    worker.close()
    for c in (hot, cold, log):
        c.close()
    return elapsed, cpu, worker.stats


def raw_cassandra_rate(settings, items: list[StoredInteraction]) -> float:
    """The same rows written straight to Cassandra: one INSERT each (every row its own
    partition), 128 in flight."""
    cold = wiring.cold_interactions(settings)
    started = time.perf_counter()
    for i in range(0, len(items), 2000):
        cold.write(items[i:i + 2000])
    elapsed = time.perf_counter() - started
    cold.close()
    return len(items) / elapsed


def session_load(settings, samples: int) -> list[list]:
    cold, hot = wiring.cold_interactions(settings), wiring.interaction_hot_tier(settings)
    t0 = int(time.time() * 1000) - 86_400_000
    history = [StoredInteraction(f"h-{k}", "heavy", f"p{k}", "c1", TYPES[k % 3], t0 + k, {"pos": str(k % 10)})
               for k in range(500)]
    cold.write(history)
    reads, loads = [], []
    for s in range(samples):
        user = f"heavy-{s}"
        items = [StoredInteraction(i.event_id, user, i.product_id, i.category_id, i.type, i.event_time_ms,
                                   i.attributes) for i in history]
        started = time.perf_counter()
        got = [x for t in TYPES for x in cold.read(HistoryQuery("heavy", (t,), 500))]
        reads.append((time.perf_counter() - started) * 1000)
        assert len(got) == 500
        started = time.perf_counter()
        hot.load(OpenSession(user, "s", 0, 0), items)
        loads.append((time.perf_counter() - started) * 1000)
        hot.evict([user])
    cold.close()
    hot.close()
    return [["cold read of 500 events (3 types)", f"{np.percentile(reads, 50):.2f}", f"{np.percentile(reads, 99):.2f}"],
            ["hot.load: Redis ready -> readable", f"{np.percentile(loads, 50):.2f}", f"{np.percentile(loads, 99):.2f}"]]


def read_latency(settings, samples: int) -> list[list]:
    hot_tier = wiring.interaction_hot_tier(settings)
    t0 = int(time.time() * 1000) - 3_600_000
    items = [StoredInteraction(f"r-{k}", "reader", f"p{k}", "c1", "CLICK", t0 + k, {}) for k in range(200)]
    seed = wiring.cold_interactions(settings)
    seed.write(items)
    seed.close()
    reader = InteractionReader(wiring.interaction_hot_tier(settings, timeout_s=0.025),
                               wiring.cold_interactions(settings), settings)
    rows = []
    for label, open_session in (("cold (no session)", False), ("hot (session open)", True)):
        if open_session:
            hot_tier.load(OpenSession("reader", "s", 0, 0), items)
        lat = []
        for _ in range(samples):
            started = time.perf_counter()
            h = reader.history(HistoryQuery("reader", ("CLICK",), 50))
            lat.append((time.perf_counter() - started) * 1000)
        assert h.source == ("hot" if open_session else "cold") and len(h.interactions) == 50
        rows.append([label, f"{np.percentile(lat, 50):.2f}", f"{np.percentile(lat, 99):.2f}"])
    hot_tier.evict(["reader"])
    hot_tier.close()
    reader.close()
    base = float(rows[0][2])
    for r in rows:
        r.append(f"{float(r[2]) / base:.2f}x")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000, help="users with a session")
    parser.add_argument("--sessionless-users", type=int, default=1000,
                        help="users acting once without a session (written straight to the cold tier)")
    parser.add_argument("--samples", type=int, default=300, help="samples per latency row")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    base = real_settings(run, f"bench_ia_{run}")
    topics = TopicSettings(interactions=f"bench-ia-{run}", sessions=f"bench-ia-{run}", dead_letter=f"bench-dl-{run}")
    settings = base.model_copy(update={"topics": topics, "interactions": InteractionSettings(
        hot_tier=base.feature_cache, namespace=f"bench-{run}", group=f"bench-ia-{run}",
        inactivity_timeout_s=600, checkpoint_interval_s=600, batch_size=2000)})
    events = produce(settings, args.users, args.sessionless_users, seed=5)
    interactions = events
    elapsed, cpu, stats = run_worker(settings, events + 2 * args.users, args.users)
    print(table(f"Cassandra writes per interaction: {args.users:,} sessions of 5-200 events "
                f"(mean {stats.to_hot / max(1, args.users):.0f}), {args.sessionless_users:,} users without a session",
                ["path", "interactions", "Cassandra writes", "writes per interaction", "vs write-through"],
                [["write-through (one write per interaction): baseline", interactions, interactions, "1.000", "1.00x"],
                 ["hot tier, flushed at END", interactions, stats.cold_writes,
                  f"{stats.cold_writes / interactions:.3f}", f"{interactions / stats.cold_writes:.1f}x fewer"]]))
    sessionless = [StoredInteraction(f"w{k}", f"w{k}", "p", "c", "CLICK", int(time.time() * 1000) - k, {})
                   for k in range(min(20_000, interactions))]
    raw = raw_cassandra_rate(settings, sessionless)
    rate = (events + 2 * args.users) / elapsed
    cpu_us = cpu / (events + 2 * args.users) * 1e6
    print(table("Throughput of one worker process (Kafka -> decode -> Redis/Cassandra, committed)",
                ["path", "events/s", "vs raw driver", "worker CPU-µs/event"],
                [["raw driver: one INSERT per interaction, 128 in flight (baseline)", f"{raw:,.0f}", "1.00x", ""],
                 ["interaction worker, whole workload", f"{rate:,.0f}", f"{rate / raw:.2f}x", f"{cpu_us:.1f}"]]))
    print(table(f"Session start for a user with 500 past events ({args.samples} samples)",
                ["step", "p50 ms", "p99 ms"], session_load(settings, args.samples)))
    print(table(f"History read of 50 clicks ({args.samples} samples)", ["tier", "p50 ms", "p99 ms", "p99 vs cold"],
                read_latency(settings, args.samples)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
