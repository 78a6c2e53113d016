"""Hot tier on Redis or Dragonfly (same protocol) through redis-py with hiredis."""

from __future__ import annotations

from typing import Mapping, Sequence

import redis

from vahini.errors import StoreUnavailable


class RedisHotTier:
    def __init__(self, url: str, socket_timeout_s: float = 2.0):
        self._redis = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                           socket_connect_timeout=socket_timeout_s)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            return self._redis.mget(keys)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis MGET failed: {exc}") from exc

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

    def delete_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            self._redis.unlink(*keys)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis UNLINK failed: {exc}") from exc

    def close(self) -> None:
        self._redis.close()
