"""Window states on SQLite (embedded): one row per user, with its expiry time."""

from __future__ import annotations

import threading
import time
from typing import Mapping, Sequence

from vahini.adapters.sqlite_util import chunks, connect, transaction, unavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS interaction_windows (
    user_id TEXT PRIMARY KEY, state BLOB NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;
"""


class SqliteWindowStates:
    def __init__(self, path: str):
        self.path = path
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def read_many(self, users: Sequence[str], timeout_s: float | None = None) -> dict[str, bytes]:
        now, out = int(time.time() * 1000), {}
        with self._lock, unavailable(f"SQLite window states {self.path}"):
            for part in chunks(list(users)):
                marks = ",".join("?" * len(part))
                out.update(self._conn.execute(f"SELECT user_id, state FROM interaction_windows WHERE user_id IN "
                                              f"({marks}) AND expires_ms > ?", [*part, now]).fetchall())
        return out

    def write_many(self, states: Mapping[str, bytes], ttl_s: int, timeout_s: float | None = None) -> None:
        expires = int(time.time() * 1000) + ttl_s * 1000
        with self._lock, unavailable(f"SQLite window states {self.path}"), transaction(self._conn):
            self._conn.executemany("INSERT OR REPLACE INTO interaction_windows VALUES (?, ?, ?)",
                                   [(u, s, expires) for u, s in states.items()])

    def close(self) -> None:
        self._conn.close()
