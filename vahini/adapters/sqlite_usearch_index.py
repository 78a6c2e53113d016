"""Embedded vector indexes: cells in SQLite, searched through usearch (HNSW) in memory.

SQLite holds the truth: each (index, key, cell) with its write timestamp, expiry and a
change number. Every process that searches keeps a usearch index per registry index,
brought up to date from the change numbers before each search (a few rows, on an
index of the column), so an ingested vector is found by the next search of any
process on the machine. Why usearch, and what was measured against sqlite-vec and
hnswlib: docs/design-vector-search.md.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from vahini.adapters.sqlite_util import connect, transaction, unavailable
from vahini.errors import StoreUnavailable
from vahini.ports.vector_index import VECTOR, Hit, IndexCells, nearest_first, scores
from vahini.registry.model import Registry, VectorIndex

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS index_cells (
        idx TEXT NOT NULL, key TEXT NOT NULL, cell TEXT NOT NULL, value, write_ts_us INTEGER NOT NULL,
        expires_at_ms INTEGER, seq INTEGER NOT NULL, PRIMARY KEY (idx, key, cell)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS index_cells_by_change ON index_cells (idx, seq)",
    "CREATE TABLE IF NOT EXISTS index_changes (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO index_changes VALUES (1, 0)",
)
# The port's rule, cell by cell: the greater write timestamp wins, on a tie the greater value.
_UPSERT = """
INSERT INTO index_cells (idx, key, cell, value, write_ts_us, expires_at_ms, seq) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (idx, key, cell) DO UPDATE SET value = excluded.value, write_ts_us = excluded.write_ts_us,
    expires_at_ms = excluded.expires_at_ms, seq = excluded.seq
WHERE excluded.write_ts_us > index_cells.write_ts_us
   OR (excluded.write_ts_us = index_cells.write_ts_us AND excluded.value > index_cells.value)
"""
_USEARCH_METRICS = {"cosine": "cos", "dot": "ip", "l2": "l2sq"}


@dataclass(frozen=True)
class UsearchOptions:
    """HNSW parameters (docs/design-vector-search.md has the recall each gives)."""

    connectivity: int = 32
    expansion_add: int = 200
    expansion_search: int = 512


def _encoded(cell: str, value: Any) -> Any:
    if value is None:
        return None
    if cell == VECTOR:
        return np.asarray(value, dtype="<f4").tobytes()
    return json.dumps(value)


@dataclass
class _Mirror:
    """One process's copy of one index: a usearch index over the live vectors, and the
    filter values and expiries of every key."""

    index: VectorIndex
    dim: int
    ann: Any  # usearch.index.Index
    last_seq: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    expires: dict[str, int | None] = field(default_factory=dict)  # keys with a vector
    filters: dict[str, dict[str, tuple[Any, int | None]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, rows: list[tuple[str, str, Any, int | None]]) -> None:
        """Cells as they now stand, (key, cell, value, expiry), each (key, cell) at most once:
        filters set, then the changed vectors removed and the live ones added in one call,
        which usearch spreads over the cores."""
        labels, vectors = [], []
        for key, cell, value, expires_at_ms in rows:
            if cell != VECTOR:
                self.filters.setdefault(key, {})[cell] = (json.loads(value) if value is not None else None,
                                                          expires_at_ms)
                continue
            label = self.labels.get(key)
            if label is None:
                label = self.labels[key] = len(self.keys)
                self.keys.append(key)
            elif label in self.ann:
                self.ann.remove(label)
            self.expires.pop(key, None)
            if value is not None:
                labels.append(label)
                vectors.append(np.frombuffer(value, "<f4"))
                self.expires[key] = expires_at_ms
        if labels:
            self.ann.add(np.array(labels, dtype=np.uint64), np.stack(vectors))

    def live(self, key: str, now_ms: int) -> bool:
        expires = self.expires.get(key, 0)
        return expires is None or expires > now_ms

    def matches(self, key: str, wanted: Mapping[str, Any], now_ms: int) -> bool:
        cells = self.filters.get(key, {})
        for name, value in wanted.items():
            stored, expires = cells.get(name, (None, 0))
            if stored is None or stored != value or (expires is not None and expires <= now_ms):
                return False
        return True


class SqliteUsearchIndex:
    def __init__(self, path: str, options: UsearchOptions = UsearchOptions(), busy_timeout_s: float = 30.0):
        self._path = path
        self._options = options
        with unavailable(f"SQLite vector index {path}"):
            self._conn = connect(path, busy_timeout_s)
            for statement in _SCHEMA:
                self._conn.execute(statement)
        self._lock = threading.Lock()
        self._mirrors: dict[str, _Mirror] = {}

    def prepare(self, registry: Registry) -> None:
        """Nothing to create: the cells' table is made at connect, usearch indexes in memory."""

    def write(self, cells: Sequence[IndexCells], timeout_s: float | None = None) -> None:
        if not cells:
            return
        with self._lock, unavailable(f"SQLite vector index {self._path}"), transaction(self._conn):
            # One change number per write, taken inside the write lock: numbers commit in order.
            seq = self._conn.execute("UPDATE index_changes SET seq = seq + 1 RETURNING seq").fetchone()[0]
            self._conn.executemany(_UPSERT, [
                (c.index_name, c.key, name, _encoded(name, value), c.write_ts_us, c.expires_at_ms, seq)
                for c in cells for name, value in c.values.items()])
            self._conn.executemany(_UPSERT, [
                (c.index_name, c.key, name, _encoded(name, value), 0, None, seq)
                for c in cells for name, value in c.defaults.items()])

    def search(self, registry: Registry, index: str, query: np.ndarray, k: int,
               filters: Mapping[str, Any], timeout_s: float | None = None) -> list[Hit]:
        found = registry.indexes[index]
        mirror = self._mirror(registry, found)
        with mirror.lock:
            self._catch_up(mirror)
            # A copy: a query read from a stored blob is an unaligned view, which usearch refuses.
            return self._nearest(mirror, np.array(query, dtype=np.float32), k, dict(filters))

    def _mirror(self, registry: Registry, index: VectorIndex) -> _Mirror:
        from usearch.index import Index

        dim = registry.index_dim(index)
        mirror = self._mirrors.get(index.name)
        if mirror is None or mirror.index != index or mirror.dim != dim:  # new, or redefined: built again
            o = self._options
            ann = Index(ndim=dim, metric=_USEARCH_METRICS[index.metric], dtype="f32", connectivity=o.connectivity,
                        expansion_add=o.expansion_add, expansion_search=o.expansion_search)
            mirror = self._mirrors[index.name] = _Mirror(index, dim, ann)
        return mirror

    def _catch_up(self, mirror: _Mirror) -> None:
        with unavailable(f"SQLite vector index {self._path}"):
            rows = self._conn.execute(
                "SELECT key, cell, value, expires_at_ms, seq FROM index_cells WHERE idx = ? AND seq > ? ORDER BY seq",
                (mirror.index.name, mirror.last_seq)).fetchall()
        for key, cell, value, _, _ in rows:
            if cell == VECTOR and value is not None and len(value) != 4 * mirror.dim:
                raise StoreUnavailable(f"index '{mirror.index.name}' holds a vector of {len(value) // 4} "
                                       f"dimensions for key '{key}'; the registry says {mirror.dim}")
        mirror.apply([row[:4] for row in rows])
        if rows:
            mirror.last_seq = rows[-1][4]

    def _nearest(self, mirror: _Mirror, query: np.ndarray, k: int, wanted: dict) -> list[Hit]:
        """Ask usearch for more than k while expired or filtered-out keys crowd the answer."""
        now_ms = int(time.time() * 1000)
        size = len(mirror.ann)
        count = min(size, max(2 * k, k + 16) if wanted else k)  # filters drop some: ask for more from the start
        while count:
            labels = mirror.ann.search(query, count).keys
            keys = [mirror.keys[int(label)] for label in labels]
            kept = [(key, label) for key, label in zip(keys, labels)
                    if mirror.live(key, now_ms) and mirror.matches(key, wanted, now_ms)]
            if len(kept) >= k or count >= size:
                break
            count = min(size, count * 4)
        else:
            return []
        if not kept:
            return []
        got = mirror.ann.get(np.array([label for _, label in kept], dtype=np.uint64))
        vectors = np.asarray(got, dtype="<f4").reshape(len(kept), mirror.dim)
        return nearest_first(mirror.index.metric, [key for key, _ in kept],
                             scores(mirror.index.metric, query, vectors), k)

    def close(self) -> None:
        self._conn.close()

