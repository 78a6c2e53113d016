"""Windowed interaction counts: Vahini's interaction worker against faust-streaming.

    .venv/bin/python -m benchmarks.windows [--events 100000] [--users 10000] [--baseline-tree /tmp/baseline]
        [--rounds 3] [--faust-events 300]

Both keep the sample registry's `user_interaction_windows` and
`user_category_interaction_windows` (clicks/orders in the last 1 h and 24 h, per
user and per user x category) in the feature store, from the same Kafka topic of
interactions without sessions:

  (a) faust-streaming (benchmarks/faust_windows.py): hopping windowed tables with
      changelog topics, the counts written to the feature store after each event;
      measured on a prefix of the topic (--faust-events), as it is slow;
  (b) `vahini ingest interactions`: counts kept in each user's time buckets
      (streams/windows.py), the changed rows written once per batch; it also stores
      every interaction in the cold tier, which (a) does not.

  (c) with --baseline-tree: (b) run from a checkout of another commit, on the same
      topic, alternating with (b) round by round (--rounds), each from the start.

Rates are events per second between the group's first commit and its last, with
the worker's CPU per event over the same span, and the local Cassandra's (the one
`infra/services.sh` started, when the benchmark uses it): on one machine the store
shares the cores, so its CPU per event bounds every consumer's events/s.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
import uuid

from benchmarks.common import CASSANDRA, KAFKA, local_service_pid, real_settings, table
from benchmarks.ingest import GroupRate, fresh_keyspace, measure_group, spawn
from tests.services import free_port
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.producer import EventProducer
from vahini.registry import publish
from vahini.settings import TopicSettings


def produce(settings, events: int, users: int) -> None:
    rng = random.Random(3)
    p = EventProducer.from_settings(settings, "bench")
    now = int(time.time() * 1000)
    for k in range(events):
        p.interaction(f"e{k}", f"u{rng.randrange(users)}", f"p{rng.randrange(50_000)}",
                      rng.choice(["CLICK"] * 8 + ["ORDER", "WISHLIST"]), now - rng.randrange(3 * 3_600_000),
                      category_id=f"c{rng.randrange(50)}")
    p.flush()
    p.close()


def env(settings, keyspace: str, group: str, run: str) -> dict:
    out = dict(os.environ)
    out.update({"VAHINI_EVENT_LOG": settings.event_log, "VAHINI_FEATURE_STORE": f"cassandra://{CASSANDRA}/{keyspace}",
                "VAHINI_FEATURE_CACHE": settings.feature_cache,
                "VAHINI_HOT_TIER": settings.feature_cache,  # the old name, for checkouts from before the rename
                "VAHINI_CONFIG_STORE": settings.config_store,
                "VAHINI_TOPICS__INTERACTIONS": settings.topics.interactions,
                "VAHINI_TOPICS__SESSIONS": settings.topics.sessions,
                "VAHINI_TOPICS__DEAD_LETTER": settings.topics.dead_letter,
                "VAHINI_INTERACTIONS__HOT_TIER": settings.feature_cache, "VAHINI_INTERACTIONS__GROUP": group,
                "VAHINI_INTERACTIONS__NAMESPACE": f"bench-{run}", "VAHINI_CACHE__NAMESPACE": f"bench-{run}",
                "VAHINI_LOG_LEVEL": "WARNING", "BENCH_TOPIC": settings.topics.interactions, "BENCH_GROUP": group,
                "BENCH_KAFKA": KAFKA, "BENCH_CONFIG_STORE": settings.config_store,
                "BENCH_FEATURE_STORE": f"cassandra://{CASSANDRA}/{keyspace}"})
    return out


def run_one(settings, name: str, args: list[str], events: int, run: str,
            tree: str | None = None) -> GroupRate:
    """One consumer process's rate until its group has committed `events`, with the local
    Cassandra's CPU where the benchmark uses it."""
    keyspace, group = f"bench_{name}_{run}", f"bench-{name}-{run}"
    fresh_keyspace(settings, keyspace).close()
    worker_env = env(settings, keyspace, group, f"{name}-{run}")
    if tree:  # run from there: `-m` puts the working directory first, ahead of the editable install
        worker_env["PYTHONPATH"] = os.path.abspath(tree)
    proc = spawn(args, worker_env, group, os.path.abspath(tree) if tree else None)
    try:
        store = local_service_pid("cassandra") if CASSANDRA == "127.0.0.1:9042" else None
        return measure_group(settings, group, settings.topics.interactions, events, [proc],
                             store_pids=[store] if store else ())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--faust-events", type=int, default=300, help="faust is measured on this prefix (0: not run)")
    parser.add_argument("--baseline-tree", help="also run the vahini worker from this checkout of another commit")
    parser.add_argument("--rounds", type=int, default=3, help="runs of (b) and (c), alternating which goes first")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    topic = f"bench-windows-{run}"
    settings = real_settings(run, f"bench_windows_{run}").model_copy(update={"topics": TopicSettings(
        interactions=topic, sessions=topic, dead_letter=f"{topic}-dlq")})
    publish.apply(SAMPLE_REGISTRY, wiring.config_store(settings))
    log = wiring.event_log(settings)
    log.create_topic(topic, 8)
    log.close()
    produce(settings, args.events, args.users)
    rows = []
    if args.faust_events:
        faust = run_one(settings, "faustw", [sys.executable, "-m", "benchmarks.faust_windows", "worker", "-l", "warn",
                                             "--web-port", str(free_port())],
                        min(args.faust_events, args.events), run)
        rows.append([f"(a) faust-streaming hopping windowed tables, on the first {args.faust_events:,}", "",
                     *_cells(faust)])
    worker = [sys.executable, "-m", "vahini.cli", "ingest", "interactions"]
    trees = {"(b) vahini ingest interactions (also stores every interaction)": None}
    if args.baseline_tree:
        trees[f"(c) the same from {args.baseline_tree}"] = args.baseline_tree
    rates: dict[str, list[GroupRate]] = {label: [] for label in trees}
    for i in range(args.rounds):
        order = list(trees.items()) if i % 2 == 0 else list(reversed(trees.items()))
        for label, tree in order:
            rates[label].append(run_one(settings, f"{'basew' if tree else 'vahiniw'}{i}", worker, args.events, run,
                                        tree))
            rows.append([label, str(i + 1), *_cells(rates[label][-1])])
    print(table(f"Windowed counts (1 h and 24 h, per user and per user x category) over {args.events:,} "
                f"interactions of {args.users:,} users, one process each",
                ["consumer", "round", "events/s", "CPU-µs/event", "Cassandra CPU-µs/event"], rows))
    if args.baseline_tree:
        this, other = rates.values()
        ratios = [[None if a[k] is None or b[k] is None else a[k] / b[k] for k in range(3)]
                  for a, b in zip(this, other)]
        medians = [None if ratios[0][k] is None else statistics.median(r[k] for r in ratios) for k in range(3)]
        print(table("(b) / (c), round by round", ["round", "events/s", "CPU-µs/event", "Cassandra CPU-µs/event"],
                    [[str(i + 1), *_ratios(r)] for i, r in enumerate(ratios)] + [["median", *_ratios(medians, "**")]]))
    return 0


def _ratios(values: list[float | None], mark: str = "") -> list[str]:
    return ["-" if v is None else f"{mark}{v:.2f}x{mark}" for v in values]


def _cells(rate: GroupRate) -> list[str]:
    return [f"{rate[0]:,.0f}", f"{rate[1]:.0f}", "-" if rate[2] is None else f"{rate[2]:.0f}"]


if __name__ == "__main__":
    raise SystemExit(main())
