"""The Redis adapters' own packing (vahini.adapters.redis_wire) against a real redis-server:
what redis-py's execute path did for them, it must still do."""

import threading

import pytest
import redis

from tests.faults import PrivateRedis
from vahini.adapters.redis_wire import Wire
from vahini.adapters.redis_hot_tier import RedisHotTier
from vahini.ports.hot_tier import version_header

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
