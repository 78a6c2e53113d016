"""Gray failures: a node that hangs (SIGSTOP) with its sockets open, as in a GC pause,
on a stuck disk or behind a half-open network. Nothing looks down, so the clients go
on sending to it. Reads must route around it within their deadline, and ingest must
lose nothing. Each test prints its table (docs/operations.md records them); the
bounds are ratios and counts measured in the same run, never absolute times."""

from __future__ import annotations

import random
import time

import grpc
import numpy as np
import pytest

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.server import start_server
from tests.cluster import nodes
from vahini import wiring
from vahini.feature_rows import row_of
from vahini.registry import publish
from vahini.validation import EventLimits, validate_feature_update

pytestmark = [pytest.mark.real_service, pytest.mark.cluster, pytest.mark.slow]

HUNG_S = 40
KEYS = 100  # per request, each never read before: every read goes to the store


def write_products(settings, count: int) -> None:
    registry = publish.read_published(wiring.config_store(settings))
    now, rng = int(time.time() * 1000), random.Random(5)
    rows = [row_of(validate_feature_update({"entity": "product", "keys": {"product_id": f"p{i}"},
                                            "group": "product_stats", "event_time_ms": now - 1000,
                                            "values": {"ctr_7d": rng.random() / 10, "cvr_7d": rng.random() / 50}},
                                           registry, now, EventLimits()))
            for i in range(count)]
    store = wiring.feature_store(settings)
    try:
        for start in range(0, len(rows), 2000):
            store.write(rows[start:start + 2000])
    finally:
        store.close()


class ColdReads:
    """Retrieve and GetFeatures in turns, each on KEYS products never asked for before."""

    def __init__(self, channel: grpc.Channel):
        self._features = pb_grpc.FeatureServiceStub(channel)
        self._proxy = mpb_grpc.ModelProxyStub(channel)
        self.next_key = 0

    def _products(self) -> list[str]:
        first, self.next_key = self.next_key, self.next_key + KEYS
        return [f"p{i}" for i in range(first, first + KEYS)]

    def one(self, i: int, deadline_s: float) -> tuple[float, str]:
        """(milliseconds, "" or the status code and its details) of one call."""
        products = self._products()
        started = time.perf_counter()
        try:
            if i % 2:
                self._features.Retrieve(pb.RetrieveRequest(entity="product", keys=products, groups=[
                    pb.GroupSelector(group="product_stats")]), timeout=deadline_s)
            else:
                self._proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context={
                    "user_id": mpb.ContextIds(ids=[f"u{i}-{products[0]}"]),
                    "product_ids": mpb.ContextIds(ids=products)}), timeout=deadline_s)
            code = ""
        except grpc.RpcError as exc:
            code = f"{exc.code().name}: {(exc.details() or '')[:160]}"
        return (time.perf_counter() - started) * 1000, code

    def run(self, deadline_s: float, count: int | None = None, seconds: float | None = None) -> "Phase":
        phase, give_up = Phase(), time.monotonic() + (seconds or 1e9)
        while (count is None or len(phase.ms) < count) and time.monotonic() < give_up:
            sent_s = time.monotonic() - phase.started
            ms, code = self.one(len(phase.ms), deadline_s)
            phase.ms.append(ms)
            if code:
                phase.failures.append(f"{code} at +{sent_s:.1f} s")
        return phase


class Phase:
    def __init__(self):
        self.started = time.monotonic()
        self.ms: list[float] = []
        self.failures: list[str] = []  # "<status code> at +<seconds into the phase the call was sent>"

    @property
    def failed(self) -> int:
        return len(self.failures)

    def p(self, q: float) -> float:
        return float(np.percentile(self.ms, q))

    def row(self, name: str) -> str:
        failures = f" ({'; '.join(self.failures)})" if self.failures else ""
        return f"| {name} | {len(self.ms)} | {self.p(50):.0f} | {self.p(99):.0f} | {self.failed}{failures} |"


def test_a_hung_cassandra_replica_costs_cold_reads_at_most_1_percent_failures_and_2x_p99(settings):
    write_products(settings, 60_000)
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    reads = ColdReads(channel)
    try:
        reads.run(5.0, count=40)  # connections, prepared statements, the hedges' delay
        before = reads.run(5.0, seconds=HUNG_S)  # as long as the hang: p99s of about as many calls
        deadline_s = 3 * before.p(99) / 1000
        nodes.pause("cassandra-2")
        try:
            hung = reads.run(deadline_s, seconds=HUNG_S)
        finally:
            nodes.resume("cassandra-2")
        after = reads.run(deadline_s, count=100)
    finally:
        channel.close()
        running.stop(0)
    print(f"\ncold reads of {KEYS} products, Retrieve and GetFeatures in turns; RF 3, LOCAL_QUORUM; "
          f"cassandra-2 SIGSTOPped for {HUNG_S} s; tables' speculative_retry "
          f"{settings.cassandra.speculative_retry}; each call's deadline {deadline_s * 1000:.0f} ms "
          f"(3x the p99 before)\n| phase | calls | p50 ms | p99 ms | failed |\n|---|---|---|---|---|")
    print(before.row("before (deadline 5 s)"))
    print(hung.row("cassandra-2 hung"))
    print(after.row("after it resumed"))
    print(f"p99 while hung / before: {hung.p(99) / before.p(99):.2f}x; failed {100 * hung.failed / len(hung.ms):.2f}%")
    assert before.failed == 0
    assert hung.failed <= 0.01 * len(hung.ms), hung.failures
    assert hung.p(99) <= 2 * before.p(99)
    assert after.failed <= 0.01 * len(after.ms), after.failures


def test_sessions_load_and_flush_exactly_while_a_replica_hangs(settings):
    from tests.processes_helpers import wait_for
    from tests.streams.interaction_helpers import Reader, RunningInteractionWorker, producer

    sessions = settings.model_copy(update={"interactions": settings.interactions.model_copy(update={
        "group": f"{settings.ingest.group}-interactions", "inactivity_timeout_s": 2.0,
        "checkpoint_interval_s": 3600.0, "batch_size": 200})})
    t = int(time.time() * 1000) - 120_000
    events, worker, reader = producer(sessions), RunningInteractionWorker(sessions), Reader(sessions)
    try:
        def session(number: int, first: int, count: int) -> list[str]:
            """A session of `count` clicks, served hot; returns the user's clicks so far, newest first."""
            start = t + number * 10_000
            events.session_event("alice", f"s{number}", "START", start)
            for i in range(first, first + count):
                events.interaction(f"a-{i}", "alice", f"p{i}", "CLICK", start + i, category_id="c1")
            events.flush()
            clicks = [f"a-{i}" for i in reversed(range(first + count))]
            served(lambda: reader.history("alice").source == "hot" and reader.ids("alice") == clicks,
                   f"session {number} to be served hot with every click so far")
            return clicks

        def served(condition, what: str) -> None:
            """Wait for `condition`; on a timeout, say what the worker and the reader saw."""
            try:
                wait_for(condition, 180, what)
            except AssertionError as exc:
                history = reader.history("alice")
                raise AssertionError(f"{exc}; worker alive: {worker.thread.is_alive()}, failure: {worker.failure!r}, "
                                     f"stats: {worker.stats}; read: {history.source}, "
                                     f"{[i.event_id for i in history.interactions][:5]}...") from None

        def end(number: int, clicks: list[str]) -> None:
            events.session_event("alice", f"s{number}", "END", t + number * 10_000 + 5_000)
            events.flush()
            served(lambda: reader.history("alice").source == "cold" and reader.ids("alice") == clicks,
                   f"session {number} to be flushed to cold and evicted")

        end(1, session(1, 0, 30))
        nodes.pause("cassandra-2")
        try:
            both = session(2, 30, 20)  # START loaded the 30 cold clicks into the hot tier: a hedged read
            end(2, both)  # the flush's writes wait for LOCAL_QUORUM of the two live replicas
        finally:
            nodes.resume("cassandra-2")
        assert reader.ids("alice") == both
    finally:
        worker.close()
        reader.close()


def test_a_hung_partition_leader_costs_ingest_nothing_but_the_time_it_hangs(settings):
    from tests.cluster.traffic import CommitProbe, LiveIngest, stored_event_times

    ingest = LiveIngest(settings)
    producer, ports = ingest.producer, ingest.ports
    leaders = nodes.partition_leaders(settings.topics.feature_updates)
    coordinator = nodes.group_coordinator(settings.ingest.group)
    victim = next((b for b in leaders.values() if b != coordinator), leaders[0])
    probe = CommitProbe(*ports)
    committed_before = ingest.total("vahini_ingest_events_total")
    hung_at = time.monotonic()
    nodes.pause(victim)
    try:
        time.sleep(HUNG_S)
        committed_while_hung = ingest.total("vahini_ingest_events_total") - committed_before
    finally:
        nodes.resume(victim)
    time.sleep(5)
    probe.stop()
    sent, totals = ingest.finish()
    consumed, dead_letters = totals["events"], totals["dead_lettered"]  # the workers' own summaries
    stall = probe.longest_stall_after(hung_at)
    print(f"\n{victim} (leader of partitions {sorted(p for p, b in leaders.items() if b == victim)} of "
          f"{len(leaders)}; group coordinator {coordinator}) SIGSTOPped for {HUNG_S} s under ingest: longest "
          f"stall of commits {stall:.1f} s, {committed_while_hung:.0f} events committed while it hung, "
          f"{sent} sent, {consumed} consumed, {dead_letters:.0f} dead-lettered")
    assert stored_event_times(settings, list(producer.newest), attempts=3) == producer.newest
    assert consumed >= sent and dead_letters == 0
    assert committed_while_hung > 0  # the partitions it does not lead went on


def test_vahini_produce_to_a_hung_partition_leader_times_out_retries_and_says_so(settings, tmp_path):
    import json
    import subprocess
    import sys

    from tests.streams.processes import settings_env

    events = 20_000
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"entity": "user", "keys": {"user_id": f"u{i}"}, "group": "user_activity",
                                        "values": {"clicks_1d": i % 90}}) + "\n" for i in range(events)))
    log = wiring.event_log(settings)
    log.create_topic(settings.topics.feature_updates, settings.topics.partitions)
    log.close()
    victim = nodes.partition_leaders(settings.topics.feature_updates)[0]
    nodes.pause(victim)
    try:
        started = time.monotonic()
        produced = subprocess.run([sys.executable, "-m", "vahini.cli", "produce", "--kind", "feature-update",
                                   str(rows), "--no-progress"], env=settings_env(settings), capture_output=True,
                                  text=True, timeout=300)
        took = time.monotonic() - started
    finally:
        nodes.resume(victim)
    said = [line for line in produced.stderr.splitlines() if "kafka_client" in line or "kafka_produce_waiting" in line]
    print(f"\nvahini produce of {events} events with {victim} (leader of partition 0) SIGSTOPped: exit "
          f"{produced.returncode} after {took:.1f} s; it said:\n" + "\n".join(said[:5]))
    assert produced.returncode == 0 and f"sent {events} event(s), rejected 0" in produced.stdout, produced.stderr
    # the stall, as it happens: librdkafka's timeout as a structured line, and the flush waiting
    assert any("kafka_client_log" in line and "Timed out" in line for line in said), produced.stderr[-3000:]
    assert any("kafka_produce_waiting" in line for line in said), produced.stderr[-3000:]
    # each once; asked of the brokers that did not hang, whose metadata has the new leaders
    assert records_in(settings.topics.feature_updates, settings.topics.partitions, events, ask_not=victim) == events


def records_in(topic: str, partitions: int, expected: int, ask_not: str | None = None) -> int:
    """Records in the topic: latest minus earliest offset of each partition, asked of each
    partition's leader (AdminClient.list_offsets). Right after a leader moved, the answer may
    be an error or come from the old leader: asked again, for up to 60 s, until it reaches
    `expected`. `ask_not`: a broker (kafka-N) just resumed from a hang, left out of the
    bootstrap: its own metadata may still name it the leader of what it led (a CI run read
    its empty logs for those partitions for the whole 60 s)."""
    from confluent_kafka import KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    bootstrap = ",".join(f"{host}:9092" for n, host in enumerate(nodes.HOSTS, 1) if f"kafka-{n}" != ask_not)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    count = -1

    def offsets(spec) -> list[int]:
        asked = admin.list_offsets({TopicPartition(topic, p): spec for p in range(partitions)}, request_timeout=10)
        return [future.result(timeout=15).offset for future in asked.values()]
    for _ in range(60):
        try:
            count = sum(offsets(OffsetSpec.latest())) - sum(offsets(OffsetSpec.earliest()))
        except KafkaException:
            pass
        if count >= expected:
            break
        time.sleep(1)
    if count < expected:  # which partitions fell short, and who answered for them
        leaders = nodes.partition_leaders(topic)
        print(f"records_in({topic}): {count} of {expected}; leaders {leaders}")
    return count
