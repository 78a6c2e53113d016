"""The worker when the event log itself fails: a locked SQLite log, a dead-letter
topic that refuses records, and offset commits the broker rejects. In each case the
worker retries, commits nothing it has not finished, and loses nothing."""

from __future__ import annotations

import sqlite3
import time

import pytest
from prometheus_client import REGISTRY

from vahini.streams.app import Backends, build_worker
from vahini.streams.dead_letter import reason_of
from tests.conftest_backends import stack_settings, with_sample_registry
from tests.processes_helpers import WorkerThread, wait_for
from tests.streams.helpers import CODEC, dead_letters, send_raw, send_updates, stored_clicks, update, wait_for_commits
from vahini import wiring
from vahini.adapters.sqlite_event_log import SqliteEventLog
from vahini.codecs.avro import FEATURE_UPDATE
from vahini.errors import StoreUnavailable
from vahini.registry.publish import RegistryFollower


def retries(step: str) -> float:
    return REGISTRY.get_sample_value("vahini_ingest_retries_total", {"step": step}) or 0


def now_ms() -> int:
    return int(time.time() * 1000)


def RunningWorker(settings, backends: Backends) -> WorkerThread:  # named as the class it builds
    return WorkerThread(build_worker(settings, backends), backends)


def test_a_locked_embedded_event_log_is_retried_not_fatal(request, tmp_path, unique):
    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique, batch_size=50))
    path = str(tmp_path / "events.db")
    send_updates(settings, [update(f"a{i}", i, now_ms()) for i in range(100)])
    store = wiring.feature_store(settings)
    log = SqliteEventLog(path, settings.topics.partitions, 6000, busy_timeout_s=0.1)
    backends = Backends(log, store, wiring.feature_cache(settings, store), RegistryFollower(wiring.config_store(settings)))
    running = RunningWorker(settings, backends)
    wait_for_commits(settings, 30)

    before = retries("poll") + retries("commit")
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # a backup or an operator's shell holds the whole file
    wait_for(lambda: retries("poll") + retries("commit") > before, 30, "the worker to hit the lock and retry")
    assert running.thread.is_alive() and running.failure is None
    locker.execute("ROLLBACK")
    locker.close()

    send_updates(settings, [update(f"b{i}", i, now_ms()) for i in range(100)])
    wait_for_commits(settings, 30)
    running.close()
    assert stored_clicks(settings, [f"b{i}" for i in range(100)]) == {f"b{i}": i for i in range(100)}


def _set_topic_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("max.message.bytes", str(value), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


@pytest.mark.real_service
def test_a_dead_letter_topic_that_refuses_records_stalls_the_batch_and_loses_nothing(request, tmp_path, unique):
    settings = with_sample_registry(stack_settings("real", request, tmp_path, unique, batch_size=50))
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    log = wiring.event_log(settings)
    log.create_topic(settings.topics.dead_letter, settings.topics.partitions)
    log.close()
    _set_topic_max_message_bytes(bootstrap, settings.topics.dead_letter, 64)  # every dead letter is refused

    t = now_ms()
    bad = [b"not avro %d" % i + b"." * 100 for i in range(5)]
    payloads = [CODEC.encode(FEATURE_UPDATE, update("good", 7, t))] + bad
    before = retries("dead_letter")
    send_raw(settings, payloads, key=b"one-partition")
    running = RunningWorker(settings, Backends.open(settings))
    wait_for(lambda: retries("dead_letter") >= before + 2, 60, "the refused dead letters to be retried")
    assert running.thread.is_alive() and running.failure is None
    log = wiring.event_log(settings)
    assert log.committed(settings.ingest.group, settings.topics.feature_updates) == {}  # batch not finished

    _set_topic_max_message_bytes(bootstrap, settings.topics.dead_letter, 1_000_000)
    wait_for_commits(settings, 60)
    running.close()
    log.close()
    letters = dead_letters(settings, len(bad))
    assert {r.value for r in letters} == set(bad)  # each at least once; a resend may repeat one, never drop one
    assert all(reason_of(r)["vahini.reason"] == "undecodable" for r in letters)
    assert stored_clicks(settings, ["good"]) == {"good": 7}


@pytest.mark.real_service
def test_a_commit_the_broker_rejects_is_counted_and_the_next_commit_raises(request, unique):
    """Commits are asynchronous: the broker's refusal arrives with a later poll. From then
    on commits are synchronous and raise StoreUnavailable (the worker retries) until one lands."""
    from vahini.settings import Settings

    log = wiring.event_log(Settings(event_log=f"kafka://{request.getfixturevalue('kafka_bootstrap')}",
                                    kafka_session_timeout_ms=6000))
    topic, unknown = f"commit-{unique}", (f"no-such-topic-{unique}", 0)
    log.create_topic(topic, 1)
    consumer = log.consumer(f"g-{unique}", [topic])
    consumer.poll_batch(10, 3.0)
    errors = lambda: REGISTRY.get_sample_value("vahini_commit_failures_total", {"kind": "error"}) or 0  # noqa: E731
    before = errors()
    consumer.commit({unknown: 1})
    wait_for(lambda: consumer.poll_batch(10, 0.1) == [] and errors() == before + 1, 30, "the refusal to arrive")
    with pytest.raises(StoreUnavailable) as info:
        consumer.commit({unknown: 1})
    assert info.value.retriable and "Unknown topic or partition" in str(info.value)
    assert errors() == before + 2
    consumer.commit({(topic, 0): 0})  # the consumer is still usable
    assert log.committed(f"g-{unique}", topic) == {0: 0}
    consumer.close()
    log.close()
