"""Ingest on the three-node cluster beside the single node, in one run.

    .venv/bin/python -m benchmarks.ingest_cluster [--events 200000] [--partitions 8] [--rounds 2]

Needs the single-node services (make services-start) and the cluster profile
(make cluster-start). The same synthetic FeatureUpdates go to a topic on each:
  single   one broker (replication 1), one Cassandra node (keyspace replication 1)
  cluster  three brokers (replication 3, min.insync.replicas 2, acks=all), three
           Cassandra nodes (keyspace replication 3, writes at LOCAL_QUORUM)
and one worker process ingests each, measured as in benchmarks/ingest.py: events/s
between its group's first commit and its last, and the worker's own CPU per event.
The stacks take turns, round after round, so a drift of the shared machine hits both.
On 2 shared cores the six cluster JVMs compete with the worker for CPU: this shows
what replication costs per event, not what a cluster can absorb.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import uuid

from benchmarks.common import KAFKA, CASSANDRA, real_settings, synthesize, table
from benchmarks.ingest import GroupRate, load_topic, measure_group, spawn_worker
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import publish
from vahini.settings import CassandraSettings, TopicSettings

CLUSTER_KAFKA = "127.0.0.2:9092,127.0.0.3:9092,127.0.0.4:9092"
CLUSTER_CASSANDRA = "127.0.0.2,127.0.0.3,127.0.0.4:9042"


def stack(run: str, name: str, kafka: str, cassandra: str, replication: int, partitions: int):
    keyspace = f"bench_{name}_{run}"
    base = real_settings(run, keyspace)
    return base.model_copy(update={
        "event_log": f"kafka://{kafka}", "feature_store": f"cassandra://{cassandra}/{keyspace}",
        "topics": TopicSettings(feature_updates=f"bench-{name}-{run}", dead_letter=f"bench-{name}-{run}-dlq",
                                partitions=partitions, replication_factor=replication),
        "cassandra": CassandraSettings(replication_factor=replication)})


def worker_env(settings, group: str) -> dict:
    env = dict(os.environ)
    env.update({"VAHINI_EVENT_LOG": settings.event_log, "VAHINI_FEATURE_STORE": settings.feature_store,
                "VAHINI_FEATURE_CACHE": settings.feature_cache,
                "VAHINI_HOT_TIER": settings.feature_cache,  # the old name, for checkouts from before the rename
                "VAHINI_CONFIG_STORE": settings.config_store,
                "VAHINI_INGEST__GROUP": group, "VAHINI_TOPICS__FEATURE_UPDATES": settings.topics.feature_updates,
                "VAHINI_TOPICS__DEAD_LETTER": settings.topics.dead_letter,
                "VAHINI_TOPICS__REPLICATION_FACTOR": str(settings.topics.replication_factor),
                "VAHINI_CASSANDRA__REPLICATION_FACTOR": str(settings.cassandra.replication_factor),
                "VAHINI_CACHE__NAMESPACE": settings.cache.namespace, "VAHINI_LOG_LEVEL": "WARNING"})
    return env


def ingest(settings, name: str, data, events: int) -> GroupRate:
    group = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    proc = spawn_worker(worker_env(settings, group), group)
    try:
        return measure_group(settings, group, settings.topics.feature_updates, events, [proc])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="turns each stack takes, alternating")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    stacks = {"single": stack(run, "single", KAFKA, CASSANDRA, 1, args.partitions),
              "cluster": stack(run, "cluster", CLUSTER_KAFKA, CLUSTER_CASSANDRA, 3, args.partitions)}
    store = wiring.config_store(stacks["single"])  # one registry serves both stacks
    publish.apply(SAMPLE_REGISTRY, store)
    store.close()
    data = synthesize(args.events)
    for settings in stacks.values():
        load_topic(settings, settings.topics.feature_updates, settings.topics.partitions, data)
    rows, baseline = [], None
    for round_ in range(1, args.rounds + 1):
        for name, settings in stacks.items():
            rate, cpu, _ = ingest(settings, name, data, args.events)
            baseline = cpu if name == "single" else baseline
            rows.append([round_, DESCRIPTION[name], f"{rate:,.0f}", f"{cpu:.1f}", f"{cpu / baseline:.2f}"])
    print(table(f"Ingest by one worker process, {args.events:,} events, {args.partitions} partitions "
                f"({os.cpu_count()} cores shared by every JVM and the worker)",
                ["round", "stack", "events/s", "worker CPU-µs/event", "CPU vs single, same round"], rows))
    return 0


DESCRIPTION = {"single": "single node: 1 broker, 1 Cassandra node, replication 1",
               "cluster": "cluster: 3 brokers, 3 Cassandra nodes, replication 3, LOCAL_QUORUM"}


if __name__ == "__main__":
    sys.exit(main())
