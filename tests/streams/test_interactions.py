"""The interaction worker on the embedded stack and on Kafka + Cassandra + Redis:
sessions load the hot tier, interactions land hot or cold, END and inactivity
flush and evict, and offsets never pass an interaction held only in the hot tier."""

from __future__ import annotations

import time

import pytest

from vahini import wiring
from vahini.ports.interaction_store import HistoryQuery
from tests.conftest_backends import STACKS
from tests.processes_helpers import wait_for
from tests.streams.interaction_helpers import Reader, RunningInteractionWorker, interaction_settings, producer


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return interaction_settings(request.param, request, tmp_path, unique)


def now_ms() -> int:
    return int(time.time() * 1000)


def committed(settings) -> dict[int, int]:
    log = wiring.event_log(settings)
    try:
        return log.committed(settings.interactions.group, settings.topics.interactions)
    finally:
        log.close()


def test_a_session_is_served_hot_then_flushed_to_cold_at_end(settings):
    t = now_ms() - 60_000
    p = producer(settings)
    p.interaction("old-1", "alice", "p1", "CLICK", t - 5000)  # before any session: straight to cold
    p.session_event("alice", "s1", "START", t)
    for i in range(5):
        p.interaction(f"a-{i}", "alice", f"p{i}", "CLICK", t + i, category_id="c1")
    p.interaction("a-order", "alice", "p3", "ORDER", t + 10)
    p.flush()
    worker, reader = RunningInteractionWorker(settings), Reader(settings)
    expected = ["a-order", "a-4", "a-3", "a-2", "a-1", "a-0", "old-1"]
    wait_for(lambda: reader.ids("alice") == expected, 30, "the session's interactions to be readable")
    assert reader.history("alice").source == "hot"
    assert [i.event_id for i in reader.cold.read(HistoryQuery("alice", limit=100))] == ["old-1"]
    assert worker.stats.cold_writes == 1  # only the pre-session click so far

    p.session_event("alice", "s1", "END", t + 20)
    p.flush()
    wait_for(lambda: reader.history("alice").source == "cold", 30, "the session to be flushed and evicted")
    assert reader.ids("alice") == expected
    assert worker.stats.cold_writes == 2  # the flush: one write for the user's time bucket, clicks and order together
    assert reader.history("alice", types=("ORDER",)).interactions[0].product_id == "p3"
    worker.close()
    reader.close()


def test_an_idle_session_is_flushed_and_evicted_after_the_inactivity_timeout(settings):
    t = now_ms() - 60_000
    p = producer(settings)
    p.session_event("bob", "s1", "START", t)
    p.interaction("b-0", "bob", "p0", "WISHLIST", t + 1)
    p.flush()
    worker, reader = RunningInteractionWorker(settings), Reader(settings)
    wait_for(lambda: reader.history("bob").source == "hot" and reader.ids("bob") == ["b-0"], 30, "bob hot")
    seen_hot_at = time.monotonic()
    wait_for(lambda: reader.history("bob").source == "cold", 30, "bob flushed after inactivity")
    idle_for = time.monotonic() - seen_hot_at
    assert idle_for >= settings.interactions.inactivity_timeout_s - 1.0  # not before the timeout
    assert reader.ids("bob") == ["b-0"]
    worker.close()
    reader.close()


def test_out_of_order_events_are_handled_not_dropped(settings):
    t = now_ms() - 60_000
    p = producer(settings)
    p.session_event("carol", "s0", "END", t - 100)     # an END for a session never started
    p.interaction("c-early", "carol", "p1", "CLICK", t + 5)  # before its START, in log order
    p.session_event("carol", "s1", "START", t)
    p.interaction("c-1", "carol", "p2", "CLICK", t + 6)
    p.session_event("carol", "s1", "START", t + 7)     # a duplicate START: no reload
    p.flush()
    worker, reader = RunningInteractionWorker(settings), Reader(settings)
    wait_for(lambda: reader.ids("carol") == ["c-1", "c-early"], 30, "both interactions, hot")
    assert reader.history("carol").source == "hot"
    assert worker.stats.sessions_started == 1
    worker.close()
    reader.close()


def test_offsets_are_never_committed_past_an_interaction_held_only_in_the_hot_tier(settings):
    t = now_ms() - 60_000
    p = producer(settings)
    p.session_event("dave", "s1", "START", t)  # offset 0 of dave's partition
    p.interaction("d-0", "dave", "p0", "CLICK", t + 1)  # offset 1: dirty while the session is open
    p.interaction("d-1", "dave", "p1", "CLICK", t + 2)
    p.flush()
    worker, reader = RunningInteractionWorker(settings), Reader(settings)
    wait_for(lambda: reader.ids("dave") == ["d-1", "d-0"], 30, "dave's clicks, hot")
    wait_for(lambda: sum(committed(settings).values()) >= 1, 30, "a commit")
    assert max(committed(settings).values()) == 1  # the START is done; d-0 is not durable yet
    p.session_event("dave", "s1", "END", t + 3)
    p.flush()
    wait_for(lambda: max(committed(settings).values()) == 4, 30, "the commit to pass the flushed session")
    worker.close()
    reader.close()


def test_bad_events_are_dead_lettered_and_the_worker_keeps_going(settings):
    from vahini.streams.dead_letter import reason_of
    from tests.streams.helpers import CODEC, dead_letters
    from vahini.codecs.avro import FEATURE_UPDATE, INTERACTION

    log = wiring.event_log(settings)
    log.create_topic(settings.topics.interactions, settings.topics.partitions)
    out = log.producer()
    t = now_ms()
    bad = {
        "undecodable": b"junk",
        "wrong_event_type": CODEC.encode(FEATURE_UPDATE, {"entity": "user", "keys": {"user_id": "x"}, "group": "g",
                                                          "values": {}, "event_time_ms": t, "producer_id": "p"}),
        "missing_key": CODEC.encode(INTERACTION, {"event_id": "e", "user_id": "", "product_id": "p",
                                                  "category_id": None, "type": "CLICK", "event_time_ms": t,
                                                  "attributes": {}}),
        "too_large": CODEC.encode(INTERACTION, {"event_id": "e" * 300, "user_id": "erin", "product_id": "p",
                                                "category_id": None, "type": "CLICK", "event_time_ms": t,
                                                "attributes": {}}),
    }
    for value in bad.values():
        out.send(settings.topics.interactions, value, key=b"erin")
    out.flush()
    log.close()
    p = producer(settings)
    p.interaction("e-ok", "erin", "p1", "CLICK", t - 1000)
    p.flush()
    worker, reader = RunningInteractionWorker(settings), Reader(settings)
    wait_for(lambda: reader.ids("erin") == ["e-ok"], 30, "the good interaction")
    letters = dead_letters(settings, len(bad))
    assert {reason_of(r)["vahini.reason"]: r.value for r in letters} == bad
    worker.close()
    reader.close()
