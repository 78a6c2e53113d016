"""vahini.adapters.redis_wire packs commands itself and drives redis-py's connections
directly, through parts of redis-py that are not its public API. Without a server,
each of them is checked here by name, and the version it was written for is pinned
(pyproject.toml). The behaviour is checked against a real server in test_redis_wire.py."""

import inspect
from importlib.metadata import version

import redis

PINNED = "8.2.0"


def test_redis_py_is_the_version_wire_was_written_for():
    assert version("redis") == PINNED, "re-check vahini.adapters.redis_wire before moving the pin"


def test_the_parts_of_redis_py_that_wire_uses_are_still_there():
    client = redis.Redis.from_url("redis://127.0.0.1:1/0")  # never connected
    pool = client.connection_pool
    assert isinstance(getattr(pool, "connection_kwargs", None), dict), "ConnectionPool.connection_kwargs"
    connection_class = getattr(pool, "connection_class", None)
    assert connection_class is not None, "ConnectionPool.connection_class"
    sending = inspect.signature(connection_class.send_packed_command)
    assert "check_health" in sending.parameters, "Connection.send_packed_command(command, check_health)"
    for name in ("read_response", "disconnect"):
        assert callable(getattr(connection_class, name, None)), f"Connection.{name}"
    script = client.register_script("return 1")
    assert isinstance(script.sha, str) and script.script == "return 1", "Script.sha and Script.script"
    assert issubclass(redis.exceptions.NoScriptError, redis.RedisError), "redis.exceptions.NoScriptError"
