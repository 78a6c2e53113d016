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
from collections import deque
from typing import Sequence

from cassandra import ConsistencyLevel, DriverException, OperationTimedOut
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType

from vahini.errors import DeadlineExceeded, StoreUnavailable
from vahini.ports.feature_store import FeatureRow, write_timestamp_us

_TABLE = """
CREATE TABLE IF NOT EXISTS {ks}.feature_rows (
    entity text, key text, grp text, event_time_ms bigint, blob blob,
    PRIMARY KEY ((entity, key), grp)
) WITH compaction = {{'class': 'SizeTieredCompactionStrategy'}}
"""


class CassandraFeatureStore:
    def __init__(self, hosts: Sequence[str], port: int = 9042, keyspace: str = "vahini",
                 replication_factor: int = 1, local_dc: str | None = None,
                 consistency: str = "LOCAL_QUORUM", concurrency: int = 128, create_schema: bool = True,
                 request_timeout_s: float = 10.0, batch_rows: int = 25, batch_bytes: int = 32 * 1024,
                 credentials: tuple[str, str] | None = None):
        consistency_level = getattr(ConsistencyLevel, consistency)
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
            consistency_level=consistency_level, request_timeout=request_timeout_s)
        auth = PlainTextAuthProvider(*credentials) if credentials else None
        self._cluster = Cluster(list(hosts), port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                                connect_timeout=10, auth_provider=auth)
        self._concurrency = concurrency
        self._request_timeout_s = request_timeout_s
        self._keyspace = keyspace
        self._batch_rows = batch_rows
        self._batch_bytes = batch_bytes
        try:
            self._session = self._cluster.connect()
            if create_schema:
                self._session.execute(
                    f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}")
                self._session.execute(_TABLE.format(ks=keyspace))
            self._insert = self._session.prepare(
                f"INSERT INTO {keyspace}.feature_rows (entity, key, grp, event_time_ms, blob) "
                f"VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?")
            self._insert.is_idempotent = True
            self._select = self._session.prepare(
                f"SELECT key, grp, event_time_ms, blob FROM {keyspace}.feature_rows "
                f"WHERE entity = ? AND key = ? AND grp IN ?")
        except (NoHostAvailable, DriverException, OSError) as exc:
            self._cluster.shutdown()
            raise StoreUnavailable(f"cannot connect to Cassandra/Scylla at {hosts}:{port}: {exc}") from exc

    def write(self, rows: Sequence[FeatureRow], timeout_s: float | None = None) -> None:
        # A replay of the same event rewrites the same timestamp and value: a no-op.
        now_ms = int(time.time() * 1000)
        live = [(r, ttl) for r in rows if (ttl := r.ttl_left_s(now_ms)) is None or ttl > 0]
        if live:
            self._run([(batch, ()) for batch in self._batches(live)], timeout_s)

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
        for result in self._run([(self._select, (entity, k, list(groups))) for k in unique], timeout_s):
            for key, grp, ts, blob in result:
                found[(key, grp)] = FeatureRow(entity, key, grp, ts, blob)
        return found

    def _run(self, statements_and_params: list, timeout_s: float | None) -> list:
        """Run statements with at most `concurrency` in flight, each bounded by what is
        left of `timeout_s`; driver failures become StoreUnavailable."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        in_flight: deque = deque()
        results: list = []
        try:
            for statement, params in statements_and_params:
                if len(in_flight) >= self._concurrency:
                    results.append(in_flight.popleft().result())
                in_flight.append(self._session.execute_async(statement, params, timeout=self._timeout(deadline)))
            while in_flight:
                results.append(in_flight.popleft().result())
        except (NoHostAvailable, DriverException, ConnectionException, OSError) as exc:
            if deadline is not None and isinstance(exc, OperationTimedOut) and time.monotonic() >= deadline - 0.005:
                raise DeadlineExceeded(f"Cassandra/Scylla did not answer within {timeout_s:.3f} s") from exc
            raise StoreUnavailable(f"Cassandra/Scylla request failed: {type(exc).__name__}: {exc}") from exc
        return results

    def _timeout(self, deadline: float | None) -> float:
        if deadline is None:
            return self._request_timeout_s
        left = deadline - time.monotonic()
        if left <= 0:
            raise OperationTimedOut("deadline passed before the request was sent")
        return min(left, self._request_timeout_s)

    def close(self) -> None:
        self._cluster.shutdown()
