"""Embedded feature store on SQLite. One process writes at a time; for a single
machine and for tests, not for production traffic."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Sequence

from vahini.adapters.sqlite_util import chunks, connect, transaction, unavailable
from vahini.ports.feature_store import FeatureRow, write_timestamp_us

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feature_rows (
    entity TEXT NOT NULL, key TEXT NOT NULL, grp TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL, blob BLOB NOT NULL, expires_at_ms INTEGER,
    write_ts_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (entity, key, grp)
) WITHOUT ROWID
"""

# The port's rule, as Cassandra reconciles cells: the greater write timestamp
# wins, and on a tie the greater value, so the outcome never depends on arrival order.
_UPSERT = """
INSERT INTO feature_rows (entity, key, grp, event_time_ms, blob, expires_at_ms, write_ts_us)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (entity, key, grp) DO UPDATE SET
    event_time_ms = excluded.event_time_ms, blob = excluded.blob, expires_at_ms = excluded.expires_at_ms,
    write_ts_us = excluded.write_ts_us
WHERE excluded.write_ts_us > feature_rows.write_ts_us
   OR (excluded.write_ts_us = feature_rows.write_ts_us AND excluded.blob > feature_rows.blob)
"""
# An expired row still shadows older writes until replaced by a newer one, as an
# expired Cassandra cell (a tombstone with its write timestamp) does.


def _add_write_timestamps(conn: sqlite3.Connection) -> None:
    """Databases made before write_ts_us existed: add it, from the event time."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(feature_rows)")}
    if "write_ts_us" not in columns:
        conn.execute("ALTER TABLE feature_rows ADD COLUMN write_ts_us INTEGER NOT NULL DEFAULT 0")
        conn.execute("UPDATE feature_rows SET write_ts_us = event_time_ms * 1000")


class SqliteFeatureStore:
    def __init__(self, path: str, busy_timeout_s: float = 30.0):
        self._path = path
        with unavailable(f"SQLite feature store {path}"):
            self._conn = connect(path, busy_timeout_s)
            self._conn.execute(_SCHEMA)
            _add_write_timestamps(self._conn)
        self._lock = threading.Lock()

    def write(self, rows: Sequence[FeatureRow], timeout_s: float | None = None) -> None:
        now = int(time.time() * 1000)
        params = [(r.entity, r.key, r.group, r.event_time_ms, r.blob, r.expires_at_ms(),
                   write_timestamp_us(r.event_time_ms, r.blob))
                  for r in rows if (r.expires_at_ms() or now + 1) > now]
        with self._lock, unavailable(f"SQLite feature store {self._path}"), transaction(self._conn):
            self._conn.executemany(_UPSERT, params)

    def read_in_bulk(self, entity: str, keys: Sequence[str], groups: Sequence[str],
                     timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        return self.read(entity, keys, groups, timeout_s)  # one query per key is what SQLite does best

    def read(self, entity: str, keys: Sequence[str], groups: Sequence[str],
             timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        now = int(time.time() * 1000)
        found: dict[tuple[str, str], FeatureRow] = {}
        group_marks = ",".join("?" * len(groups))
        for part in chunks(list(dict.fromkeys(keys)), 400):
            sql = (f"SELECT key, grp, event_time_ms, blob FROM feature_rows WHERE entity = ? "
                   f"AND key IN ({','.join('?' * len(part))}) AND grp IN ({group_marks}) "
                   f"AND (expires_at_ms IS NULL OR expires_at_ms > ?)")
            with self._lock, unavailable(f"SQLite feature store {self._path}"):
                result = self._conn.execute(sql, (entity, *part, *groups, now)).fetchall()
            for key, grp, ts, blob in result:
                found[(key, grp)] = FeatureRow(entity, key, grp, ts, blob)
        return found

    def close(self) -> None:
        self._conn.close()
