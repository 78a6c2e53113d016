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


class CassandraFeatureStore:
    def __init__(self, connection: CassandraSession, batch_rows: int = 25, batch_bytes: int = 32 * 1024):
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
        metadata = self._cluster.metadata
        for r, ttl in rows:
            bound = self._insert.bind((r.entity, r.key, r.group, r.event_time_ms, r.blob,
                                       write_timestamp_us(r.event_time_ms, r.blob), ttl or 0))
            replicas = metadata.get_replicas(self._keyspace, bound.routing_key)
            by_replica.setdefault(replicas[0] if replicas else None, []).append((bound, len(r.blob) + 64))
        batches = []
        for group in by_replica.values():
            batch, size = None, 0
            for bound, nbytes in group:
                if batch is None or len(batch) >= self._batch_rows or size + nbytes > self._batch_bytes:
                    batch, size = BatchStatement(BatchType.UNLOGGED), 0
                    batch.is_idempotent = True
                    batches.append(batch)
                batch.add(bound)
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
