"""CPU per event of a saturated interaction worker, side by side with another checkout.

    git worktree add /tmp/baseline eea2d77      # the baseline of issue 25
    make services-start
    .venv/bin/python -m benchmarks.interaction_cpu --paired-with /tmp/baseline [--workload sessions] [--rounds 3]
    .venv/bin/python -m benchmarks.interaction_cpu                 # this checkout alone, against the floor
    .venv/bin/python -m benchmarks.interaction_cpu --rounds 1 --py-spy /tmp/sessions.txt   # where the time goes

Each round produces a backlog into a fresh topic, then starts one `vahini ingest
interactions` per checkout (each with its own group, keyspace and Redis
namespace), both draining the same topic at the same time, so a drift in the
shared machine's speed hits both alike. A worker's CPU per event is its process
CPU (/proc: user + system, every thread) from its first event to its lag reaching
zero, over the events it handled in that span: start-up is left out, and the
worker is saturated (it has a backlog) the whole time, which is what sets the
cores a fleet needs.

Workloads, with the sample registry's windowed counts on (clicks/orders/wishlists
in 1 h and 24 h, per user and per user x category):
- `sessions`: --sessions sessions (START, 5-60 interactions, END), interleaved as
  live traffic is;
- `sessionless`: --users users acting 1-25 times without a session, plus one
  heavy user with --heavy clicks in the last 50 minutes.

The floor, measured in the same run: a bare fastavro decode of the same events.

`--py-spy FILE` samples this checkout's worker with py-spy (`pip install py-spy`)
while it drains, into FILE as collapsed stacks (one line per stack and its count),
and prints the functions with the largest share of the samples. Only the thread
holding the GIL is sampled, without pausing the worker, so the shares are of
Python's work in every thread, not of waits; CPU figures of a sampled round are
not comparable with others.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid

import fastavro

from benchmarks.common import CASSANDRA, real_settings, table
from benchmarks.ingest import cpu_seconds, fresh_keyspace, spawn
from benchmarks.windows import env as worker_env
from vahini.streams.metrics import INTERACTION_EVENTS
from tests.cluster.traffic import metric
from tests.services import free_port
from vahini import wiring
from vahini.codecs.avro import HEADER_LEN, SchemaCatalog
from vahini.demo import SAMPLE_REGISTRY
from vahini.ports.interaction_store import TYPES
from vahini.producer import EventProducer
from vahini.registry import publish
from vahini.settings import TopicSettings

EVENTS_METRIC = INTERACTION_EVENTS._name + "_total"  # counted as each batch is processed


def produce_sessions(producer: EventProducer, sessions: int, rng: random.Random) -> int:
    """START, 5-60 interactions and END per user, interleaved across users."""
    t0 = int(time.time() * 1000) - 1_800_000
    lengths = [rng.randint(5, 60) for _ in range(sessions)]
    for u in range(sessions):
        producer.session_event(f"s{u}", "s1", "START", t0)
    n, step = sessions, 0
    while any(step < length for length in lengths):
        for u, length in enumerate(lengths):
            if step < length:
                producer.interaction(f"s{u}-{step}", f"s{u}", f"p{rng.randrange(50_000)}", rng.choice(TYPES),
                                     t0 + step * 1000, category_id=f"c{rng.randrange(200)}")
                n += 1
        step += 1
    for u in range(sessions):
        producer.session_event(f"s{u}", "s1", "END", t0 + 120_000)
    return n + sessions


def produce_sessionless(producer: EventProducer, users: int, heavy: int, rng: random.Random) -> int:
    now = int(time.time() * 1000)
    n = 0
    for u in range(users):
        for k in range(rng.randint(1, 25)):
            producer.interaction(f"i{u}-{k}", f"i{u}", f"p{rng.randrange(50_000)}",
                                 rng.choice(["CLICK"] * 8 + ["ORDER", "WISHLIST"]), now - rng.randrange(3_600_000),
                                 category_id=f"c{rng.randrange(50)}")
            n += 1
    for k in range(heavy):  # one user clicking every ~1.5 s for the last 50 minutes
        producer.interaction(f"heavy-{k}", "heavy", f"p{k}", "CLICK", now - 3_000_000 + k * 3_000_000 // heavy,
                             category_id="c1")
        n += 1
    return n


def produce(settings, workload: str, args, seed: int) -> int:
    producer = EventProducer.from_settings(settings, "bench")
    rng = random.Random(seed)
    if workload == "sessions":
        n = produce_sessions(producer, args.sessions, rng)
    else:
        n = produce_sessionless(producer, args.users, args.heavy, rng)
    producer.flush(300)
    producer.close()
    return n


def workload_topic(run: str, topic: str, keyspace: str):
    """Settings of a run whose interactions and sessions share a fresh 8-partition topic, with the
    sample registry (and so its windowed counts) published."""
    settings = real_settings(run, keyspace).model_copy(update={"topics": TopicSettings(
        interactions=topic, sessions=topic, dead_letter=f"{topic}-dlq")})
    config = wiring.config_store(settings)
    publish.apply(SAMPLE_REGISTRY, config)
    config.close()
    log = wiring.event_log(settings)
    log.create_topic(topic, 8)
    log.close()
    return settings


def floor_us(settings, events: int) -> float:
    """CPU-µs per event of a bare fastavro decode of the topic's events (read back raw)."""
    log = wiring.event_log(settings)
    consumer = log.consumer(f"floor-{uuid.uuid4().hex[:6]}", [settings.topics.interactions])
    payloads: list[bytes] = []
    while len(payloads) < events:
        payloads += [r.value for r in consumer.poll_batch(5000, 1.0)]
    consumer.close()
    log.close()
    catalog = SchemaCatalog.default()
    started = time.process_time()
    for payload in payloads:  # Avro single-object: 2 marker bytes, 8 fingerprint bytes, the body
        fastavro.schemaless_reader(io.BytesIO(payload[HEADER_LEN:]), catalog.writer(payload[2:HEADER_LEN]).parsed)
    return (time.process_time() - started) / len(payloads) * 1e6


def drain(settings, run: str, trees: dict[str, str | None], events: int,
          py_spy: str | None = None) -> dict[str, float]:
    """CPU-µs per event of one worker per checkout, side by side on the same backlog."""
    workers = {}
    for label, tree in trees.items():
        keyspace, group, port = f"bench_{label}_{run}", f"bench-{label}-{run}", free_port()
        fresh_keyspace(settings, keyspace).close()
        env = {**worker_env(settings, keyspace, group, f"{label}-{run}"), "VAHINI_METRICS_PORT": str(port)}
        if tree:  # run from there: `-m` puts the working directory first, ahead of the editable install
            env["PYTHONPATH"] = os.path.abspath(tree)
        workers[label] = (spawn([sys.executable, "-m", "vahini.cli", "ingest", "interactions"], env, group,
                                os.path.abspath(tree) if tree else None), port)
    sampler = None
    if py_spy:
        sampler = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "-r", "200", "--gil", "--nonblocking", "-f", "raw", "-o", py_spy, "--pid",
                                    str(workers["this"][0].pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first: dict[str, tuple[float, float]] = {}
    last: dict[str, tuple[float, float]] = {}
    give_up = time.monotonic() + 3600
    try:
        while len(last) < len(workers):
            for label, (proc, port) in workers.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{label}: the worker exited:\n{open(proc.log_path).read()[-3000:]}")
                done = metric(port, EVENTS_METRIC) or 0
                cpu = cpu_seconds([proc.pid])
                if label not in first and done > 0:
                    first[label] = (done, cpu)
                if label not in last and done >= events:
                    last[label] = (done, cpu)
            if time.monotonic() > give_up:
                raise RuntimeError(f"timed out: {last}")
            time.sleep(0.1)
    finally:
        if sampler:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(60)
        for proc, _ in workers.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _ in workers.values():
            proc.wait(60)
    return {label: (last[label][1] - first[label][1]) / max(last[label][0] - first[label][0], 1) * 1e6
            for label in workers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=("sessions", "sessionless"), default="sessions")
    parser.add_argument("--paired-with", metavar="PATH", help="a checkout of another commit, run side by side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on a fresh topic")
    parser.add_argument("--sessions", type=int, default=3000, help="sessions of the sessions workload")
    parser.add_argument("--users", type=int, default=2000, help="users of the sessionless workload")
    parser.add_argument("--heavy", type=int, default=2000, help="clicks of its heavy user in the last 50 minutes")
    parser.add_argument("--py-spy", metavar="FILE", help="sample this checkout's worker with py-spy into FILE "
                        "(collapsed stacks) and print where its time goes")
    args = parser.parse_args()
    trees = {"this": None, **({"other": args.paired_with} if args.paired_with else {})}
    rows, ratios = [], []
    for i in range(args.rounds):
        run = uuid.uuid4().hex[:8]
        settings = workload_topic(run, f"bench-iacpu-{run}", f"bench_iacpu_{run}")
        events = produce(settings, args.workload, args, seed=i)
        floor = floor_us(settings, events)
        got = drain(settings, run, trees, events, args.py_spy)
        row = [str(i + 1), f"{events:,}", f"{floor:.1f}", f"{got['this']:.1f}", f"{got['this'] / floor:.0f}x"]
        if args.paired_with:
            ratios.append(got["this"] / got["other"])
            row[3:3] = [f"{got['other']:.1f}"]
            row.append(f"{ratios[-1]:.2f}")
        rows.append(row)
    header = ["round", "events", "floor CPU-µs/event", "this CPU-µs/event", "this / floor"]
    if args.paired_with:
        header[3:3] = ["other CPU-µs/event"]
        header.append("this / other")
        rows.append(["median", "", "", "", "", "", f"{statistics.median(ratios):.2f}"])
    print(table(f"Interaction worker CPU per event, {args.workload} workload, saturated (a backlog to drain)"
                + (f": this checkout vs {args.paired_with}" if args.paired_with else "")
                + f" ({os.cpu_count()} cores shared; Cassandra at {CASSANDRA})", header, rows))
    if args.py_spy:
        print(where_time_goes(args.py_spy))
    return 0


def where_time_goes(collapsed: str, top: int = 40) -> str:
    """The functions in the most samples (inclusive), from py-spy's collapsed stacks. Only
    the thread holding the GIL is sampled (`--gil`): Python's work, whichever thread does
    it (the worker's, the Cassandra driver's I/O thread, ...), not its waits."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in open(collapsed):
        stack, _, count = line.rstrip().rpartition(" ")
        total += int(count)
        for frame in {f.rsplit(":", 1)[0] for f in stack.split(";")}:  # without line numbers, once per stack
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    rows = [[f"{100 * n / total:.1f}%", frame] for frame, n in sorted(inclusive.items(), key=lambda x: -x[1])[:top]]
    return table(f"py-spy --gil, {total:,} samples: the functions in most of them", ["share", "function"], rows)


if __name__ == "__main__":
    sys.exit(main())
