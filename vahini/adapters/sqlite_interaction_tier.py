"""Interaction hot tier on SQLite (embedded): one file that the worker, the server
and `vahini history` on this machine all see. Each call is one transaction."""

from __future__ import annotations

import threading
import uuid
from functools import partial
from typing import Callable, Mapping, Sequence

from vahini.adapters.sqlite_util import connect, transaction, unavailable
from vahini.errors import HotTierLost
from vahini.ports.interaction_store import HistoryQuery, OpenSession, StoredInteraction, newest_first

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hot_sessions (user_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
    partition INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS hot_sessions_by_partition ON hot_sessions (partition);
CREATE TABLE IF NOT EXISTS hot_interactions (user_id TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL, body TEXT NOT NULL, dirty INTEGER NOT NULL,
    PRIMARY KEY (user_id, event_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hot_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hot_window_timers (user_id TEXT PRIMARY KEY, partition INTEGER NOT NULL,
    due_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS hot_window_timers_due ON hot_window_timers (partition, due_ms);
"""


class SqliteInteractionTier:
    def __init__(self, path: str):
        self.path = path
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def _read(self, sql: str, params: tuple = ()) -> list:
        with self._lock, unavailable(f"SQLite interaction tier {self.path}"):
            return self._conn.execute(sql, params).fetchall()

    def _write(self, *statements: tuple[str, tuple | list, bool]) -> None:
        """(sql, params, many) in one transaction."""
        with self._lock, unavailable(f"SQLite interaction tier {self.path}"), transaction(self._conn):
            for sql, params, many in statements:
                (self._conn.executemany if many else self._conn.execute)(sql, params)

    def session(self, user_id: str) -> OpenSession | None:
        rows = self._read("SELECT session_id, partition, last_seen_ms FROM hot_sessions WHERE user_id = ?", (user_id,))
        return OpenSession(user_id, *rows[0]) if rows else None

    @staticmethod
    def _rows(user_id: str, items: Sequence[StoredInteraction], dirty: int) -> list[tuple]:
        return [(user_id, i.event_id, i.type, i.event_time_ms, i.to_json(), dirty) for i in items]

    def load(self, session: OpenSession, history: Sequence[StoredInteraction]) -> None:
        self.load_many([(session, history)])

    def load_many(self, loads: Sequence[tuple[OpenSession, Sequence[StoredInteraction]]]) -> None:
        self._write(
            ("INSERT OR IGNORE INTO hot_interactions VALUES (?, ?, ?, ?, ?, ?)",
             [row for session, history in loads for row in self._rows(session.user_id, history, 0)], True),
            ("INSERT OR REPLACE INTO hot_sessions VALUES (?, ?, ?, ?)",
             [(s.user_id, s.session_id, s.partition, s.last_seen_ms) for s, _ in loads], True))

    def append(self, user_id: str, items: Sequence[StoredInteraction], now_ms: int, partition: int) -> bool:
        return user_id in self.append_many({user_id: (partition, items)}, now_ms)

    def append_many(self, appends: Mapping[str, tuple[int, Sequence[StoredInteraction]]], now_ms: int) -> set[str]:
        # An event id already held keeps its row; if it was flushed, it stays flushed.
        appended = set()
        with self._lock, unavailable(f"SQLite interaction tier {self.path}"), transaction(self._conn):
            for user_id, (_, items) in appends.items():
                if self._conn.execute("UPDATE hot_sessions SET last_seen_ms = MAX(last_seen_ms, ?) "
                                      "WHERE user_id = ?", (now_ms, user_id)).rowcount:
                    self._conn.executemany("INSERT OR IGNORE INTO hot_interactions VALUES (?, ?, ?, ?, ?, ?)",
                                           self._rows(user_id, items, 1))
                    appended.add(user_id)
        return appended

    def touch(self, user_id: str, now_ms: int, partition: int) -> bool:
        return self.append(user_id, [], now_ms, partition)

    def dirty(self, users: Sequence[str], generation: str) -> dict[str, list[StoredInteraction]]:
        out: dict[str, list[StoredInteraction]] = {}
        with self._lock, unavailable(f"SQLite interaction tier {self.path}"), transaction(self._conn):
            current = self._conn.execute("SELECT value FROM hot_meta WHERE name = 'generation'").fetchone()
            if current is None or current[0] != generation:
                raise HotTierLost(f"the interaction hot tier {self.path} has generation {current}, not {generation!r}")
            for user_id in users:
                rows = self._conn.execute("SELECT body FROM hot_interactions WHERE user_id = ? AND dirty = 1",
                                          (user_id,)).fetchall()
                if rows:
                    out[user_id] = [StoredInteraction.from_json(b) for (b,) in rows]
        return out

    def mark_flushed(self, flushed: Mapping[str, Sequence[str]]) -> None:
        self._write(("UPDATE hot_interactions SET dirty = 0 WHERE user_id = ? AND event_id = ?",
                     [(u, e) for u, ids in flushed.items() for e in ids], True))

    def evict(self, users: Sequence[str]) -> set[str]:
        evicted = set()
        with self._lock, unavailable(f"SQLite interaction tier {self.path}"), transaction(self._conn):
            for user_id in users:
                if self._conn.execute("SELECT 1 FROM hot_interactions WHERE user_id = ? AND dirty = 1 LIMIT 1",
                                      (user_id,)).fetchone():
                    continue
                self._conn.execute("DELETE FROM hot_interactions WHERE user_id = ?", (user_id,))
                self._conn.execute("DELETE FROM hot_sessions WHERE user_id = ?", (user_id,))
                evicted.add(user_id)
        return evicted

    def sessions(self, partition: int) -> list[OpenSession]:
        rows = self._read("SELECT user_id, session_id, partition, last_seen_ms FROM hot_sessions WHERE partition = ?",
                          (partition,))
        return [OpenSession(*r) for r in rows]

    def read(self, query: HistoryQuery) -> list[StoredInteraction] | None:
        if self.session(query.user_id) is None:
            return None
        marks = ",".join("?" * len(query.types))
        rows = self._read(
            f"SELECT body FROM hot_interactions WHERE user_id = ? AND type IN ({marks}) AND event_time_ms >= ? "
            f"AND event_time_ms < ? ORDER BY event_time_ms DESC, event_id DESC LIMIT ?",
            (query.user_id, *query.types, query.since_ms or 0,
             2**62 if query.until_ms is None else query.until_ms, query.limit))
        return newest_first([StoredInteraction.from_json(b) for (b,) in rows])

    def start_read(self, query: HistoryQuery) -> Callable[[], list[StoredInteraction] | None]:
        return partial(self.read, query)  # an embedded read: nothing to overlap, read when asked

    def read_many(self, queries: Sequence[HistoryQuery]) -> list[list[StoredInteraction] | None]:
        return [self.read(q) for q in queries]

    def schedule(self, due: Mapping[str, tuple[int, int]]) -> None:
        self._write(("INSERT OR REPLACE INTO hot_window_timers VALUES (?, ?, ?)",
                     [(u, p, ms) for u, (p, ms) in due.items()], True))

    def take_due(self, partitions: Sequence[int], now_ms: int) -> dict[str, int]:
        marks = ",".join("?" * len(partitions))
        with self._lock, unavailable(f"SQLite interaction tier {self.path}"), transaction(self._conn):
            due = dict(self._conn.execute(
                f"SELECT user_id, partition FROM hot_window_timers WHERE partition IN ({marks}) AND due_ms <= ?",
                (*partitions, now_ms)).fetchall())
            self._conn.executemany("DELETE FROM hot_window_timers WHERE user_id = ?", [(u,) for u in due])
        return due

    def trim(self, user_id: str, type_: str, keep_newest: int) -> None:
        self._write(("DELETE FROM hot_interactions WHERE user_id = ? AND type = ? AND dirty = 0 AND event_id NOT IN "
                     "(SELECT event_id FROM hot_interactions WHERE user_id = ? AND type = ? "
                     " ORDER BY event_time_ms DESC, event_id DESC LIMIT ?)",
                     (user_id, type_, user_id, type_, keep_newest), False))

    def generation(self) -> str:
        self._write(("INSERT OR IGNORE INTO hot_meta VALUES ('generation', ?)", (uuid.uuid4().hex,), False))
        return self._read("SELECT value FROM hot_meta WHERE name = 'generation'")[0][0]

    def close(self) -> None:
        self._conn.close()
