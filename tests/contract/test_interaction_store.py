"""The interaction store's two ports, on every engine: SQLite and Cassandra for the
cold tier, SQLite and Redis for the hot tier."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from vahini.ports.interaction_store import HistoryQuery, OpenSession, StoredInteraction

DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def clicks(user: str, n: int, start_ms: int, step_ms: int = 1000, type_: str = "CLICK") -> list[StoredInteraction]:
    return [StoredInteraction(f"{user}-{type_}-{i}", user, f"p{i}", f"c{i % 3}", type_, start_ms + i * step_ms,
                              {"position": str(i)}) for i in range(n)]


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


# -- cold tier ---------------------------------------------------------------------
def test_cold_reads_newest_first_by_type_and_limit_and_keeps_every_field(cold_interactions):
    u, t = user(), now_ms() - 3_600_000
    items = clicks(u, 5, t) + clicks(u, 2, t + 500, type_="ORDER")
    cold_interactions.write(items)
    got = cold_interactions.read(HistoryQuery(u, ("CLICK",), 3))
    assert [i.event_id for i in got] == [f"{u}-CLICK-4", f"{u}-CLICK-3", f"{u}-CLICK-2"]
    assert got[0] == items[4]  # product, category, time and attributes round-trip
    both = cold_interactions.read(HistoryQuery(u, ("CLICK", "ORDER"), 100))
    assert [i.event_time_ms for i in both] == sorted((i.event_time_ms for i in items), reverse=True)


def test_cold_time_range_spans_buckets_and_is_half_open(cold_interactions):
    u, t = user(), now_ms() - 10 * DAY_MS
    items = clicks(u, 8, t, step_ms=DAY_MS)  # one a day: several one-day buckets on Cassandra
    cold_interactions.write(items)
    got = cold_interactions.read(HistoryQuery(u, ("CLICK",), 100, since_ms=t + 2 * DAY_MS, until_ms=t + 6 * DAY_MS))
    assert [i.event_id for i in got] == [f"{u}-CLICK-{k}" for k in (5, 4, 3, 2)]
    assert len(cold_interactions.read(HistoryQuery(u, ("CLICK",), 3))) == 3


def test_cold_replays_never_duplicate_an_event(cold_interactions):
    u, t = user(), now_ms() - 60_000
    items = clicks(u, 4, t)
    for _ in range(3):
        cold_interactions.write(items)
    cold_interactions.write(list(reversed(items[1:3])))
    assert [i.event_id for i in cold_interactions.read(HistoryQuery(u, limit=100))] == \
        [f"{u}-CLICK-{k}" for k in (3, 2, 1, 0)]


def test_cold_read_many_answers_each_query_as_read_does(cold_interactions):
    """Many users at once (on Cassandra several per request), their histories across time
    buckets, several types, a query repeated, and users with nothing."""
    users, t = [user() for _ in range(60)], now_ms() - 50 * DAY_MS
    items = []
    for n, u in enumerate(users[:50]):
        items += clicks(u, 1 + n % 7, t, step_ms=DAY_MS * 7) + clicks(u, n % 3, t + 1000, type_="ORDER")
    cold_interactions.write(items)
    queries = [HistoryQuery(u, ("CLICK",), 4) for u in users] + [HistoryQuery(u, ("ORDER", "CLICK"), 5)
                                                                 for u in users[::7]] + [HistoryQuery(users[3])]
    together = cold_interactions.read_many(queries)
    assert together == [cold_interactions.read(q) for q in queries]
    assert sum(map(len, together)) > 150 and together[-1] and not together[59]


def test_cold_writes_one_mutation_per_user_and_bucket(cold_interactions):
    u, v, t = user(), user(), now_ms() - 60_000
    assert cold_interactions.write(clicks(u, 50, t, step_ms=10) + clicks(u, 3, t, type_="ORDER") + clicks(v, 2, t)) == 2


def test_cold_trim_keeps_the_newest_per_type_only(cold_interactions):
    u, t = user(), now_ms() - 5 * DAY_MS
    cold_interactions.write(clicks(u, 10, t, step_ms=DAY_MS // 3) + clicks(u, 2, t, type_="ORDER"))
    cold_interactions.trim(u, "CLICK", 4)
    assert [i.event_id for i in cold_interactions.read(HistoryQuery(u, ("CLICK",), 100))] == \
        [f"{u}-CLICK-{k}" for k in (9, 8, 7, 6)]
    assert len(cold_interactions.read(HistoryQuery(u, ("ORDER",), 100))) == 2


def test_cold_retention_hides_and_skips_old_events(cold_interactions):
    u = user()
    old = clicks(u, 1, now_ms() - 200 * DAY_MS)  # beyond the default 180 days
    cold_interactions.write(old + clicks(u, 1, now_ms() - 1000, type_="ORDER"))
    assert [i.type for i in cold_interactions.read(HistoryQuery(u, limit=10))] == ["ORDER"]


# -- hot tier ----------------------------------------------------------------------
def test_hot_session_lifecycle_load_append_flush_evict(interaction_hot_tier):
    hot, u, t = interaction_hot_tier, user(), now_ms()
    assert hot.session(u) is None and hot.read(HistoryQuery(u)) is None
    assert hot.append(u, clicks(u, 1, t), t, 3) is False  # no open session: nothing held
    history = clicks(u, 3, t - 10_000)
    hot.load(OpenSession(u, "s1", 3, t), history)
    assert hot.session(u) == OpenSession(u, "s1", 3, t)
    new = [StoredInteraction(f"{u}-new", u, "p9", None, "ORDER", t + 5, {})]
    assert hot.append(u, new, t + 10, 3) is True
    assert [i.event_id for i in hot.read(HistoryQuery(u))] == [f"{u}-new", *[h.event_id for h in reversed(history)]]
    assert hot.dirty([u], hot.generation()) == {u: new} and hot.session(u).last_seen_ms == t + 10
    assert [s.user_id for s in hot.sessions(3)] == [u] and hot.sessions(4) == []
    assert hot.evict([u]) == set()  # something is dirty: never dropped
    hot.mark_flushed({u: [f"{u}-new"]})
    assert hot.dirty([u], hot.generation()) == {} and hot.evict([u]) == {u}
    assert hot.session(u) is None and hot.sessions(3) == [] and hot.read(HistoryQuery(u)) is None


def test_hot_appends_are_idempotent_and_concurrent_writers_lose_nothing(interaction_hot_tier):
    hot, u, t = interaction_hot_tier, user(), now_ms()
    hot.load(OpenSession(u, "s", 0, t), [])
    batches = [clicks(u, 50, t + w * 1000)[w::4] for w in range(4)]

    def write(items):
        for item in items:
            hot.append(u, [item], t, 0)
    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    hot.append(u, batches[0], t, 0)  # a replay
    expected = {i.event_id for b in batches for i in b}
    assert {i.event_id for i in hot.dirty([u], hot.generation())[u]} == expected
    assert len(hot.read(HistoryQuery(u, limit=1000))) == len(expected)


def test_hot_reads_filter_by_type_time_and_limit(interaction_hot_tier):
    hot, u, t = interaction_hot_tier, user(), now_ms()
    hot.load(OpenSession(u, "s", 0, t), clicks(u, 6, t - 6000) + clicks(u, 2, t - 6000, type_="WISHLIST"))
    got = hot.read(HistoryQuery(u, ("CLICK",), 10, since_ms=t - 5000, until_ms=t - 2000))
    assert [i.event_id for i in got] == [f"{u}-CLICK-{k}" for k in (3, 2, 1)]
    assert [i.type for i in hot.read(HistoryQuery(u, ("WISHLIST",), 1))] == ["WISHLIST"]


def test_hot_reads_in_two_steps_answer_as_one_and_see_appends_made_before_the_send(interaction_hot_tier):
    hot, u, t = interaction_hot_tier, user(), now_ms()
    hot.load(OpenSession(u, "s", 0, t), clicks(u, 3, t - 6000))
    late = StoredInteraction(f"{u}-CLICK-3", u, "p3", "c0", "CLICK", t - 1000, {})
    assert hot.append(u, [late], t, 0)  # appended since the load: read with the loaded history
    query = HistoryQuery(u, ("CLICK",), 10)
    pending, none_pending = hot.start_read(query), hot.start_read(HistoryQuery(user(), ("CLICK",), 10))
    other = user()  # other calls may run while the reads are pending
    hot.load(OpenSession(other, "s", 0, t), clicks(other, 1, t))
    assert [i.event_id for i in pending()] == [f"{u}-CLICK-{k}" for k in (3, 2, 1, 0)] == \
        [i.event_id for i in hot.read(query)]
    assert none_pending() is None


def test_hot_trim_keeps_dirty_interactions(interaction_hot_tier):
    hot, u, t = interaction_hot_tier, user(), now_ms()
    hot.load(OpenSession(u, "s", 0, t), clicks(u, 5, t - 60_000))
    old_dirty = StoredInteraction(f"{u}-late", u, "p", None, "CLICK", t - 120_000, {})
    hot.append(u, [old_dirty], t, 0)
    hot.trim(u, "CLICK", 2)
    assert [i.event_id for i in hot.read(HistoryQuery(u, ("CLICK",), 10))] == \
        [f"{u}-CLICK-4", f"{u}-CLICK-3", f"{u}-late"]


def test_hot_generation_is_stable_until_the_data_is_lost(interaction_hot_tier):
    assert interaction_hot_tier.generation() == interaction_hot_tier.generation() != ""


def test_dirty_reads_refuse_a_tier_of_another_generation(interaction_hot_tier):
    from vahini.errors import HotTierLost

    hot, u, t = interaction_hot_tier, user(), now_ms()
    hot.load(OpenSession(u, "s", 0, t), [])
    hot.append(u, clicks(u, 1, t), t, 0)
    with pytest.raises(HotTierLost):  # an empty answer must never pass for "nothing to flush"
        hot.dirty([u], "a-generation-this-tier-never-had")
    assert len(hot.dirty([u], hot.generation())[u]) == 1


def test_hot_append_many_appends_to_open_sessions_only(interaction_hot_tier):
    hot, t = interaction_hot_tier, now_ms()
    a, b, c = user(), user(), user()
    hot.load(OpenSession(a, "s", 1, t), [])
    hot.load(OpenSession(c, "s", 2, t), [])
    appended = hot.append_many({a: (1, clicks(a, 3, t)), b: (1, clicks(b, 2, t)), c: (2, clicks(c, 1, t))}, t + 5)
    assert appended == {a, c}
    dirty = hot.dirty([a, b, c], hot.generation())
    assert len(dirty[a]) == 3 and b not in dirty and hot.session(b) is None and len(dirty[c]) == 1
    assert hot.session(c).last_seen_ms == t + 5


def test_hot_batch_operations_cover_many_users_at_once(interaction_hot_tier):
    hot, t = interaction_hot_tier, now_ms()
    users = [user() for _ in range(5)]
    for u in users:
        hot.load(OpenSession(u, "s", 7, t), [])
    hot.append_many({u: (7, clicks(u, 2, t)) for u in users}, t)
    dirty = hot.dirty(users, hot.generation())
    assert {u: len(items) for u, items in dirty.items()} == {u: 2 for u in users}
    hot.mark_flushed({u: [i.event_id for i in items] for u, items in dirty.items() if u != users[0]})
    assert hot.evict(users) == set(users[1:])  # users[0] still has dirty interactions
    assert [s.user_id for s in hot.sessions(7)] == [users[0]]
