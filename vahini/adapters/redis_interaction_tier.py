"""Interaction hot tier on Redis or Dragonfly.

Per user, under one hash tag so a user's keys live on one shard:
  {ns}:{user}:s          HASH  session_id, partition, last_seen_ms
  {ns}:{user}:t:CLICK    ZSET  event_id scored by event time (one per type)
  {ns}:{user}:d          HASH  event_id -> the interaction (JSON)
  {ns}:{user}:dirty      SET   event ids not yet in the cold tier
and per partition {ns}:open:{p}, a ZSET of users with an open session scored by
last seen, so a worker that takes over a partition finds its sessions.

Appends are ZADD/HSET/SADD in one MULTI: atomic, idempotent, and never a
read-modify-write, so two writers cannot lose each other's appends. This tier
holds data that is not yet durable: run Redis with `maxmemory-policy noeviction`.
"""

from __future__ import annotations

import uuid
from typing import Sequence

import redis

from vahini.errors import StoreUnavailable
from vahini.ports.interaction_store import TYPES, HistoryQuery, OpenSession, StoredInteraction, newest_first

# Evict only when nothing is dirty, in one step: a late append is never dropped.
_EVICT = """
if redis.call('SCARD', KEYS[1]) > 0 then return 0 end
for i = 2, #KEYS - 1 do redis.call('UNLINK', KEYS[i]) end
redis.call('ZREM', KEYS[#KEYS], ARGV[1])
return 1
"""


# KEYS: session, data, dirty, one zset per type (in TYPES order), the partition's open index.
# ARGV: now_ms, user, then per item: event id, type index (1-based), event time, body.
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = #KEYS
for i = 3, #ARGV, 4 do
  redis.call('ZADD', KEYS[3 + tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 3])
  redis.call('SADD', KEYS[3], ARGV[i])
end
redis.call('HSET', KEYS[1], 'last_seen_ms', ARGV[1])
redis.call('ZADD', KEYS[n], ARGV[1], ARGV[2])
return 1
"""


class RedisInteractionTier:
    def __init__(self, url: str, namespace: str = "ih", timeout_s: float = 2.0):
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._ns = namespace
        self._evict = self._redis.register_script(_EVICT)
        self._append = self._redis.register_script(_APPEND)

    # -- keys ------------------------------------------------------------------
    def _user(self, user_id: str, part: str) -> str:
        return f"{self._ns}:{{{user_id}}}:{part}"

    def _open(self, partition: int) -> str:
        return f"{self._ns}:open:{partition}"

    def _call(self, what: str, fn):
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis interaction tier: {what} failed: {exc}") from exc

    # -- sessions --------------------------------------------------------------
    def session(self, user_id: str) -> OpenSession | None:
        fields = self._call("HGETALL", lambda: self._redis.hgetall(self._user(user_id, "s")))
        if not fields:
            return None
        return OpenSession(user_id, fields[b"session_id"].decode(), int(fields[b"partition"]),
                           int(fields[b"last_seen_ms"]))

    def load(self, session: OpenSession, history: Sequence[StoredInteraction]) -> None:
        u = session.user_id
        pipe = self._redis.pipeline(transaction=True)
        self._add(pipe, u, history)
        pipe.hset(self._user(u, "s"), mapping={"session_id": session.session_id, "partition": session.partition,
                                               "last_seen_ms": session.last_seen_ms})
        pipe.zadd(self._open(session.partition), {u: session.last_seen_ms})
        self._call("load", pipe.execute)

    def _add(self, pipe, user_id: str, items: Sequence[StoredInteraction]) -> None:
        by_type: dict[str, dict[str, int]] = {}
        for i in items:
            by_type.setdefault(i.type, {})[i.event_id] = i.event_time_ms
        for type_, members in by_type.items():
            pipe.zadd(self._user(user_id, f"t:{type_}"), members)
        if items:
            pipe.hset(self._user(user_id, "d"), mapping={i.event_id: i.to_json() for i in items})

    def append(self, user_id: str, items: Sequence[StoredInteraction], now_ms: int, partition: int) -> bool:
        keys = [self._user(user_id, "s"), self._user(user_id, "d"), self._user(user_id, "dirty"),
                *[self._user(user_id, f"t:{t}") for t in TYPES], self._open(partition)]
        args: list = [now_ms, user_id]
        for i in items:
            args += [i.event_id, TYPES.index(i.type) + 1, i.event_time_ms, i.to_json()]
        return bool(self._call("append", lambda: self._append(keys=keys, args=args)))

    def touch(self, user_id: str, now_ms: int, partition: int) -> bool:
        return self.append(user_id, [], now_ms, partition)

    def dirty(self, user_id: str) -> list[StoredInteraction]:
        ids = self._call("SMEMBERS", lambda: self._redis.smembers(self._user(user_id, "dirty")))
        if not ids:
            return []
        blobs = self._call("HMGET", lambda: self._redis.hmget(self._user(user_id, "d"), list(ids)))
        return [StoredInteraction.from_json(b) for b in blobs if b is not None]

    def mark_flushed(self, user_id: str, event_ids: Sequence[str]) -> None:
        if event_ids:
            self._call("SREM", lambda: self._redis.srem(self._user(user_id, "dirty"), *event_ids))

    def evict(self, user_id: str) -> bool:
        session = self.session(user_id)
        if session is None:
            return True
        keys = [self._user(user_id, "dirty"), self._user(user_id, "s"), self._user(user_id, "d"),
                *[self._user(user_id, f"t:{t}") for t in TYPES], self._open(session.partition)]
        return bool(self._call("evict", lambda: self._evict(keys=keys, args=[user_id])))

    def sessions(self, partition: int) -> list[OpenSession]:
        users = self._call("ZRANGE", lambda: self._redis.zrange(self._open(partition), 0, -1))
        found = [self.session(u.decode()) for u in users]
        return [s for s in found if s is not None]

    # -- reads -----------------------------------------------------------------
    def read(self, query: HistoryQuery) -> list[StoredInteraction] | None:
        u = query.user_id
        low = "-inf" if query.since_ms is None else query.since_ms
        high = "+inf" if query.until_ms is None else f"({query.until_ms}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(self._user(u, "s"))
        for t in query.types:
            pipe.zrevrangebyscore(self._user(u, f"t:{t}"), high, low, start=0, num=query.limit)
        open_, *per_type = self._call("read", pipe.execute)
        if not open_:
            return None
        ids = [i for ids in per_type for i in ids]
        if not ids:
            return []
        blobs = self._call("HMGET", lambda: self._redis.hmget(self._user(u, "d"), ids))
        return newest_first([StoredInteraction.from_json(b) for b in blobs if b is not None], query.limit)

    def trim(self, user_id: str, type_: str, keep_newest: int) -> None:
        key = self._user(user_id, f"t:{type_}")
        ids = self._call("ZREVRANGE", lambda: self._redis.zrevrange(key, keep_newest, -1))
        dirty = self._call("SMEMBERS", lambda: self._redis.smembers(self._user(user_id, "dirty")))
        drop = [i for i in ids if i not in dirty]
        if drop:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zrem(key, *drop)
            pipe.hdel(self._user(user_id, "d"), *drop)
            self._call("trim", pipe.execute)

    def generation(self) -> str:
        key = f"{self._ns}:generation"
        self._call("SET NX", lambda: self._redis.set(key, uuid.uuid4().hex, nx=True))
        value = self._call("GET", lambda: self._redis.get(key))
        return value.decode() if value else ""

    def close(self) -> None:
        self._redis.close()
