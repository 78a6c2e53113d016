"""End-to-end ingest throughput: Kafka -> durable in Cassandra.

    .venv/bin/python -m benchmarks.ingest [--events 2000000] [--faust-events 60000]

Needs the real services (make services-start, or VAHINI_BENCH_* endpoints).
Loads synthetic FeatureUpdates into a fresh topic, then measures, in this run:
  (a1) raw ceiling, per row: the same rows, one prepared INSERT each, at the best
       concurrency of a sweep (scylla-driver execute_concurrent_with_args)
  (a2) raw ceiling, batched: the same rows through Vahini's store adapter alone
       (token-aware unlogged batches), no Kafka, no decoding
  (b)  a plain faust-streaming agent (benchmarks/faust_agent.py), on a prefix
  Vahini with 1 worker process and with 2, each its own group and keyspace.
Rates are events per second between the first commit and the last (startup and
group join are excluded for every consumer alike). Worker CPU per event is the
worker processes' own CPU time (user + system, from /proc) over the same span,
divided by the events committed in it; beside it, decoding the same messages in
this process alone: with fastavro (the floor issue 11 set) and with the worker's own
FeatureUpdate reader.

    .venv/bin/python -m benchmarks.ingest --only-vahini --events 400000   # just the workers, quicker

For an A/B against an earlier commit, run its workers from a checkout of it, back to back:

    git worktree add /tmp/before <commit>
    .venv/bin/python -m benchmarks.ingest --only-vahini --events 300000 --worker-tree /tmp/before

or, better on a noisy machine, side by side: one worker of each checkout reads the same
topic at the same time (own group, own keyspace), and both are measured over the same
window, so drift in the machine's speed hits both alike:

    .venv/bin/python -m benchmarks.ingest --paired-with /tmp/before --events 300000 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import NamedTuple, Sequence

import fastavro
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from tqdm import tqdm

from benchmarks.common import CASSANDRA, KAFKA, real_settings, synthesize, table
from vahini import wiring
from vahini.codecs.avro import FEATURE_UPDATE, HEADER_LEN, AvroCodec, SchemaCatalog
from vahini.demo import SAMPLE_REGISTRY
from vahini.feature_rows import row_of
from vahini.registry import publish
from vahini.validation import validate_feature_update


def load_topic(settings, topic: str, partitions: int, data) -> None:
    log = wiring.event_log(settings)
    log.create_topic(topic, partitions)
    producer = log.producer()
    for payload, key in tqdm(zip(data.payloads, data.keys), total=len(data.payloads), desc="load kafka",
                             unit="ev", unit_scale=True):
        producer.send(topic, payload, key=key)
    producer.flush(120)
    log.close()


def rows_of(payloads, registry):
    codec, now = AvroCodec(SchemaCatalog.default()), int(time.time() * 1000)
    return [row_of(validate_feature_update(codec.decode(p)[1], registry, now)) for p in payloads]


def fresh_keyspace(settings, keyspace: str):
    host, port = CASSANDRA.split(":")
    cluster = Cluster([host], port=int(port))
    cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    cluster.shutdown()
    store = wiring.feature_store(settings.model_copy(update={
        "feature_store": f"cassandra://{CASSANDRA}/{keyspace}"}))
    return store


def raw_per_row(settings, run: str, rows, sample: int) -> tuple[float, int]:
    store = fresh_keyspace(settings, f"bench_raw_{run}")
    store.close()
    host, port = CASSANDRA.split(":")
    session = Cluster([host], port=int(port)).connect()
    insert = session.prepare(f"INSERT INTO bench_raw_{run}.feature_rows (entity, key, grp, event_time_ms, blob) "
                             f"VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?")
    params = [(r.entity, r.key, r.group, r.event_time_ms, r.blob, r.event_time_ms * 1000, r.ttl_s)
              for r in rows[:sample]]
    best = (0.0, 0)
    for concurrency in (64, 128, 256, 512):
        started = time.perf_counter()
        execute_concurrent_with_args(session, insert, params, concurrency=concurrency, raise_on_first_error=True)
        rate = len(params) / (time.perf_counter() - started)
        print(f"  per-row INSERT, concurrency {concurrency}: {rate:,.0f} rows/s")
        best = max(best, (rate, concurrency))
    session.cluster.shutdown()
    return best


def raw_batched(settings, run: str, rows, chunk: int) -> float:
    store = fresh_keyspace(settings, f"bench_rawb_{run}")
    started = time.perf_counter()
    for i in tqdm(range(0, len(rows), chunk), desc="raw batched", unit="batch"):
        store.write(rows[i:i + chunk])
    elapsed = time.perf_counter() - started
    store.close()
    return len(rows) / elapsed


def committed(log, group: str, topic: str) -> int:
    return sum(log.committed(group, topic).values())


def spawn(args: list[str], env: dict, name: str, cwd: str | None = None) -> subprocess.Popen:
    """A consumer process whose stderr is kept in a log file for post-mortems."""
    log_path = os.path.join(tempfile.gettempdir(), f"{name}.log")
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def spawn_worker(env: dict, name: str, tree: str | None = None) -> subprocess.Popen:
    """`vahini ingest features`, from this checkout or from the checkout at `tree`."""
    if tree:  # run from there: `-m` puts the working directory first, ahead of the editable install
        tree = os.path.abspath(tree)
        env = {**env, "PYTHONPATH": tree}
    return spawn([sys.executable, "-m", "vahini.cli", "ingest", "features"], env, name, tree)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
    return total / os.sysconf("SC_CLK_TCK")


class GroupRate(NamedTuple):
    events_per_s: float
    cpu_us_per_event: float  # the consumer processes'
    store_cpu_us_per_event: float | None  # the store_pids' (None: none given)


def measure_group(settings, group: str, topic: str, target: int, procs: list[subprocess.Popen],
                  timeout_s: float = 3600, store_pids: Sequence[int] = ()) -> GroupRate:
    """Between the group's first commit and reaching `target` committed events: its
    events/s, and the CPU-µs per event of the consumers and of `store_pids`."""
    log = wiring.event_log(settings)
    first = None
    deadline = time.monotonic() + timeout_s
    with tqdm(total=target, desc=group, unit="ev", unit_scale=True) as bar:
        while True:
            done = committed(log, group, topic)
            bar.n = done
            bar.refresh()
            now = time.monotonic()
            if first is None and done > 0:
                first = (now, done, cpu_seconds([p.pid for p in procs]), cpu_seconds(store_pids))
            if done >= target:
                cpu = cpu_seconds([p.pid for p in procs]) - first[2]
                store_cpu = cpu_seconds(store_pids) - first[3]
                break
            for p in procs:
                if p.poll() is not None:
                    tail = open(p.log_path).read()[-3000:]  # type: ignore[attr-defined]
                    raise RuntimeError(f"{group}: a consumer process exited early:\n{tail}")
            if now > deadline:
                raise RuntimeError(f"{group}: timed out at {done}/{target}")
            time.sleep(0.25)
    log.close()
    events = max(done - first[1], 1)
    return GroupRate(events / max(now - first[0], 1e-9), cpu / events * 1e6,
                     store_cpu / events * 1e6 if store_pids else None)


def paired(settings, run: str, topic: str, target: int, trees: dict[str, str | None]) -> dict[str, tuple]:
    """One worker per checkout in `trees` (label -> path; None: this one), all on `topic`
    at once, each in its own group and keyspace. Each one's (events/s, CPU-µs per event)
    is taken over the same window: from when every group has committed to when the first
    one reaches `target`."""
    procs = {}
    for label, tree in trees.items():
        keyspace, group = f"bench_{label}_{run}", f"bench-{label}-{run}"
        fresh_keyspace(settings, keyspace).close()
        procs[label] = (group, spawn_worker(env_for(settings, keyspace, group, topic), group, tree))
    log = wiring.event_log(settings)

    def sample() -> dict[str, tuple[int, float]]:
        return {label: (committed(log, group, topic), cpu_seconds([proc.pid])) for label, (group, proc) in procs.items()}
    try:
        first = last = None
        while last is None:
            time.sleep(0.25)
            now, points = time.monotonic(), sample()
            if first is None and all(done > 0 for done, _ in points.values()):
                first = (now, points)
            elif first is not None and any(done >= target for done, _ in points.values()):
                last = (now, points)
            for group, proc in procs.values():
                if proc.poll() is not None:
                    raise RuntimeError(f"{group}: a consumer process exited early:\n{open(proc.log_path).read()[-3000:]}")
    finally:
        for _, proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for _, proc in procs.values():
            proc.wait(60)
        log.close()
    span = last[0] - first[0]
    out = {}
    for label in procs:
        events = max(last[1][label][0] - first[1][label][0], 1)
        out[label] = (events / span, (last[1][label][1] - first[1][label][1]) / events * 1e6)
    return out


def paired_rounds(settings, run: str, args) -> int:
    print(f"synthesizing {args.events:,} feature updates (realistic mix, 16-d vectors on ~45%)")
    data = synthesize(args.events)
    rows, ratios = [], []
    for i in range(args.rounds):
        topic = f"bench-fu-{run}-{i}"
        load_topic(settings, topic, args.partitions, data)
        got = paired(settings, f"{run}{i}", topic, args.events, {"this": None, "other": args.paired_with})
        ratio = got["this"][1] / got["other"][1]
        ratios.append(ratio)
        rows.append([str(i + 1), f"{got['other'][0]:,.0f}", f"{got['other'][1]:.1f}", f"{got['this'][0]:,.0f}",
                     f"{got['this'][1]:.1f}", f"{ratio:.2f}"])
    rows.append(["median", "", "", "", "", f"{sorted(ratios)[len(ratios) // 2]:.2f}"])
    print(table(f"Worker CPU per event, side by side: this checkout vs {args.paired_with}, {args.events:,} events, "
                f"1 worker each ({os.cpu_count()} cores shared)",
                ["round", "other events/s", "other CPU-µs/event", "this events/s", "this CPU-µs/event",
                 "this / other"], rows))
    return 0


def env_for(settings, keyspace: str, group: str, topic: str) -> dict:
    env = dict(os.environ)
    env.update({"VAHINI_EVENT_LOG": settings.event_log, "VAHINI_FEATURE_STORE": f"cassandra://{CASSANDRA}/{keyspace}",
                "VAHINI_FEATURE_CACHE": settings.feature_cache,
                "VAHINI_HOT_TIER": settings.feature_cache,  # the old name, for checkouts from before the rename
                "VAHINI_CONFIG_STORE": settings.config_store,
                "VAHINI_INGEST__GROUP": group, "VAHINI_TOPICS__FEATURE_UPDATES": topic,
                "VAHINI_TOPICS__DEAD_LETTER": f"{topic}-dlq", "VAHINI_LOG_LEVEL": "WARNING",
                "BENCH_TOPIC": topic, "BENCH_GROUP": group, "BENCH_KEYSPACE": keyspace, "BENCH_KAFKA": KAFKA,
                "BENCH_CASSANDRA": CASSANDRA, "BENCH_CONFIG_STORE": settings.config_store})
    return env


def decode_floor(payloads: list[bytes]) -> tuple[float, float]:
    """CPU-µs per event of decoding the messages alone, in this process: with fastavro's
    public reader, and with the worker's codec (its own FeatureUpdate reader)."""
    codec = AvroCodec(SchemaCatalog.default())
    schema = codec.catalog.reader(FEATURE_UPDATE).parsed

    def with_fastavro(payload: bytes) -> None:
        fastavro.schemaless_reader(io.BytesIO(payload[HEADER_LEN:]), schema, None)

    return _cpu_us_per_call(with_fastavro, payloads), _cpu_us_per_call(codec.decode, payloads)


def _cpu_us_per_call(decode, payloads: list[bytes]) -> float:
    started = time.process_time()
    for payload in payloads:
        decode(payload)
    return (time.process_time() - started) / len(payloads) * 1e6


def vahini_workers(settings, run: str, topic: str, total: int, workers: int,
                   worker_tree: str | None = None) -> GroupRate:
    keyspace, group = f"bench_w{workers}_{run}", f"bench-w{workers}-{run}"
    fresh_keyspace(settings, keyspace).close()
    env = env_for(settings, keyspace, group, topic)
    procs = [spawn_worker(env, f"{group}-{i}", worker_tree) for i in range(workers)]
    try:
        return measure_group(settings, group, topic, total, procs)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)


def faust_baseline(settings, run: str, topic: str, events: int) -> float:
    keyspace, group = f"bench_faust_{run}", f"bench-faust-{run}"
    fresh_keyspace(settings, keyspace).close()
    proc = spawn([sys.executable, "-m", "benchmarks.faust_agent", "worker", "-l", "warn"],
                 env_for(settings, keyspace, group, topic), group)
    try:
        return measure_group(settings, group, topic, events, [proc])[0]
    finally:
        proc.kill()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--faust-events", type=int, default=60_000, help="faust is measured on this prefix")
    parser.add_argument("--raw-sample", type=int, default=60_000, help="rows per point of the per-row sweep")
    parser.add_argument("--only-vahini", action="store_true", help="measure the workers alone (no baselines)")
    parser.add_argument("--paired-with", metavar="PATH",
                        help="measure one worker of this checkout and one of PATH side by side (see above)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --paired-with, each on a fresh topic")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure, e.g. 1 or 1,2")
    parser.add_argument("--worker-tree", metavar="PATH",
                        help="run the worker processes from this checkout (an A/B against another commit)")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    settings = real_settings(run, "unused")
    store = wiring.config_store(settings)
    registry = publish.apply(SAMPLE_REGISTRY, store)
    store.close()
    if args.paired_with:
        return paired_rounds(settings, run, args)

    print(f"synthesizing {args.events:,} feature updates (realistic mix, 16-d vectors on ~45%)")
    data = synthesize(args.events)
    topic = f"bench-fu-{run}"
    load_topic(settings, topic, args.partitions, data)
    rows = [] if args.only_vahini else rows_of(data.payloads, registry)

    fastavro_us, codec_us = decode_floor(data.payloads[:200_000])
    counts = [int(n) for n in args.workers.split(",")]
    if not args.only_vahini:
        counts = sorted({1, 2, *counts})  # the table of ratios below needs both
    measured = {n: vahini_workers(settings, run, topic, args.events, n, args.worker_tree) for n in counts}
    cpu_rows = [[f"Vahini, {n} worker process{'es' if n > 1 else ''}", f"{rate:,.0f}", f"{cpu:.1f}"]
                for n, (rate, cpu, _) in measured.items()]
    cpu_rows.append(["bare fastavro decode of the same messages (floor)", "", f"{fastavro_us:.1f}"])
    cpu_rows.append(["the worker's own decode of them (vahini/codecs/feature_update_reader.py)", "",
                     f"{codec_us:.1f}"])
    print(table(f"Worker CPU per event, {args.events:,} events ({os.cpu_count()} cores shared)",
                ["configuration", "events/s", "worker CPU-µs/event"], cpu_rows))
    if args.only_vahini:
        return 0

    print("raw ceiling, per-row sweep:")
    raw_row, best_conc = raw_per_row(settings, run, rows, args.raw_sample)
    raw_batch = raw_batched(settings, run, rows, 5000)
    one, two = measured[1][0], measured[2][0]
    faust = faust_baseline(settings, run, topic, args.faust_events)

    results = [
        ["(a1) raw per-row INSERT, best concurrency", f"{raw_row:,.0f}", "1.00", f"concurrency {best_conc}"],
        ["(a2) raw batched writes (store adapter alone)", f"{raw_batch:,.0f}", f"{raw_batch / raw_row:.2f}", ""],
        ["(b) faust-streaming agent", f"{faust:,.0f}", f"{faust / raw_row:.2f}", f"{args.faust_events:,} events"],
        ["Vahini, 1 worker process", f"{one:,.0f}", f"{one / raw_row:.2f}",
         f"{one / raw_batch:.2f} of (a2), {one / faust:.1f}x (b)"],
        ["Vahini, 2 worker processes", f"{two:,.0f}", f"{two / raw_row:.2f}",
         f"{two / raw_batch:.2f} of (a2), {two / faust:.1f}x (b), {two / one:.2f}x 1 worker"],
    ]
    print(table(f"Ingest, Kafka -> Cassandra, {args.events:,} events, {args.partitions} partitions "
                f"({os.cpu_count()} cores shared by Kafka, Cassandra and the consumers)",
                ["configuration", "events/s", "vs (a1)", "notes"], results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
