"""Cold interaction tier on ScyllaDB or Apache Cassandra.

One partition per (user, time bucket), so no partition grows without bound; rows
clustered by type, then newest first by (event time, event id), so an event id is
stored once whatever is replayed, and "the last N of a type" is a slice from the
top of the type's range. Each row carries a TTL that runs out `retention_s`
after its event time.

A write is UNLOGGED batches of rows that share a primary replica, sent straight
to it (token-aware), as the feature store's are: a session of 50 clicks and
orders within one bucket is one partition mutation, and the sessions flushed
together, or a batch of users without a session, share a few requests instead of
one each. Each row goes into its batch already encoded (InteractionSerializer).
"""

from __future__ import annotations

import struct
import time
from operator import attrgetter
from typing import Any, Sequence

from cassandra.query import BatchStatement, BatchType

from vahini import fast_paths
from vahini.adapters import compiled_cql
from vahini.adapters.cassandra_replicas import PrimaryReplicas
from vahini.adapters.cassandra_session import CassandraSession, EncodedStatements, public_batches
from vahini.ports.interaction_store import HistoryQuery, StoredInteraction, newest_first

TABLE = """
CREATE TABLE IF NOT EXISTS {ks}.interactions (
    user_id text, bucket int, type text, event_time_ms bigint, event_id text,
    product_id text, category_id text, attributes map<text, text>,
    PRIMARY KEY ((user_id, bucket), type, event_time_ms, event_id)
) WITH CLUSTERING ORDER BY (type ASC, event_time_ms DESC, event_id DESC)
"""

DAY_MS = 86_400_000
_PARTITION_ORDER = attrgetter("user_id", "event_time_ms")  # a user's rows together, its buckets in order
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
        self._types: dict[str, tuple[bytes, bytes]] = {}  # type -> (encoded, framed): three values repeat

    def encode(self, i: StoredInteraction, bucket: int, ttl_s: int) -> tuple[bytes, list, bytes]:
        """Compiled where built (vahini.adapters.compiled_cql)."""
        kind = self._types.get(i.type)
        if kind is None:
            encoded = i.type.encode()
            kind = self._types[i.type] = (encoded, _framed(encoded))
        compiled = compiled_cql.in_use()
        if compiled is not None:
            return compiled.encode_interaction(self._head, kind, i.user_id, i.event_id, i.product_id, i.category_id,
                                               i.event_time_ms, i.attributes, bucket, ttl_s)
        user, event_id, product = i.user_id.encode(), i.event_id.encode(), i.product_id.encode()
        bucket_value, time_value, ttl_value = _INT.pack(bucket), _BIGINT.pack(i.event_time_ms), _INT.pack(ttl_s)
        category = None if i.category_id is None else i.category_id.encode()
        attributes = _map(i.attributes)
        framed_user = _INT.pack(len(user)) + user
        statement = b"".join((self._head, framed_user, _LEN4, bucket_value, kind[1], _LEN8, time_value,
                              _INT.pack(len(event_id)), event_id, _INT.pack(len(product)), product,
                              _framed(category), _INT.pack(len(attributes)), attributes, _LEN4, ttl_value))
        values = [user, bucket_value, kind[0], time_value, event_id, product, category, attributes, ttl_value]
        routing_key = _SHORT.pack(len(user)) + user + b"\x00" + _SHORT.pack(4) + bucket_value + b"\x00"
        return routing_key, values, statement


class CassandraColdInteractions:
    def __init__(self, connection: CassandraSession, retention_s: int, bucket_days: int, batch_rows: int = 250,
                 batch_bytes: int = 32 * 1024):
        self._connection = connection
        self._batch_rows, self._batch_bytes = batch_rows, batch_bytes
        self._primary = PrimaryReplicas(connection.cluster, connection.keyspace)
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
        self._select_users = connection.prepare(
            "SELECT event_id, user_id, product_id, category_id, type, event_time_ms, attributes "
            "FROM {ks}.interactions WHERE user_id IN ? AND bucket IN ? AND type = ? "
            "AND event_time_ms >= ? AND event_time_ms < ? PER PARTITION LIMIT ?")
        self._delete_older = connection.prepare(
            "DELETE FROM {ks}.interactions WHERE user_id = ? AND bucket = ? AND type = ? "
            "AND (event_time_ms, event_id) < (?, ?)")
        self._delete_type_in_bucket = connection.prepare(
            "DELETE FROM {ks}.interactions WHERE user_id = ? AND bucket = ? AND type = ?")

    def _bucket(self, event_time_ms: int) -> int:
        return event_time_ms // self._bucket_ms

    def write(self, items: Sequence[StoredInteraction], timeout_s: float | None = None) -> int:
        """Returns the partition mutations written (the port counts writes that way)."""
        batches, partitions = self._batches(items, int(time.time() * 1000))
        self._connection.run([(b, ()) for b in batches], timeout_s)
        return partitions

    def _batches(self, items: Sequence[StoredInteraction], now_ms: int) -> tuple[list[BatchStatement], int]:
        """Unlogged batches of pre-encoded statements, each of rows sharing a primary replica,
        within batch_rows and batch_bytes; and how many partitions (user, bucket) they hold.
        Items are taken in partition order, so a partition's rows stay together. Compiled
        where built (vahini.adapters.compiled_cql)."""
        in_order = sorted(items, key=_PARTITION_ORDER)
        if not fast_paths.enabled():
            return self._public_batches(in_order, now_ms)
        compiled = compiled_cql.in_use()
        if compiled is not None:
            return compiled.interaction_batches(in_order, now_ms, self.retention_s, self._bucket_ms, self._serializer,
                                                self._insert.query_id, self._primary.lookup(), self._batch_rows,
                                                self._batch_bytes, self._new_batch)
        batches: list[BatchStatement] = []
        filling: dict[object, list] = {}  # primary replica -> [its batch being filled, its bytes]
        encode, query_id, primary_of = self._serializer.encode, self._insert.query_id, self._primary.lookup()
        partitions, last_key, replica = 0, None, None
        for i in in_order:
            ttl_s = self.retention_s - (now_ms - i.event_time_ms) // 1000
            if ttl_s <= 0:
                continue  # older than the retention: it would expire on arrival
            routing_key, values, statement = encode(i, i.event_time_ms // self._bucket_ms, ttl_s)
            if routing_key != last_key:  # a new partition: a partition's rows come together
                partitions, last_key, replica = partitions + 1, routing_key, primary_of(routing_key)
            nbytes = len(statement)
            slot = filling.get(replica)
            if slot is None or len(slot[0]._statements_and_parameters) >= self._batch_rows \
                    or slot[1] + nbytes > self._batch_bytes:
                slot = filling[replica] = [self._new_batch(routing_key), 0]
                batches.append(slot[0])
            slot[0]._statements_and_parameters.add(query_id, values, statement)
            slot[1] += nbytes
        return batches, partitions

    def _public_batches(self, in_order: Sequence[StoredInteraction], now_ms: int) -> tuple[list[BatchStatement], int]:
        """_batches through the driver's public bind() and BatchStatement.add()."""
        bound, partitions, last_partition = [], 0, None
        for i in in_order:
            ttl_s = self.retention_s - (now_ms - i.event_time_ms) // 1000
            if ttl_s <= 0:
                continue
            bucket = i.event_time_ms // self._bucket_ms
            if (i.user_id, bucket) != last_partition:
                partitions, last_partition = partitions + 1, (i.user_id, bucket)
            values = (i.user_id, bucket, i.type, i.event_time_ms, i.event_id, i.product_id, i.category_id,
                      i.attributes, ttl_s)
            nbytes = 64 + len(i.user_id) + len(i.event_id) + len(i.product_id) + len(i.category_id or "") \
                + sum(len(k) + len(v) for k, v in (i.attributes or {}).items())
            bound.append((self._insert.bind(values), nbytes))
        return public_batches(bound, self._primary.lookup(), self._batch_rows, self._batch_bytes), partitions

    def _new_batch(self, routing_key: bytes) -> BatchStatement:
        batch = BatchStatement(BatchType.UNLOGGED)
        batch._statements_and_parameters = EncodedStatements()  # written by PreEncodingProtocolHandler
        batch.is_idempotent = True
        batch.routing_key, batch.keyspace = routing_key, self._connection.keyspace  # token-aware
        return batch

    def read(self, query: HistoryQuery, timeout_s: float | None = None) -> list[StoredInteraction]:
        return self.read_many([query], timeout_s)[0]

    # ScyllaDB refuses more partitions (users x buckets) in one IN than this by default.
    PARTITIONS_PER_READ = 100

    def read_many(self, queries: Sequence[HistoryQuery], timeout_s: float | None = None) -> list[list[StoredInteraction]]:
        """Queries of the same type and time range are read together: one statement for
        up to PARTITIONS_PER_READ partitions (`user_id IN`, `bucket IN`, at most `limit`
        rows from each), the statements run concurrently. A worker starting many sessions
        reads their histories in a few requests; serving reads one user (`read`)."""
        now_ms = int(time.time() * 1000)
        shapes: dict[tuple, dict[str, list[int]]] = {}  # (type, since, until, limit) -> user -> queries
        for n, q in enumerate(queries):
            since = max(q.since_ms or 0, now_ms - self.retention_s * 1000)
            until = q.until_ms if q.until_ms is not None else now_ms + DAY_MS
            for t in q.types:
                shapes.setdefault((t, since, until, q.limit), {}).setdefault(q.user_id, []).append(n)
        statements, owners = [], []
        for (t, since, until, limit), users in shapes.items():
            buckets = list(range(self._bucket(until - 1), self._bucket(since) - 1, -1))
            names = list(users)
            per = max(1, self.PARTITIONS_PER_READ // len(buckets))
            for start in range(0, len(names), per):
                chunk = names[start:start + per]
                select, who = (self._select, chunk[0]) if len(chunk) == 1 else (self._select_users, chunk)
                statements.append((select, (who, buckets, t, since, until, limit)))
                owners.append(users)
        found: list[list[StoredInteraction]] = [[] for _ in queries]
        for users, rows in zip(owners, self._connection.run(statements, timeout_s, hedged=True)):
            for e, u, p, c, t, ms, a in rows:
                item = StoredInteraction(e, u, p, c, t, ms, dict(a or {}))
                for n in users[u]:
                    found[n].append(item)
        return [newest_first(items, q.limit) for items, q in zip(found, queries)]

    def trim(self, user_id: str, type_: str, keep_newest: int, timeout_s: float | None = None) -> int:
        kept = self.read(HistoryQuery(user_id, (type_,), keep_newest + 1), timeout_s)
        if len(kept) <= keep_newest:
            return 0
        cut = kept[keep_newest - 1] if keep_newest else None
        oldest_bucket = self._bucket(int(time.time() * 1000) - self.retention_s * 1000)
        statements: list[tuple[Any, tuple]]
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
