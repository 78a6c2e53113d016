"""Interaction hot tier on Redis or Dragonfly.

Per user, under one hash tag so a user's keys live on one shard:
  {ns}:{user}:s          HASH  session_id, partition, last_seen_ms
  {ns}:{user}:h:CLICK    STRING the history loaded at START, one encoded list per type
  {ns}:{user}:t:CLICK    ZSET  event ids appended since, scored by event time (one per type)
  {ns}:{user}:d          HASH  event_id -> an appended interaction (JSON)
  {ns}:{user}:dirty      SET   event ids not yet in the cold tier
The loaded history is a few strings, not 500 hash fields, so a START makes the
user readable in a handful of commands; reads merge it with what was appended.
and per partition {ns}:open:{p}, a ZSET of users with an open session scored by
last seen, so a worker that takes over a partition finds its sessions.

A read is one script call per user (`_READ`): one round trip and one snapshot,
however much was appended.

Appends are ZADD/HSET/SADD in one MULTI: atomic, idempotent, and never a
read-modify-write, so two writers cannot lose each other's appends. This tier
holds data that is not yet durable: run Redis with `maxmemory-policy noeviction`.
"""

from __future__ import annotations

import uuid
from typing import Callable, Mapping, Sequence

import msgspec
import redis

from vahini.adapters.redis_wire import wire_for
from vahini.errors import HotTierLost, StoreUnavailable
from vahini.ports.interaction_store import (TYPES, HistoryQuery, OpenSession, StoredInteraction, decode_many,
                                            newest_first)

_LIST_ENCODE = msgspec.json.Encoder().encode
_TYPE_NUMBER = {t: n for n, t in enumerate(TYPES, 1)}  # an appended item's type, as _APPEND's ARGV holds it

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


# One user's history in one step: a snapshot, and one round trip however much was appended.
# KEYS: session, data, then per type its loaded history and its appended ids.
# ARGV: highest score, lowest score, limit ('' for every appended id).
# Returns false without a session; else per type the loaded history and the appended
# bodies, newest first (HMGET in chunks: unpack has a stack limit).
_READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local out = {}
for i = 3, #KEYS, 2 do
  local ids
  if ARGV[3] == '' then
    ids = redis.call('ZREVRANGE', KEYS[i + 1], 0, -1)
  else
    ids = redis.call('ZREVRANGEBYSCORE', KEYS[i + 1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
  end
  local bodies = {}
  for j = 1, #ids, 1000 do
    local part = redis.call('HMGET', KEYS[2], unpack(ids, j, math.min(j + 999, #ids)))
    for k = 1, #part do bodies[#bodies + 1] = part[k] end
  end
  out[#out + 1] = redis.call('GET', KEYS[i])
  out[#out + 1] = bodies
end
return out
"""


def _decode_bodies(bodies: Sequence[bytes | None]) -> list[StoredInteraction]:
    """Appended interactions (each a JSON array) in one decoder call, as one JSON list."""
    return decode_many(b"[" + b",".join([b for b in bodies if b is not None]) + b"]")


def _encode_list(items: Sequence[StoredInteraction]) -> bytes:
    return _LIST_ENCODE(list(items))


class RedisInteractionTier:
    def __init__(self, url: str, namespace: str = "ih", timeout_s: float = 2.0, **options):
        """`options`: credentials and TLS files for redis.Redis.from_url (username, password, ssl_*)."""
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **options)
        self._ns = namespace
        self._evict = self._redis.register_script(_EVICT)
        self._append = self._redis.register_script(_APPEND)
        self._read = self._redis.register_script(_READ)
        self._wire = wire_for(self._redis)

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
        self.load_many([(session, history)])

    def load_many(self, loads: Sequence[tuple[OpenSession, Sequence[StoredInteraction]]]) -> None:
        """Each session in a MULTI of its own (its keys share a hash slot), all in one round trip."""
        commands: list[tuple] = []
        for session, history in loads:
            u = session.user_id
            by_type: dict[str, list[StoredInteraction]] = {t: [] for t in TYPES}
            for i in history:
                by_type[i.type].append(i)
            commands.append(("MULTI",))
            commands += [("SET", self._user(u, f"h:{t}"), _encode_list(items)) for t, items in by_type.items()]
            commands.append(("HSET", self._user(u, "s"), "session_id", session.session_id,
                             "partition", session.partition, "last_seen_ms", session.last_seen_ms))
            commands.append(("ZADD", self._open(session.partition), session.last_seen_ms, u))
            commands.append(("EXEC",))
        replies = self._call("load", lambda: self._wire.call(commands))
        failed = [r for reply in replies if isinstance(reply, list) for r in reply if isinstance(r, Exception)]
        if failed:
            raise StoreUnavailable(f"Redis interaction tier: load failed: {failed[0]}")

    def append(self, user_id: str, items: Sequence[StoredInteraction], now_ms: int, partition: int) -> bool:
        return user_id in self.append_many({user_id: (partition, items)}, now_ms)

    def append_many(self, appends: Mapping[str, tuple[int, Sequence[StoredInteraction]]], now_ms: int) -> set[str]:
        """One script per user (each atomic), all in one round trip."""
        calls = []
        for user_id, (partition, items) in appends.items():
            keys = [self._user(user_id, "s"), self._user(user_id, "d"), self._user(user_id, "dirty"),
                    *[self._user(user_id, f"t:{t}") for t in TYPES], self._open(partition)]
            args: list = [now_ms, user_id]
            for i in items:
                args += [i.event_id, _TYPE_NUMBER[i.type], i.event_time_ms, i.to_json()]
            calls.append((keys, args))
        if not calls:
            return set()
        results = self._call("append", lambda: self._wire.send_script(self._append, calls)())
        return {user for user, appended in zip(appends, results) if appended}

    def touch(self, user_id: str, now_ms: int, partition: int) -> bool:
        return self.append(user_id, [], now_ms, partition)

    def dirty(self, users: Sequence[str], generation: str) -> dict[str, list[StoredInteraction]]:
        current, *members = self._transaction("SMEMBERS", [("GET", self._generation_key()),
                                                           *[("SMEMBERS", self._user(u, "dirty")) for u in users]])
        self._same_generation(current, generation)
        ids = {u: m for u, m in zip(users, members) if m}
        if not ids:
            return {}
        current, *bodies = self._transaction("HMGET", [("GET", self._generation_key()),
                                                       *[("HMGET", self._user(u, "d"), *m) for u, m in ids.items()]])
        self._same_generation(current, generation)
        return {u: _decode_bodies(blobs) for u, blobs in zip(ids, bodies)}

    def _transaction(self, what: str, commands: list[tuple]) -> list:
        """The replies of `commands` run in one MULTI/EXEC, in one round trip."""
        replies = self._call(what, lambda: self._wire.call([("MULTI",), *commands, ("EXEC",)]))
        failed = [r for r in replies[-1] if isinstance(r, Exception)]
        if failed:
            raise StoreUnavailable(f"Redis interaction tier: {what} failed: {failed[0]}")
        return replies[-1]

    @staticmethod
    def _same_generation(current: bytes | None, expected: str) -> None:
        if current is None or current.decode() != expected:
            raise HotTierLost(f"the interaction hot tier's generation is {current!r}, not {expected!r}: "
                              f"it lost its data")

    def mark_flushed(self, flushed: Mapping[str, Sequence[str]]) -> None:
        self._call("SREM", lambda: self._wire.call([("SREM", self._user(u, "dirty"), *event_ids)
                                                    for u, event_ids in flushed.items() if event_ids]))

    def evict(self, users: Sequence[str]) -> set[str]:
        partitions = dict(zip(users, self._call("HGET", lambda: self._wire.call(
            [("HGET", self._user(u, "s"), "partition") for u in users]))))
        open_users = [u for u in users if partitions[u] is not None]
        calls = [([self._user(u, "dirty"), self._user(u, "s"), self._user(u, "d"),
                   *[self._user(u, f"t:{t}") for t in TYPES], *[self._user(u, f"h:{t}") for t in TYPES],
                   self._open(int(partitions[u]))], [u]) for u in open_users]
        results = self._call("evict", lambda: self._wire.send_script(self._evict, calls)()) if calls else []
        return {u for u in users if partitions[u] is None} | {u for u, ok in zip(open_users, results) if ok}

    def sessions(self, partition: int) -> list[OpenSession]:
        users = self._call("ZRANGE", lambda: self._redis.zrange(self._open(partition), 0, -1))
        found = [self.session(u.decode()) for u in users]
        return [s for s in found if s is not None]

    # -- reads -----------------------------------------------------------------
    def read(self, query: HistoryQuery) -> list[StoredInteraction] | None:
        return self.start_read(query)()

    def start_read(self, query: HistoryQuery) -> Callable[[], list[StoredInteraction] | None]:
        finish = self._start_held([(query.user_id, query.types, query)])
        return lambda: self._answers([query], finish())[0]

    def read_many(self, queries: Sequence[HistoryQuery]) -> list[list[StoredInteraction] | None]:
        """Every query in one round trip, however many users."""
        return self._answers(queries, self._start_held([(q.user_id, q.types, q) for q in queries])())

    @staticmethod
    def _answers(queries: Sequence[HistoryQuery], held) -> list[list[StoredInteraction] | None]:
        """Each query's answer from what was held. Loaded and appended items are of the
        query's types already (one key per type), and appended ones of its time range."""
        return [None if loaded is None else newest_first(
                    (loaded if q.since_ms is None and q.until_ms is None else [i for i in loaded if q.admits(i)])
                    + appended, q.limit)
                for q, (loaded, appended) in zip(queries, held)]

    def _timers(self, partition: int) -> str:
        return f"{self._ns}:windows:{partition}"

    def schedule(self, due: Mapping[str, tuple[int, int]]) -> None:
        self._call("ZADD", lambda: self._wire.call([("ZADD", self._timers(partition), due_ms, user)
                                                    for user, (partition, due_ms) in due.items()]))

    def take_due(self, partitions: Sequence[int], now_ms: int) -> dict[str, int]:
        due = dict(zip(partitions, self._call("ZRANGEBYSCORE", lambda: self._wire.call(
            [("ZRANGEBYSCORE", self._timers(p), "-inf", now_ms) for p in partitions]))))
        self._call("ZREM", lambda: self._wire.call([("ZREM", self._timers(p), *users)
                                                    for p, users in due.items() if users]))
        return {u.decode(): p for p, users in due.items() for u in users}

    def _held(self, wanted: Sequence[tuple[str, Sequence[str], HistoryQuery | None]]
              ) -> list[tuple[list[StoredInteraction] | None, list[StoredInteraction]]]:
        return self._start_held(wanted)()

    def _start_held(self, wanted: Sequence[tuple[str, Sequence[str], HistoryQuery | None]]
                    ) -> Callable[[], list[tuple[list[StoredInteraction] | None, list[StoredInteraction]]]]:
        """Per (user, types, query or None for everything): (loaded history, appended
        interactions) of those types, or (None, []) without a session, once the returned
        function is called. Each user is one script call, read in one round trip sent at
        once (Wire.send_script), so the Model Proxy overlaps it with its feature reads."""
        calls = [self._read_call(user_id, types, query) for user_id, types, query in wanted]
        pending = self._call("read", lambda: self._wire.send_script(self._read, calls))
        return lambda: self._held_from(self._call("read", pending))

    def _read_call(self, user_id: str, types: Sequence[str], query: HistoryQuery | None) -> tuple[list, tuple]:
        """(keys, args) of _READ for one user."""
        keys = [self._user(user_id, "s"), self._user(user_id, "d")]
        for t in types:
            keys += [self._user(user_id, f"h:{t}"), self._user(user_id, f"t:{t}")]
        if query is None:
            return keys, ("+inf", "-inf", "")
        return keys, ("+inf" if query.until_ms is None else f"({query.until_ms}",
                      "-inf" if query.since_ms is None else query.since_ms, query.limit)

    @staticmethod
    def _held_from(replies: list) -> list[tuple[list[StoredInteraction] | None, list[StoredInteraction]]]:
        out: list = []
        for reply in replies:
            if reply is None:
                out.append((None, []))
                continue
            loaded = [i for blob in reply[0::2] if blob for i in decode_many(blob)]
            out.append((loaded, [i for bodies in reply[1::2] for i in _decode_bodies(bodies)]))
        return out

    def trim(self, user_id: str, type_: str, keep_newest: int) -> None:
        ((loaded, appended),) = self._held([(user_id, (type_,), None)])
        if loaded is None:
            return
        dirty = {d.decode() for d in self._call("SMEMBERS", lambda: self._redis.smembers(self._user(user_id, "dirty")))}
        keep = {i.event_id for i in newest_first(loaded + appended, keep_newest)} | dirty
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._user(user_id, f"h:{type_}"), _encode_list([i for i in loaded if i.event_id in keep]))
        drop = [i.event_id for i in appended if i.event_id not in keep]
        if drop:
            pipe.zrem(self._user(user_id, f"t:{type_}"), *drop)
            pipe.hdel(self._user(user_id, "d"), *drop)
        self._call("trim", pipe.execute)

    def _generation_key(self) -> str:
        return f"{self._ns}:generation"

    def generation(self) -> str:
        key = self._generation_key()
        self._call("SET NX", lambda: self._redis.set(key, uuid.uuid4().hex, nx=True))
        value = self._call("GET", lambda: self._redis.get(key))
        return value.decode() if value else ""

    def close(self) -> None:
        self._wire.close()
        self._redis.close()
