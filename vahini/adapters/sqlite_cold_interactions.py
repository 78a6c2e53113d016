"""Cold interaction tier on SQLite (embedded): one table keyed by
(user, type, event time, event id), so a replayed event is stored once."""

from __future__ import annotations

import json
import threading
import time
from typing import Sequence

from vahini.adapters.sqlite_util import connect, transaction, unavailable
from vahini.ports.interaction_store import HistoryQuery, StoredInteraction, newest_first

_SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    user_id TEXT NOT NULL, type TEXT NOT NULL, event_time_ms INTEGER NOT NULL, event_id TEXT NOT NULL,
    product_id TEXT NOT NULL, category_id TEXT, attributes TEXT NOT NULL,
    PRIMARY KEY (user_id, type, event_time_ms, event_id)) WITHOUT ROWID;
"""


class SqliteColdInteractions:
    def __init__(self, path: str, retention_s: int):
        self.path = path
        self.retention_s = retention_s
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def _oldest_kept_ms(self) -> int:
        return int(time.time() * 1000) - self.retention_s * 1000

    def write(self, items: Sequence[StoredInteraction], timeout_s: float | None = None) -> int:
        if not items:
            return 0
        rows = [(i.user_id, i.type, i.event_time_ms, i.event_id, i.product_id, i.category_id,
                 json.dumps(dict(i.attributes), sort_keys=True)) for i in items]
        with self._lock, unavailable(f"SQLite interactions {self.path}"), transaction(self._conn):
            self._conn.executemany("INSERT OR IGNORE INTO interactions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return len({i.user_id for i in items})  # one transaction; counted per user, as Cassandra's partitions

    def read(self, query: HistoryQuery, timeout_s: float | None = None) -> list[StoredInteraction]:
        since = max(query.since_ms or 0, self._oldest_kept_ms())
        until = query.until_ms if query.until_ms is not None else 2**62
        marks = ",".join("?" * len(query.types))
        with self._lock, unavailable(f"SQLite interactions {self.path}"):
            rows = self._conn.execute(
                f"SELECT event_id, user_id, product_id, category_id, type, event_time_ms, attributes "
                f"FROM interactions WHERE user_id = ? AND type IN ({marks}) AND event_time_ms >= ? "
                f"AND event_time_ms < ? ORDER BY event_time_ms DESC, event_id DESC LIMIT ?",
                (query.user_id, *query.types, since, until, query.limit)).fetchall()
        return newest_first([StoredInteraction(e, u, p, c, t, ms, json.loads(a)) for e, u, p, c, t, ms, a in rows])

    def read_many(self, queries: Sequence[HistoryQuery], timeout_s: float | None = None) -> list[list[StoredInteraction]]:
        return [self.read(q, timeout_s) for q in queries]

    def trim(self, user_id: str, type_: str, keep_newest: int, timeout_s: float | None = None) -> int:
        with self._lock, unavailable(f"SQLite interactions {self.path}"), transaction(self._conn):
            cursor = self._conn.execute(
                "DELETE FROM interactions WHERE user_id = ? AND type = ? AND (event_time_ms, event_id) NOT IN "
                "(SELECT event_time_ms, event_id FROM interactions WHERE user_id = ? AND type = ? "
                " ORDER BY event_time_ms DESC, event_id DESC LIMIT ?)", (user_id, type_, user_id, type_, keep_newest))
        return 1 if cursor.rowcount else 0

    def close(self) -> None:
        self._conn.close()
