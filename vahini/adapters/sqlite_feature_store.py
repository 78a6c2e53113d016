"""Embedded feature store on SQLite. One process writes at a time; for a single
machine and for tests, not for production traffic."""

from __future__ import annotations

import threading
import time
from typing import Sequence

from vahini.adapters.sqlite_util import chunks, connect
from vahini.ports.feature_store import FeatureRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feature_rows (
    entity TEXT NOT NULL, key TEXT NOT NULL, grp TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL, blob BLOB NOT NULL, expires_at_ms INTEGER,
    PRIMARY KEY (entity, key, grp)
) WITHOUT ROWID
"""

# Same rule as Cassandra's cell reconciliation: newer timestamp wins, a tie goes
# to the greater value, so the outcome never depends on arrival order.
_UPSERT = """
INSERT INTO feature_rows (entity, key, grp, event_time_ms, blob, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (entity, key, grp) DO UPDATE SET
    event_time_ms = excluded.event_time_ms, blob = excluded.blob, expires_at_ms = excluded.expires_at_ms
WHERE excluded.event_time_ms > feature_rows.event_time_ms
   OR (excluded.event_time_ms = feature_rows.event_time_ms AND excluded.blob > feature_rows.blob)
"""
# An expired row still shadows older writes until replaced by a newer one, as an
# expired Cassandra cell (a tombstone with its write timestamp) does.


class SqliteFeatureStore:
    def __init__(self, path: str):
        self._conn = connect(path)
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def write(self, rows: Sequence[FeatureRow]) -> None:
        now = int(time.time() * 1000)
        params = [
            (r.entity, r.key, r.group, r.event_time_ms, r.blob, now + r.ttl_s * 1000 if r.ttl_s else None)
            for r in rows
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(_UPSERT, params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def read(self, entity: str, keys: Sequence[str], groups: Sequence[str]) -> dict[tuple[str, str], FeatureRow]:
        now = int(time.time() * 1000)
        found: dict[tuple[str, str], FeatureRow] = {}
        group_marks = ",".join("?" * len(groups))
        for part in chunks(list(dict.fromkeys(keys)), 400):
            sql = (f"SELECT key, grp, event_time_ms, blob FROM feature_rows WHERE entity = ? "
                   f"AND key IN ({','.join('?' * len(part))}) AND grp IN ({group_marks}) "
                   f"AND (expires_at_ms IS NULL OR expires_at_ms > ?)")
            with self._lock:
                result = self._conn.execute(sql, (entity, *part, *groups, now)).fetchall()
            for key, grp, ts, blob in result:
                found[(key, grp)] = FeatureRow(entity, key, grp, ts, blob)
        return found

    def close(self) -> None:
        self._conn.close()
