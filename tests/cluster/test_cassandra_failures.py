"""Cassandra node failures and schema races, on the three-node cluster (replication 3,
LOCAL_QUORUM): one node down must cost nothing."""

from __future__ import annotations

import time

import pytest

from tests.cluster import nodes
from tests.cluster.traffic import SteadyProducer, metric, stored_event_times
from tests.processes_helpers import wait_for
from tests.services import free_port
from tests.streams.helpers import wait_for_commits
from tests.streams.processes import WorkerProcess

pytestmark = [pytest.mark.real_service, pytest.mark.cluster, pytest.mark.slow]


def test_a_node_killed_mid_ingest_loses_nothing_and_quorum_reads_go_on(settings):
    port = free_port()
    producer = SteadyProducer(settings)
    worker = WorkerProcess(settings, metrics_port=port)
    wait_for(lambda: (metric(port, "vahini_ingest_events_total") or 0) > 5000, 120, "the worker to ingest")
    sample = list(producer.newest)[:500]
    before = stored_event_times(settings, sample)
    assert before  # partitions are consumed at their own pace: some of the sample may not be stored yet
    nodes.kill9("cassandra-2")
    reads, deadline = 0, time.monotonic() + 20
    while time.monotonic() < deadline:  # ingest goes on; reads at LOCAL_QUORUM are answered by the other two
        stored = stored_event_times(settings, sample)
        assert all(stored.get(user, -1) >= at for user, at in before.items())  # nothing written is missing
        reads += 1
    sent = producer.stop()
    wait_for_commits(settings, 180)
    summary = worker.terminate()
    assert summary["events"] >= sent and reads > 0
    assert stored_event_times(settings, list(producer.newest), attempts=3) == producer.newest

    nodes.start("cassandra-2")  # it rejoins; then its peer goes down, so every quorum needs the rejoined node
    nodes.kill9("cassandra-3")
    assert stored_event_times(settings, list(producer.newest), attempts=3) == producer.newest


def test_workers_started_together_on_a_fresh_keyspace_all_run(settings):
    """Each worker creates the keyspace and tables if missing, and they race: the losers
    must wait for the cluster to agree on the schema, never exit."""
    producer = SteadyProducer(settings, rate=1000)
    ports = [free_port() for _ in range(4)]
    workers = [WorkerProcess(settings, metrics_port=port) for port in ports]
    time.sleep(15)
    dead = [w.proc.communicate()[1][-2000:] for w in workers if not w.alive()]
    assert not dead, dead
    sent = producer.stop()
    wait_for_commits(settings, 180)
    consumed = sum(w.terminate()["events"] for w in workers)
    assert consumed >= sent
    assert stored_event_times(settings, list(producer.newest), attempts=3) == producer.newest


def test_a_session_flushes_to_cold_while_a_node_is_down(settings):
    from tests.streams.interaction_helpers import Reader, RunningInteractionWorker, producer

    sessions = settings.model_copy(update={"interactions": settings.interactions.model_copy(update={
        "group": f"{settings.ingest.group}-interactions", "inactivity_timeout_s": 2.0,
        "checkpoint_interval_s": 3600.0, "batch_size": 200})})
    t = int(time.time() * 1000) - 60_000
    events = producer(sessions)
    events.session_event("alice", "s1", "START", t)
    for i in range(20):
        events.interaction(f"a-{i}", "alice", f"p{i}", "CLICK", t + i, category_id="c1")
    events.flush()
    worker, reader = RunningInteractionWorker(sessions), Reader(sessions)
    expected = [f"a-{i}" for i in reversed(range(20))]
    wait_for(lambda: reader.ids("alice") == expected, 60, "the session to be served hot")
    assert reader.history("alice").source == "hot"

    nodes.kill9("cassandra-1")  # the seed, and the driver's first contact point
    events.session_event("alice", "s1", "END", t + 100)
    events.flush()
    wait_for(lambda: reader.history("alice").source == "cold", 60, "the session to be flushed and evicted")
    assert reader.ids("alice") == expected
    worker.close()
    reader.close()
