"""The Redis adapters' own packing (vahini.adapters.redis_wire) against a real redis-server:
what redis-py's execute path did for them, it must still do."""

import threading

import pytest
import redis

from tests.faults import PrivateRedis
from vahini.adapters.redis_wire import Wire
from vahini.adapters.redis_hot_tier import RedisHotTier
from vahini.adapters.redis_interaction_tier import RedisInteractionTier
from vahini.ports.hot_tier import version_header
from vahini.ports.interaction_store import HistoryQuery, OpenSession, StoredInteraction

pytestmark = pytest.mark.real_service


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    yield server
    server.stop()


def test_a_restarted_server_is_reached_on_the_next_call_with_its_scripts_reloaded(private_redis):
    tier = RedisHotTier(private_redis.url, timeout_s=2.0)
    tier.set_if_newer({"k": version_header(1, b"V") + b"one"}, ttl_s=30)
    private_redis.restart_empty()  # the pooled connection is dead, and the server has no scripts
    assert tier.get_many(["k"]) == [None]
    tier.set_if_newer({"k": version_header(2, b"V") + b"two"}, ttl_s=30)
    tier.set_if_newer({"k": version_header(1, b"V") + b"older"}, ttl_s=30)
    assert tier.get_many(["k"]) == [version_header(2, b"V") + b"two"]
    tier.close()


def test_an_error_reply_is_raised_and_the_next_call_is_answered_in_order(private_redis):
    client = redis.Redis.from_url(private_redis.url)
    wire = Wire(client)
    client.set("s", "text")
    with pytest.raises(redis.ResponseError):
        wire.call([("GET", "s"), ("INCR", "s"), ("GET", "s")])
    assert wire.call([("SET", "n", 5), ("INCR", "n"), ("MGET", "s", "n", "none")]) == \
        [b"OK", 6, [b"text", b"6", None]]
    wire.close()
    client.close()


def test_after_a_restart_no_stale_idle_connection_is_tried_twice(private_redis):
    client = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    wire = Wire(client)
    blocked = [threading.Thread(target=wire.call, args=([("BLPOP", "nothing", "0.3")],)) for _ in range(3)]
    for t in blocked:  # three calls at once: three connections, idle once they return
        t.start()
    for t in blocked:
        t.join()
    private_redis.restart_empty()
    assert wire.call([("SET", "k", "v"), ("GET", "k")]) == [b"OK", b"v"]
    wire.close()
    client.close()


def test_sent_commands_are_answered_when_read_while_other_calls_run(private_redis):
    client = redis.Redis.from_url(private_redis.url)
    wire = Wire(client)
    client.set("a", "1")
    pending = wire.send([("GET", "a"), ("INCR", "a")])
    assert wire.call([("GET", "a")]) in ([b"1"], [b"2"])  # another connection: the pending one is busy
    assert pending() == [b"1", 2]
    assert wire.call([("GET", "a")]) == [b"2"]
    wire.close()
    client.close()


def test_a_reply_never_read_closes_its_connection_and_leaves_no_stray_answers(private_redis):
    client = redis.Redis.from_url(private_redis.url)
    wire = Wire(client)
    wire.call([("SET", "k", "v")])  # one idle connection
    before = len(client.client_list())
    pending = wire.send([("GET", "k")])  # the idle connection, now with a reply nobody reads
    del pending
    assert wire.call([("SET", "k", "w"), ("GET", "k")]) == [b"OK", b"w"]  # a fresh connection, in step
    assert len(client.client_list()) == before  # the dropped one was closed, the new one counted instead
    wire.close()
    client.close()


def test_a_connection_the_server_dropped_after_the_send_is_retried_on_read(private_redis):
    client = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    wire = Wire(client)
    wire.call([("SET", "k", "v")])
    private_redis.restart_empty()  # the idle connection is dead; its send may still succeed
    pending = wire.send([("SET", "k", "v2"), ("GET", "k")])
    assert pending() == [b"OK", b"v2"]
    wire.close()
    client.close()


def _click(user: str, i: int, t: int) -> StoredInteraction:
    return StoredInteraction(f"{user}-{i}", user, f"p{i}", "c1", "CLICK", t + i, {})


def test_a_history_read_is_one_snapshot_taken_when_it_is_sent(private_redis):
    """Loaded and appended interactions come from one script call sent at once: a user
    flushed and evicted before the answer is read still reads whole, appends included
    (when the appended bodies took a second round trip, they were gone by then)."""
    tier = RedisInteractionTier(private_redis.url, namespace="snap")
    tier.load(OpenSession("u1", "s", 0, 1000), [_click("u1", 0, 1000), _click("u1", 1, 1000)])
    tier.append("u1", [_click("u1", 2, 1000)], 2000, 0)
    query = HistoryQuery("u1", ("CLICK",), 10)
    assert [i.event_id for i in tier.read(query)] == ["u1-2", "u1-1", "u1-0"]  # the script is loaded now
    pending = tier.start_read(query)
    tier.mark_flushed({"u1": ["u1-2"]})
    assert tier.evict(["u1"]) == {"u1"} and tier.read(query) is None
    assert [i.event_id for i in pending()] == ["u1-2", "u1-1", "u1-0"]
    tier.close()


def test_a_history_read_loads_its_script_again_on_a_restarted_server(private_redis):
    tier = RedisInteractionTier(private_redis.url, namespace="restart")
    tier.load(OpenSession("u1", "s", 0, 1000), [_click("u1", 0, 1000)])
    tier.append("u1", [_click("u1", 1, 1000)], 2000, 0)
    query = HistoryQuery("u1", ("CLICK",), 10)
    assert [i.event_id for i in tier.read(query)] == ["u1-1", "u1-0"]
    private_redis.restart_empty()  # no scripts, no sessions, the pooled connections dead
    assert tier.read(query) is None
    tier.load(OpenSession("u1", "s", 0, 3000), [_click("u1", 5, 1000)])
    assert [i.event_id for i in tier.read_many([query, HistoryQuery("u2")])[0]] == ["u1-5"]
    tier.close()
