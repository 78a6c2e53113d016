"""Vector indexes on Cassandra 5 (and ScyllaDB with vector search): a table per index,
its vector in a `VECTOR<FLOAT, n>` column under a Storage-Attached Index, searched
with `ORDER BY vector ANN OF ? LIMIT k`, filters as SAI-indexed columns beside it.

Each cell is written with the feature row's write timestamp and TTL, so the
cluster keeps the winning cell whatever order writes and replays come in, and an
expired or removed vector leaves the results by itself. A filter never written
must read as its feature's default, which a CQL equality cannot express: a key's
first vector write therefore also writes every filter's default, at timestamp 0,
which any real write of that filter outranks.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
from cassandra import ConsistencyLevel, DriverException, InvalidRequest, RequestValidationException, WriteFailure

from vahini.adapters.cassandra_session import CassandraSession
from vahini.errors import IndexUnsupported, StoreUnavailable
from vahini.ports.vector_index import VECTOR, Hit, IndexCells, nearest_first, scores
from vahini.registry.model import Registry, VectorIndex

_CQL_TYPES = {"bool": "boolean", "int": "bigint", "int32": "int", "string": "text"}
_SIMILARITY = {"cosine": "COSINE", "dot": "DOT_PRODUCT", "l2": "EUCLIDEAN"}
MAX_K = 1000  # Cassandra refuses an ANN query with a greater LIMIT


def table_of(index: str) -> str:
    return f"vector_index_{index}"


class CassandraVectorIndex:
    def __init__(self, connection: CassandraSession, write_concurrency: int = 2):
        self._connection = connection
        self._write_concurrency = write_concurrency
        self._ks = connection.keyspace
        self._statements: dict[tuple, Any] = {}

    # -- schema ----------------------------------------------------------------------
    def prepare(self, registry: Registry) -> None:
        """CREATE ... IF NOT EXISTS each index's table and SAI indexes; a missing filter
        column is added. An engine without vector search is refused with what to run."""
        for index in registry.indexes.values():
            try:
                self._create(registry, index)
            except RequestValidationException as exc:
                raise IndexUnsupported(index.name, self._why(exc)) from exc
            except DriverException as exc:
                raise StoreUnavailable(f"Cassandra/Scylla could not create index '{index.name}': {exc}") from exc

    def _why(self, exc: RequestValidationException) -> str:
        message = str(exc)
        if "vector" in message.lower() or "StorageAttachedIndex" in message or "ANN" in message:
            return (f"this Cassandra/ScyllaDB cannot search vectors ({message}). Vector indexes need Cassandra 5.0+ "
                    f"(VECTOR columns and the Storage-Attached Index) or ScyllaDB with vector search")
        return message

    def _create(self, registry: Registry, index: VectorIndex) -> None:
        dim, name = registry.index_dim(index), table_of(index.name)
        filters = {n: f.type for n, f in registry.filter_features(index).items()}
        columns = "".join(f", {f} {_CQL_TYPES[kind]}" for f, kind in filters.items())
        ddl = self._connection.ddl
        ddl(f"CREATE TABLE IF NOT EXISTS {{ks}}.{name} (key text PRIMARY KEY, vector vector<float, {dim}>{columns})")
        existing = self._connection.cluster.metadata.keyspaces[self._ks].tables[name].columns
        stored = existing["vector"].cql_type
        if stored != f"vector<float, {dim}>":
            raise InvalidRequest(f"table {self._ks}.{name} holds {stored}, the registry asks for "
                                 f"vector<float, {dim}>: a new dimension needs a new index name")
        for f, kind in filters.items():
            if f not in existing:
                ddl(f"ALTER TABLE {{ks}}.{name} ADD {f} {_CQL_TYPES[kind]}")
        ddl(f"CREATE CUSTOM INDEX IF NOT EXISTS {name}_ann ON {{ks}}.{name} (vector) USING 'StorageAttachedIndex' "
            f"WITH OPTIONS = {{{{'similarity_function': '{_SIMILARITY[index.metric]}'}}}}")
        for f in filters:
            ddl(f"CREATE CUSTOM INDEX IF NOT EXISTS {name}_{f} ON {{ks}}.{name} ({f}) USING 'StorageAttachedIndex'")

    # -- writes ----------------------------------------------------------------------
    def write(self, cells: Sequence[IndexCells], timeout_s: float | None = None) -> None:
        now_ms = int(time.time() * 1000)
        statements = []
        for c in cells:
            ttl = 0 if c.expires_at_ms is None else -(-(c.expires_at_ms - now_ms) // 1000)
            if ttl < 0 or (c.expires_at_ms is not None and ttl == 0):
                continue  # expired already, as the feature store skips it
            names = tuple(sorted(c.values))
            values = [_cql_value(n, c.values[n]) for n in names]
            statements.append((self._update(c.index_name, names), (c.write_ts_us, ttl, *values, c.key)))
            if c.defaults:
                beneath = tuple(sorted(c.defaults))
                statements.append((self._defaults(c.index_name, beneath), (*(c.defaults[n] for n in beneath), c.key)))
        if statements:
            self._run_writes(statements, timeout_s)

    def _run_writes(self, statements: list, timeout_s: float | None) -> None:
        """Cassandra 5.0.6 fails a write to a vector index when more than three run at once
        on a node (CASSANDRA-21644): writes go a few at a time, and one that meets the
        limit anyway (other processes write too) is sent again after a short pause. Every
        statement is idempotent, so resending the lot is harmless."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for attempt in range(8):
            try:
                self._connection.run(statements, timeout_s, concurrency=self._write_concurrency)
                return
            except StoreUnavailable as exc:
                if not isinstance(exc.__cause__, WriteFailure) or attempt == 7:
                    raise
                pause = 0.005 * 2 ** attempt
                if deadline is not None and time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
                if deadline is not None:
                    timeout_s = deadline - time.monotonic()

    def _update(self, index: str, names: tuple[str, ...]):
        statement = self._statements.get((index, names))
        if statement is None:
            sets = ", ".join(f"{n} = ?" for n in names)
            statement = self._statements[(index, names)] = self._connection.prepare(
                f"UPDATE {{ks}}.{table_of(index)} USING TIMESTAMP ? AND TTL ? SET {sets} WHERE key = ?")
        return statement

    def _defaults(self, index: str, names: tuple[str, ...]):
        statement = self._statements.get((index, names, "defaults"))
        if statement is None:
            sets = ", ".join(f"{n} = ?" for n in names)
            statement = self._statements[(index, names, "defaults")] = self._connection.prepare(
                f"UPDATE {{ks}}.{table_of(index)} USING TIMESTAMP 0 SET {sets} WHERE key = ?")
        return statement

    # -- search ----------------------------------------------------------------------
    def search(self, registry: Registry, index: str, query: np.ndarray, k: int,
               filters: Mapping[str, Any], timeout_s: float | None = None) -> list[Hit]:
        found = registry.indexes[index]
        names = tuple(sorted(filters))
        statement = self._select(index, names)
        vector = np.asarray(query, dtype="<f4").tolist()
        [rows] = self._connection.run([(statement, (*(filters[n] for n in names), vector, min(k, MAX_K)))],
                                      timeout_s)
        rows = list(rows)
        if not rows:
            return []
        vectors = np.array([v for _, v in rows], dtype="<f4")
        return nearest_first(found.metric, [key for key, _ in rows], scores(found.metric, query, vectors), k)

    def _select(self, index: str, names: tuple[str, ...]):
        statement = self._statements.get((index, names, "select"))
        if statement is None:
            where = " AND ".join(f"{n} = ?" for n in names)
            statement = self._statements[(index, names, "select")] = self._connection.prepare(
                f"SELECT key, vector FROM {{ks}}.{table_of(index)} {'WHERE ' + where if where else ''} "
                f"ORDER BY vector ANN OF ? LIMIT ?")
            # Cassandra refuses an ANN query at any consistency above one replica.
            statement.consistency_level = ConsistencyLevel.LOCAL_ONE
        return statement

    def close(self) -> None:
        self._connection.close()


def _cql_value(name: str, value: Any) -> Any:
    if name == VECTOR and value is not None:
        return np.asarray(value, dtype="<f4").tolist()
    return value

