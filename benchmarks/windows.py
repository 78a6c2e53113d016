"""Windowed interaction counts: Vahini's interaction worker against faust-streaming.

    .venv/bin/python -m benchmarks.windows [--events 20000] [--users 2000] [--baseline-tree /tmp/baseline]

Both keep the sample registry's `user_interaction_windows` and
`user_category_interaction_windows` (clicks/orders in the last 1 h and 24 h, per
user and per user x category) in the feature store, from the same Kafka topic of
interactions without sessions:

  (a) faust-streaming (benchmarks/faust_windows.py): hopping windowed tables with
      changelog topics, the counts written to the feature store after each event;
      measured on a prefix of the topic (--faust-events), as it is slow;
  (b) `vahini ingest interactions`: counts recomputed per batch from each user's
      history, written in batches; it also stores every interaction in the cold
      tier, which (a) does not.

  (c) with --baseline-tree: (b) run from a checkout of another commit, on the same
      topic, after (b).

Rates are events per second between the group's first commit and its last, with
the worker's CPU per event over the same span.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
import uuid

from benchmarks.common import CASSANDRA, KAFKA, real_settings, table
from benchmarks.ingest import fresh_keyspace, measure_group, spawn
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
                "VAHINI_HOT_TIER": settings.hot_tier, "VAHINI_CONFIG_STORE": settings.config_store,
                "VAHINI_TOPICS__INTERACTIONS": settings.topics.interactions,
                "VAHINI_TOPICS__SESSIONS": settings.topics.sessions,
                "VAHINI_TOPICS__DEAD_LETTER": settings.topics.dead_letter,
                "VAHINI_INTERACTIONS__HOT_TIER": settings.hot_tier, "VAHINI_INTERACTIONS__GROUP": group,
                "VAHINI_INTERACTIONS__NAMESPACE": f"bench-{run}", "VAHINI_CACHE__NAMESPACE": f"bench-{run}",
                "VAHINI_LOG_LEVEL": "WARNING", "BENCH_TOPIC": settings.topics.interactions, "BENCH_GROUP": group,
                "BENCH_KAFKA": KAFKA, "BENCH_CONFIG_STORE": settings.config_store,
                "BENCH_FEATURE_STORE": f"cassandra://{CASSANDRA}/{keyspace}"})
    return out


def run_one(settings, name: str, args: list[str], events: int, run: str,
            tree: str | None = None) -> tuple[float, float]:
    """(events/s, CPU-µs per event) of one consumer process until its group has committed `events`."""
    keyspace, group = f"bench_{name}_{run}", f"bench-{name}-{run}"
    fresh_keyspace(settings, keyspace).close()
    worker_env = env(settings, keyspace, group, f"{name}-{run}")
    if tree:  # run from there: `-m` puts the working directory first, ahead of the editable install
        worker_env["PYTHONPATH"] = os.path.abspath(tree)
    proc = spawn(args, worker_env, group, os.path.abspath(tree) if tree else None)
    try:
        return measure_group(settings, group, settings.topics.interactions, events, [proc])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--faust-events", type=int, default=3000, help="faust is measured on this prefix")
    parser.add_argument("--baseline-tree", help="also run the vahini worker from this checkout of another commit")
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
    faust = run_one(settings, "faustw", [sys.executable, "-m", "benchmarks.faust_windows", "worker", "-l", "warn",
                                         "--web-port", str(free_port())],
                    min(args.faust_events, args.events), run)
    worker = [sys.executable, "-m", "vahini.cli", "ingest", "interactions"]
    vahini = run_one(settings, "vahiniw", worker, args.events, run)
    rows = [["(a) faust-streaming hopping windowed tables (baseline)", f"{faust[0]:,.0f}", "1.00x", f"{faust[1]:.0f}"],
            ["(b) vahini ingest interactions (also stores every interaction)", f"{vahini[0]:,.0f}",
             f"{vahini[0] / faust[0]:.2f}x", f"{vahini[1]:.0f}"]]
    if args.baseline_tree:
        other = run_one(settings, "basew", worker, args.events, run, args.baseline_tree)
        rows.append([f"(c) the same from {args.baseline_tree}", f"{other[0]:,.0f}", f"{other[0] / faust[0]:.2f}x",
                     f"{other[1]:.0f}"])
    print(table(f"Windowed counts (1 h and 24 h, per user and per user x category) over {args.events:,} "
                f"interactions of {args.users:,} users (faust on the first {min(args.faust_events, args.events):,}), "
                f"one process each", ["consumer", "events/s", "vs faust", "CPU-µs/event"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
