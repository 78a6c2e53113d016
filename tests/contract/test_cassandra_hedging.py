"""The hedges' delay (vahini.adapters.cassandra_hedging), without a cluster: it
follows the reads one replica answered alone, within its bounds. The hedges
themselves are tested on the three-node cluster (tests/cluster/test_gray_failures.py).
The tables' server-side speculative_retry is checked on the real Cassandra."""

from __future__ import annotations

from types import SimpleNamespace

from cassandra.policies import ConstantSpeculativeExecutionPolicy
from cassandra.cluster import ResponseFuture

import pytest

from vahini.adapters.cassandra_hedging import (CASSANDRA_SPECULATIVE_RETRY, HedgedReads, HedgeOptions,
                                              ObservedLatency, same_speculative_retry, wanted_speculative_retry)

OPTIONS = HedgeOptions(percentile=99.0, min_delay_s=0.002, max_delay_s=0.1, initial_delay_s=0.05)


def test_the_delay_is_the_initial_one_until_enough_reads_were_seen_then_their_p99():
    latency = ObservedLatency(OPTIONS, window=1000, refresh_every=100)
    for i in range(199):
        latency.record(0.010)
    assert latency.delay_s == 0.05
    latency.record(0.010)
    assert abs(latency.delay_s - 0.010) < 1e-9
    for i in range(1000):  # 2% of reads at 40 ms: p99 falls among them
        latency.record(0.040 if i % 50 == 0 else 0.010)
    assert abs(latency.delay_s - 0.040) < 1e-9


def test_the_delay_stays_within_its_bounds():
    latency = ObservedLatency(OPTIONS, window=100, refresh_every=10)
    for _ in range(100):
        latency.record(5.0)
    assert latency.delay_s == OPTIONS.max_delay_s
    for _ in range(100):
        latency.record(0.0001)
    assert latency.delay_s == OPTIONS.min_delay_s


def test_a_read_that_took_more_than_one_replica_is_not_timed():
    now = [10.0]
    latency = ObservedLatency(OPTIONS, window=10, refresh_every=1, clock=lambda: now[0])
    for _ in range(2):
        latency.record_answer(None, SimpleNamespace(attempted_hosts=["a", "b"]), sent_at=0.0)  # hedged: 10 s
    assert latency.delay_s == OPTIONS.initial_delay_s
    for _ in range(2):
        latency.record_answer(None, SimpleNamespace(attempted_hosts=["a"]), sent_at=9.97)
    assert abs(latency.delay_s - 0.03) < 1e-9


def test_each_plan_hedges_at_the_current_delay_at_most_max_hedges_times():
    latency = ObservedLatency(OPTIONS)
    plan = HedgedReads(latency, max_hedges=2).new_plan("ks", None)
    assert [plan.next_execution(None) for _ in range(3)] == [0.05, 0.05, -1]


def test_the_driver_still_has_what_hedging_uses():
    """Fails by name when scylla-driver renames what the hedges are built on."""
    import inspect

    assert hasattr(ConstantSpeculativeExecutionPolicy, "ConstantSpeculativeExecutionPlan")
    assert hasattr(ResponseFuture, "attempted_hosts")  # the hosts a read went to, hedges included
    assert "speculative_execution_plan" in inspect.signature(ResponseFuture.__init__).parameters


def test_auto_caps_the_coordinators_retry_on_cassandra_and_leaves_scylla_alone():
    assert wanted_speculative_retry("auto", is_scylla=False) == "MIN(99p,50ms)"
    assert wanted_speculative_retry("auto", is_scylla=True) is None
    assert wanted_speculative_retry("keep", is_scylla=False) is None
    assert wanted_speculative_retry("20ms", is_scylla=True) == "20ms"


def test_the_same_retry_in_cassandras_spelling_is_not_altered_again():
    assert same_speculative_retry("MIN(99.0p,50.0ms)", "MIN(99p, 50ms)")
    assert same_speculative_retry("99PERCENTILE", "99p")
    assert not same_speculative_retry("99p", "MIN(99p,50ms)")
    assert not same_speculative_retry("", "50ms")


@pytest.mark.real_service
@pytest.mark.parametrize("setting, expected", [("auto", CASSANDRA_SPECULATIVE_RETRY), ("keep", "99p"),
                                               ("30ms", "30ms")])
def test_the_tables_get_the_speculative_retry_set(cassandra_endpoint, unique, setting, expected):
    from vahini.adapters.cassandra_feature_store import TABLE
    from vahini.adapters.cassandra_session import CassandraOptions, CassandraSession

    host, port = cassandra_endpoint.rsplit(":", 1)
    keyspace = f"spec_{unique}"
    session = CassandraSession(CassandraOptions([host], int(port), keyspace, speculative_retry=setting), [TABLE])
    try:
        found = session.cluster.metadata.keyspaces[keyspace].tables["feature_rows"].options["speculative_retry"]
        assert same_speculative_retry(found, expected), found
    finally:
        session.session.execute(f"DROP KEYSPACE {keyspace}", timeout=60)
        session.cluster.shutdown()
