"""Cold interaction tier on ScyllaDB or Apache Cassandra.

One partition per (user, time bucket), so no partition grows without bound; rows
clustered by type, then newest first by (event time, event id), so an event id is
stored once whatever is replayed, and "the last N of a type" is a slice from the
top of the type's range. Each row carries a TTL that runs out `retention_s`
after its event time.

A flush writes one UNLOGGED batch per partition it touches: a batch confined to
one partition is a single mutation on its replicas, so a session of 50 clicks and
orders within one bucket costs one write, not 50. Each row goes into its batch
already encoded (InteractionSerializer), as the feature store's rows do.
"""

from __future__ import annotations

import struct
import time
from typing import Sequence

from cassandra.query import BatchStatement, BatchType

from vahini.adapters.cassandra_session import CassandraSession, EncodedStatements
from vahini.ports.interaction_store import HistoryQuery, StoredInteraction, newest_first

TABLE = """
CREATE TABLE IF NOT EXISTS {ks}.interactions (
    user_id text, bucket int, type text, event_time_ms bigint, event_id text,
    product_id text, category_id text, attributes map<text, text>,
    PRIMARY KEY ((user_id, bucket), type, event_time_ms, event_id)
) WITH CLUSTERING ORDER BY (type ASC, event_time_ms DESC, event_id DESC)
"""

DAY_MS = 86_400_000
_SHORT, _INT, _BIGINT = struct.Struct(">H"), struct.Struct(">i"), struct.Struct(">q")
_LEN4, _LEN8, _NULL = _INT.pack(4), _INT.pack(8), _INT.pack(-1)
_NO_ATTRIBUTES = _INT.pack(0)


def _framed(value: bytes | None) -> bytes:
    return _NULL if value is None else _INT.pack(len(value)) + value


def _map(attributes) -> bytes:
    """map<text, text> as the driver serializes it (protocol v3+): the count, then each
    key and value after its length."""
    if not attributes:
        return _NO_ATTRIBUTES
    parts = [_INT.pack(len(attributes))]
    for k, v in attributes.items():
        parts += [_framed(k.encode()), _framed(v.encode())]
    return b"".join(parts)


class InteractionSerializer:
    """An interaction's routing key and INSERT values, serialized as the native protocol
    sends them: byte for byte what the driver's bind() makes (pinned driver;
    tests/contract/test_cassandra_driver_internals.py), without a BoundStatement and the
    driver's per-value Python calls."""

    def __init__(self, query_id: bytes) -> None:
        # What a BATCH body writes before a prepared statement's values: kind 1, its id, 9 values.
        self._head = b"\x01" + _SHORT.pack(len(query_id)) + query_id + _SHORT.pack(9)

    def encode(self, i: StoredInteraction, bucket: int, ttl_s: int) -> tuple[bytes, list, bytes]:
        user, bucket_value = i.user_id.encode(), _INT.pack(bucket)
        category = None if i.category_id is None else i.category_id.encode()
        values = [user, bucket_value, i.type.encode(), _BIGINT.pack(i.event_time_ms), i.event_id.encode(),
                  i.product_id.encode(), category, _map(i.attributes), _INT.pack(ttl_s)]
        routing_key = _SHORT.pack(len(user)) + user + b"\x00" + _SHORT.pack(4) + bucket_value + b"\x00"
        return routing_key, values, self._head + b"".join([_framed(v) for v in values])


class CassandraColdInteractions:
    def __init__(self, connection: CassandraSession, retention_s: int, bucket_days: int):
        self._connection = connection
        self.retention_s = retention_s
        self._bucket_ms = bucket_days * DAY_MS
        self._insert = connection.prepare(
            "INSERT INTO {ks}.interactions (user_id, bucket, type, event_time_ms, event_id, product_id, "
            "category_id, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?")
        self._serializer = InteractionSerializer(self._insert.query_id)
        self._select = connection.prepare(
            "SELECT event_id, user_id, product_id, category_id, type, event_time_ms, attributes "
            "FROM {ks}.interactions WHERE user_id = ? AND bucket IN ? AND type = ? "
            "AND event_time_ms >= ? AND event_time_ms < ? PER PARTITION LIMIT ?")
        self._delete_older = connection.prepare(
            "DELETE FROM {ks}.interactions WHERE user_id = ? AND bucket = ? AND type = ? "
            "AND (event_time_ms, event_id) < (?, ?)")
        self._delete_type_in_bucket = connection.prepare(
            "DELETE FROM {ks}.interactions WHERE user_id = ? AND bucket = ? AND type = ?")

    def _bucket(self, event_time_ms: int) -> int:
        return event_time_ms // self._bucket_ms

    def write(self, items: Sequence[StoredInteraction], timeout_s: float | None = None) -> int:
        batches = self._batches(items, int(time.time() * 1000))
        self._connection.run([(b, ()) for b in batches], timeout_s)
        return len(batches)

    def _batches(self, items: Sequence[StoredInteraction], now_ms: int) -> list[BatchStatement]:
        """One unlogged batch of pre-encoded statements per partition (user, bucket)."""
        partitions: dict[tuple, BatchStatement] = {}
        encode, query_id = self._serializer.encode, self._insert.query_id
        for i in items:
            ttl_s = self.retention_s - (now_ms - i.event_time_ms) // 1000
            if ttl_s <= 0:
                continue  # older than the retention: it would expire on arrival
            bucket = i.event_time_ms // self._bucket_ms
            routing_key, values, statement = encode(i, bucket, ttl_s)
            batch = partitions.get((i.user_id, bucket))
            if batch is None:
                batch = partitions[(i.user_id, bucket)] = self._new_batch(routing_key)
            batch._statements_and_parameters.add(query_id, values, statement)
        return list(partitions.values())

    def _new_batch(self, routing_key: bytes) -> BatchStatement:
        batch = BatchStatement(BatchType.UNLOGGED)
        batch._statements_and_parameters = EncodedStatements()  # written by PreEncodingProtocolHandler
        batch.is_idempotent = True
        batch.routing_key, batch.keyspace = routing_key, self._connection.keyspace  # token-aware
        return batch

    def read(self, query: HistoryQuery, timeout_s: float | None = None) -> list[StoredInteraction]:
        return self.read_many([query], timeout_s)[0]

    def read_many(self, queries: Sequence[HistoryQuery], timeout_s: float | None = None) -> list[list[StoredInteraction]]:
        """One statement per query and type, over every bucket the time range spans
        (`bucket IN`, at most `limit` rows from each): the cluster reads the buckets in
        parallel. Statements of all queries run concurrently."""
        now_ms = int(time.time() * 1000)
        statements, owner = [], []
        for i, q in enumerate(queries):
            since = max(q.since_ms or 0, now_ms - self.retention_s * 1000)
            until = q.until_ms if q.until_ms is not None else now_ms + DAY_MS
            buckets = list(range(self._bucket(until - 1), self._bucket(since) - 1, -1))
            for t in q.types:
                statements.append((self._select, (q.user_id, buckets, t, since, until, q.limit)))
                owner.append(i)
        found: list[list[StoredInteraction]] = [[] for _ in queries]
        for i, rows in zip(owner, self._connection.run(statements, timeout_s, hedged=True)):
            found[i].extend(StoredInteraction(e, u, p, c, t, ms, dict(a or {})) for e, u, p, c, t, ms, a in rows)
        return [newest_first(items, q.limit) for items, q in zip(found, queries)]

    def trim(self, user_id: str, type_: str, keep_newest: int, timeout_s: float | None = None) -> int:
        kept = self.read(HistoryQuery(user_id, (type_,), keep_newest + 1), timeout_s)
        if len(kept) <= keep_newest:
            return 0
        cut = kept[keep_newest - 1] if keep_newest else None
        oldest_bucket = self._bucket(int(time.time() * 1000) - self.retention_s * 1000)
        if cut is None:
            statements = [(self._delete_type_in_bucket, (user_id, b, type_))
                          for b in range(self._bucket(kept[0].event_time_ms), oldest_bucket - 1, -1)]
        else:
            top = self._bucket(cut.event_time_ms)
            statements = [(self._delete_older, (user_id, top, type_, cut.event_time_ms, cut.event_id))]
            statements += [(self._delete_type_in_bucket, (user_id, b, type_))
                           for b in range(top - 1, oldest_bucket - 1, -1)]
        self._connection.run(statements, timeout_s)
        return len(statements)

    def close(self) -> None:
        self._connection.close()
