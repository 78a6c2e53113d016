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

from cassandra.query import BatchStatement, BatchType

from vahini.adapters.cassandra_session import CassandraSession
from vahini.ports.feature_store import FeatureRow, write_timestamp_us

TABLE = """
CREATE TABLE IF NOT EXISTS {ks}.feature_rows (
    entity text, key text, grp text, event_time_ms bigint, blob blob,
    PRIMARY KEY ((entity, key), grp)
) WITH compaction = {{'class': 'SizeTieredCompactionStrategy'}}
"""


_TEXT_PART = struct.Struct(">H")
_BIGINT, _INT = struct.Struct(">q"), struct.Struct(">i")


def row_routing_key(entity: str, key: str) -> bytes:
    """The routing key of partition (entity, key): each part's length, bytes and a zero byte."""
    e, k = entity.encode(), key.encode()
    return b"".join((_TEXT_PART.pack(len(e)), e, b"\x00", _TEXT_PART.pack(len(k)), k, b"\x00"))


def insert_values(r: FeatureRow, ttl: int | None) -> list[bytes]:
    """The INSERT's values serialized as the native protocol sends them, in statement order:
    entity, key, grp (text), event_time_ms (bigint), blob, USING TIMESTAMP (bigint), TTL (int)."""
    return [r.entity.encode(), r.key.encode(), r.group.encode(), _BIGINT.pack(r.event_time_ms), r.blob,
            _BIGINT.pack(write_timestamp_us(r.event_time_ms, r.blob)), _INT.pack(ttl or 0)]


class CassandraFeatureStore:
    def __init__(self, connection: CassandraSession, batch_rows: int = 100, batch_bytes: int = 32 * 1024):
        self._connection = connection
        self._cluster = connection.cluster
        self._keyspace = connection.keyspace
        self._batch_rows = batch_rows
        self._batch_bytes = batch_bytes
        self._insert = connection.prepare(
            "INSERT INTO {ks}.feature_rows (entity, key, grp, event_time_ms, blob) "
            "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?")
        self._select = connection.prepare(
            "SELECT key, grp, event_time_ms, blob FROM {ks}.feature_rows WHERE entity = ? AND key = ? AND grp IN ?")

    def write(self, rows: Sequence[FeatureRow], timeout_s: float | None = None) -> None:
        # A replay of the same event rewrites the same timestamp and value: a no-op.
        now_ms = int(time.time() * 1000)
        live = [(r, ttl) for r in rows if (ttl := r.ttl_left_s(now_ms)) is None or ttl > 0]
        if live:
            self._connection.run([(batch, ()) for batch in self._batches(live)], timeout_s)

    def _batches(self, rows: list[tuple[FeatureRow, int | None]]) -> list[BatchStatement]:
        """Group by primary replica, then cut into batches bounded in rows and bytes."""
        by_replica: dict[object, list] = {}
        metadata, query_id = self._cluster.metadata, self._insert.query_id
        for r, ttl in rows:
            routing_key = row_routing_key(r.entity, r.key)
            replicas = metadata.get_replicas(self._keyspace, routing_key)
            by_replica.setdefault(replicas[0] if replicas else None, []).append(
                (routing_key, insert_values(r, ttl), len(r.blob) + 64))
        batches = []
        for group in by_replica.values():
            batch, size = None, 0
            for routing_key, values, nbytes in group:
                if batch is None or len(batch) >= self._batch_rows or size + nbytes > self._batch_bytes:
                    batch, size = BatchStatement(BatchType.UNLOGGED), 0
                    batch.is_idempotent = True
                    batch.routing_key, batch.keyspace = routing_key, self._keyspace  # token-aware
                    batches.append(batch)
                # What BatchStatement.add(prepared, params) does after bind(), without a
                # BoundStatement per row (see insert_values; pinned driver, contract-tested).
                batch._add_statement_and_params(True, query_id, values)
                size += nbytes
        return batches

    def read(self, entity: str, keys: Sequence[str], groups: Sequence[str],
             timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        unique = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], FeatureRow] = {}
        for result in self._connection.run([(self._select, (entity, k, list(groups))) for k in unique], timeout_s):
            for key, grp, ts, blob in result:
                found[(key, grp)] = FeatureRow(entity, key, grp, ts, blob)
        return found

    def close(self) -> None:
        self._connection.close()
