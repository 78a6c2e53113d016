"""Feature store on ScyllaDB or Apache Cassandra through scylla-driver.

One partition per entity key, one clustering row per group, so a read of many
groups for a key is one partition read. Writes carry the row's
`write_timestamp_us` (event time plus a tie-break) as the CQL write timestamp
(`USING TIMESTAMP`), and a TTL that runs out at the row's event time plus the
group's `ttl_s`: the cluster itself keeps the winning value, whatever order
writes and replays arrive in.

Writes go out as UNLOGGED batches of rows that share a primary replica: one
request per batch instead of one per row, sent straight to the replica that owns
them (token-aware). Each statement keeps its own USING TIMESTAMP and TTL, and an
unlogged batch has no batch-log cost; a partly applied batch is retried whole by
the worker, which is harmless because every statement is idempotent.
"""

from __future__ import annotations

import struct
import time
from typing import Sequence

from cassandra.query import BatchStatement, BatchType, BoundStatement

from vahini import fast_paths
from vahini.adapters import compiled_cql
from vahini.adapters.cassandra_replicas import PrimaryReplicas
from vahini.adapters.cassandra_session import CassandraSession, EncodedStatements, public_batches
from vahini.ports.feature_store import FeatureRow, write_timestamp_us

TABLE = """
CREATE TABLE IF NOT EXISTS {ks}.feature_rows (
    entity text, key text, grp text, event_time_ms bigint, blob blob,
    PRIMARY KEY ((entity, key), grp)
) WITH compaction = {{'class': 'SizeTieredCompactionStrategy'}}
"""


_TEXT_PART = struct.Struct(">H")
_BIGINT, _INT = struct.Struct(">q"), struct.Struct(">i")
_LEN8, _LEN4 = _INT.pack(8), _INT.pack(4)  # a bigint's and an int's length, as a value is framed


class RowSerializer:
    """A row's routing key and INSERT values, serialized as the native protocol sends
    them: byte for byte what the driver's bind() makes, without a BoundStatement per row
    (pinned driver; tests/contract/test_cassandra_driver_internals.py). The encodings of
    entity and group names, which repeat on every row, are kept."""

    def __init__(self) -> None:
        self._entities: dict[str, tuple[bytes, bytes, bytes]] = {}  # name -> (encoded, routing key prefix, framed)
        self._groups: dict[str, tuple[bytes, bytes]] = {}  # name -> (encoded, framed)

    def serialize(self, r: FeatureRow, ttl: int | None) -> tuple[bytes, list[bytes]]:
        """(routing key, values in statement order: entity, key, grp, event_time_ms, blob,
        USING TIMESTAMP, TTL). The routing key of partition (entity, key) is each part's
        length, bytes and a zero byte."""
        routing_key, values, _ = self.encode(r, ttl, b"")
        return routing_key, values

    def encode(self, r: FeatureRow, ttl: int | None, head: bytes) -> tuple[bytes, list[bytes], bytes]:
        """serialize()'s routing key and values, and the statement as a BATCH body writes
        it: `head` (kind, query id, value count), then each value after its length.
        Compiled where built (vahini.adapters.compiled_cql)."""
        entity = self._entities.get(r.entity)
        if entity is None:
            encoded = r.entity.encode()
            entity = self._entities[r.entity] = (encoded, self._part(encoded), _INT.pack(len(encoded)) + encoded)
        group = self._groups.get(r.group)
        if group is None:
            encoded = r.group.encode()
            group = self._groups[r.group] = (encoded, _INT.pack(len(encoded)) + encoded)
        compiled = compiled_cql.in_use()
        if compiled is not None:
            return compiled.encode_row(entity, group, r.key, r.event_time_ms, r.blob, ttl or 0, head)
        key, blob = r.key.encode(), r.blob
        event_time, timestamp = _BIGINT.pack(r.event_time_ms), _BIGINT.pack(write_timestamp_us(r.event_time_ms, blob))
        ttl_value = _INT.pack(ttl or 0)
        statement = b"".join((head, entity[2], _INT.pack(len(key)), key, group[1], _LEN8, event_time,
                              _INT.pack(len(blob)), blob, _LEN8, timestamp, _LEN4, ttl_value))
        values = [entity[0], key, group[0], event_time, blob, timestamp, ttl_value]
        return entity[1] + self._part(key), values, statement

    def routing_key(self, entity: str, key: str) -> bytes:
        """The routing key of partition (entity, key)."""
        return self._part(entity.encode()) + self._part(key.encode())

    @staticmethod
    def _part(encoded: bytes) -> bytes:
        return _TEXT_PART.pack(len(encoded)) + encoded + b"\x00"


class RoutedBoundStatement(BoundStatement):
    """A bound statement whose routing key the caller sets: the driver computes none for an
    IN on the partition key, so it would send the request to any node."""

    routing_key = None  # a plain attribute where BoundStatement has a computed property


class CassandraFeatureStore:
    def __init__(self, connection: CassandraSession, batch_rows: int = 250, batch_bytes: int = 32 * 1024):
        self._connection = connection
        self._cluster = connection.cluster
        self._keyspace = connection.keyspace
        self._batch_rows = batch_rows
        self._batch_bytes = batch_bytes
        self._serializer = RowSerializer()
        self._primary = PrimaryReplicas(self._cluster, self._keyspace)
        self._insert = connection.prepare(
            "INSERT INTO {ks}.feature_rows (entity, key, grp, event_time_ms, blob) "
            "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?")
        # What a BATCH body writes before a prepared statement's values: kind 1, its id, 7 values.
        query_id = self._insert.query_id
        self._statement_head = b"\x01" + _TEXT_PART.pack(len(query_id)) + query_id + _TEXT_PART.pack(7)
        self._select = connection.prepare(
            "SELECT key, grp, event_time_ms, blob FROM {ks}.feature_rows WHERE entity = ? AND key = ? AND grp IN ?")
        self._select_keys = connection.prepare(
            "SELECT key, grp, event_time_ms, blob FROM {ks}.feature_rows WHERE entity = ? AND key IN ? AND grp IN ?")

    def write(self, rows: Sequence[FeatureRow], timeout_s: float | None = None) -> None:
        # A replay of the same event rewrites the same timestamp and value: a no-op.
        batches = self._batches(rows, int(time.time() * 1000))
        if batches:
            self._connection.run([(batch, ()) for batch in batches], timeout_s)

    def _batches(self, rows: Sequence[FeatureRow], now_ms: int) -> list[BatchStatement]:
        """The live rows grouped by primary replica into batches bounded in rows and bytes,
        in one pass: this runs once per row of every ingested event, compiled where built
        (vahini.adapters.compiled_cql)."""
        if not fast_paths.enabled():
            return self._public_batches(rows, now_ms)
        compiled = compiled_cql.in_use()
        if compiled is not None:
            return compiled.row_batches(rows, now_ms, self._serializer, self._statement_head, self._insert.query_id,
                                        self._primary.lookup(), self._batch_rows, self._batch_bytes, self._new_batch)
        batches: list[BatchStatement] = []
        filling: dict[object, list] = {}  # primary replica -> [its batch being filled, its bytes]
        encode, primary_of, query_id = self._serializer.encode, self._primary.lookup(), self._insert.query_id
        head = self._statement_head
        for r in rows:
            ttl = r.ttl_left_s(now_ms) if r.ttl_s else None  # the call only for rows with a TTL
            if ttl is not None and ttl <= 0:
                continue
            routing_key, values, statement = encode(r, ttl, head)
            replica, nbytes = primary_of(routing_key), len(r.blob) + 64
            slot = filling.get(replica)
            if slot is None or len(slot[0]) >= self._batch_rows or slot[1] + nbytes > self._batch_bytes:
                slot = filling[replica] = [self._new_batch(routing_key), 0]
                batches.append(slot[0])
            # What BatchStatement.add(prepared, params) does after bind(), without a
            # BoundStatement per row (see RowSerializer; pinned driver, contract-tested),
            # and the statement already encoded for the BATCH body (EncodedStatements).
            slot[0]._statements_and_parameters.add(query_id, values, statement)
            slot[1] += nbytes
        return batches

    def _public_batches(self, rows: Sequence[FeatureRow], now_ms: int) -> list[BatchStatement]:
        """_batches through the driver's public bind() and BatchStatement.add()."""
        bound = []
        for r in rows:
            ttl = r.ttl_left_s(now_ms) if r.ttl_s else None
            if ttl is not None and ttl <= 0:
                continue
            values = (r.entity, r.key, r.group, r.event_time_ms, r.blob, write_timestamp_us(r.event_time_ms, r.blob),
                      ttl or 0)
            bound.append((self._insert.bind(values), len(r.blob) + 64))
        return public_batches(bound, self._primary.lookup(), self._batch_rows, self._batch_bytes)

    def _new_batch(self, routing_key: bytes) -> BatchStatement:
        batch = BatchStatement(BatchType.UNLOGGED)
        batch._statements_and_parameters = EncodedStatements()  # written by PreEncodingProtocolHandler
        batch.is_idempotent = True
        batch.routing_key, batch.keyspace = routing_key, self._keyspace  # token-aware
        return batch

    def read(self, entity: str, keys: Sequence[str], groups: Sequence[str],
             timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        unique = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], FeatureRow] = {}
        for result in self._connection.run([(self._select, (entity, k, list(groups))) for k in unique], timeout_s,
                                           hedged=True):
            for key, grp, ts, blob in result:
                found[(key, grp)] = FeatureRow(entity, key, grp, ts, blob)
        return found

    # ScyllaDB refuses more partition keys in one IN than this by default
    # (max_partition_key_restrictions_per_query).
    KEYS_PER_READ = 100

    def read_in_bulk(self, entity: str, keys: Sequence[str], groups: Sequence[str],
                     timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        """Keys grouped by primary replica, up to KEYS_PER_READ per `key IN` statement sent to
        that replica: one request per hundred keys, where `read` makes one per key."""
        by_replica: dict[object, list[tuple[bytes, str]]] = {}
        primary_of, part = self._primary.lookup(), self._serializer.routing_key
        for key in dict.fromkeys(keys):
            routing_key = part(entity, key)
            by_replica.setdefault(primary_of(routing_key), []).append((routing_key, key))
        statements = []
        for found in by_replica.values():
            for start in range(0, len(found), self.KEYS_PER_READ):
                chunk = found[start:start + self.KEYS_PER_READ]
                values = (entity, [k for _, k in chunk], list(groups))
                if not fast_paths.enabled():  # no routing key: the driver picks the coordinator
                    statements.append((self._select_keys.bind(values), None))
                    continue
                bound = RoutedBoundStatement(self._select_keys).bind(values)
                bound.routing_key = chunk[0][0]
                statements.append((bound, None))
        rows: dict[tuple[str, str], FeatureRow] = {}
        for result in self._connection.run(statements, timeout_s, hedged=True):
            for key, grp, ts, blob in result:
                rows[(key, grp)] = FeatureRow(entity, key, grp, ts, blob)
        return rows

    def close(self) -> None:
        self._connection.close()
