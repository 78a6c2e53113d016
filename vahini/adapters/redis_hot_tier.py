"""Hot tier on Redis or Dragonfly (same protocol) through redis-py with hiredis.

Timeouts are short on purpose: a cache that answers late is worse than no cache,
so a hung server costs one timeout, after which the circuit breaker
(`vahini.circuit`) bypasses it."""

from __future__ import annotations

from functools import partial
from typing import Callable, Mapping, Sequence

import redis

from vahini.adapters.redis_wire import wire_for
from vahini.errors import StoreUnavailable
from vahini.ports.hot_tier import VERSION_DIGITS

# KEYS = keys, ARGV = [ttl_ms, value1, value2, ...]. Versions are compared as
# numbers (they fit a double exactly below 2^53), the tag byte as a byte: no locale.
_SET_IF_NEWER = f"""
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 1]
  local cur = redis.call('GET', key)
  local write = not cur
  if cur then
    local cv, nv = tonumber(string.sub(cur, 1, {VERSION_DIGITS})), tonumber(string.sub(new, 1, {VERSION_DIGITS}))
    write = nv > cv or (nv == cv and string.byte(new, {VERSION_DIGITS + 1}) > string.byte(cur, {VERSION_DIGITS + 1}))
  end
  if write then redis.call('SET', key, new, 'PX', ttl) end
end
return 0
"""


class RedisHotTier:
    def __init__(self, url: str, timeout_s: float = 2.0, **options):
        """`options`: credentials and TLS files for redis.Redis.from_url (username, password, ssl_*)."""
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **options)
        self._set_if_newer = self._redis.register_script(_SET_IF_NEWER)
        self._wire = wire_for(self._redis)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.start_get_many(keys)()

    def start_get_many(self, keys: Sequence[str]) -> Callable[[], list[bytes | None]]:
        if not keys:
            return list
        try:
            replies = self._wire.send([("MGET", *keys)])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis MGET failed: {exc}") from exc
        return partial(_first_reply, replies)

    def set_many(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        if not items:
            return
        ttl_ms = max(1, int(ttl_s * 1000))
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, value, px=ttl_ms)
            pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis SET failed: {exc}") from exc

    def set_if_newer(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        if not items:
            return
        try:
            self._wire.run_script(self._set_if_newer, list(items), [max(1, int(ttl_s * 1000)), *items.values()])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis conditional SET failed: {exc}") from exc

    def delete_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            self._redis.unlink(*keys)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis UNLINK failed: {exc}") from exc

    def close(self) -> None:
        self._wire.close()
        self._redis.close()


def _first_reply(replies: Callable[[], list]) -> list[bytes | None]:
    try:
        return replies()[0]
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis MGET failed: {exc}") from exc
