"""Embedded hot tier on SQLite, shared by every local process that opens the same
file: a worker's cache fences reach a separate `vahini serve`, as they would
through Redis. Expired entries read as absent and are purged as writes go by.
For one machine; not for production traffic."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from functools import partial
from typing import Callable, Mapping, Sequence

from vahini.adapters.sqlite_util import chunks, connect, transaction, unavailable
from vahini.ports.hot_tier import version_of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hot (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID
"""
_PURGE_EVERY_S = 10.0


class SqliteHotTier:
    def __init__(self, path: str):
        self._path = path
        with unavailable(f"SQLite hot tier {path}"):
            self._conn = connect(path)
            self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = time.time()
        for part in chunks(list(dict.fromkeys(keys)), 500):
            sql = f"SELECT key, value FROM hot WHERE key IN ({','.join('?' * len(part))}) AND expires_at > ?"
            with self._lock, unavailable(f"SQLite hot tier {self._path}"):
                found.update(self._conn.execute(sql, (*part, now)).fetchall())
        return [found.get(k) for k in keys]

    def start_get_many(self, keys: Sequence[str]) -> Callable[[], list[bytes | None]]:
        return partial(self.get_many, keys)  # an embedded read: nothing to overlap, read when asked

    def set_many(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        with self._writing():
            self._put(items, time.time() + ttl_s)

    def set_if_newer(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        now = time.time()
        with self._writing():
            current = dict(self._conn.execute(
                f"SELECT key, value FROM hot WHERE key IN ({','.join('?' * len(items))}) AND expires_at > ?",
                (*items, now)).fetchall()) if items else {}
            self._put({k: v for k, v in items.items() if k not in current or version_of(v) > version_of(current[k])},
                      now + ttl_s)

    def delete_many(self, keys: Sequence[str]) -> None:
        with self._writing():
            self._conn.executemany("DELETE FROM hot WHERE key = ?", [(k,) for k in keys])

    def _put(self, items: Mapping[str, bytes], expires_at: float) -> None:
        self._conn.executemany("INSERT OR REPLACE INTO hot VALUES (?, ?, ?)",
                               [(k, v, expires_at) for k, v in items.items()])
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + _PURGE_EVERY_S
            self._conn.execute("DELETE FROM hot WHERE expires_at <= ?", (time.time(),))

    @contextmanager
    def _writing(self):
        with self._lock, unavailable(f"SQLite hot tier {self._path}"), transaction(self._conn):
            yield

    def close(self) -> None:
        self._conn.close()
