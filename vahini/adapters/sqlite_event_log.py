"""Embedded event log on SQLite: topics with partitions, offsets, consumer groups
with committed offsets and replay from an offset or a timestamp.

Several processes may share one file (WAL mode). A group's partitions are split
among its live members (a member is live while it heartbeats); a member that
disappears is dropped after `session_timeout_ms`. For one machine; not a Kafka.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
import zlib
from base64 import b64decode, b64encode
from contextlib import contextmanager
from typing import Mapping, Sequence

from vahini.adapters.sqlite_util import connect, transaction, unavailable
from vahini.ports.event_log import Record, TopicPartition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_end (topic TEXT, partition INTEGER, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (topic TEXT, partition INTEGER, "offset" INTEGER, key BLOB, value BLOB,
    timestamp_ms INTEGER, headers TEXT, PRIMARY KEY (topic, partition, "offset")) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_time ON records (topic, partition, timestamp_ms);
CREATE TABLE IF NOT EXISTS group_offsets (grp TEXT, topic TEXT, partition INTEGER, "offset" INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (grp TEXT, member TEXT, heartbeat_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, member)) WITHOUT ROWID;
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str | None:
    return json.dumps([[k, b64encode(v).decode()] for k, v in headers]) if headers else None


def _decode_headers(text: str | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, b64decode(v)) for k, v in json.loads(text)) if text else ()


class SqliteEventLog:
    def __init__(self, path: str, default_partitions: int = 8, session_timeout_ms: int = 10_000,
                 busy_timeout_s: float = 30.0):
        self.path = path
        self.default_partitions = default_partitions
        self.session_timeout_ms = session_timeout_ms
        self._conn = connect(path, busy_timeout_s)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    # -- topics ---------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        n = partitions or self.default_partitions
        with self._lock, self._writing():
            self._conn.execute("INSERT OR IGNORE INTO topics VALUES (?, ?)", (topic, n))
            self._conn.executemany("INSERT OR IGNORE INTO log_end VALUES (?, ?, 0)", [(topic, p) for p in range(n)])

    def exists(self, topic: str) -> bool:
        with self._reading():
            return self._conn.execute("SELECT 1 FROM topics WHERE name = ?", (topic,)).fetchone() is not None

    def partitions(self, topic: str) -> int:
        with self._reading():
            row = self._conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is None:
            self.create_topic(topic)
            return self.partitions(topic)
        return row[0]

    def end_offsets(self, topic: str) -> dict[int, int]:
        self.partitions(topic)
        with self._reading():
            rows = self._conn.execute("SELECT partition, next_offset FROM log_end WHERE topic = ?", (topic,))
            return dict(rows.fetchall())

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        ends = self.end_offsets(topic)
        out = {}
        with self._reading():
            for p, end in ends.items():
                row = self._conn.execute(
                    'SELECT MIN("offset") FROM records WHERE topic = ? AND partition = ? AND timestamp_ms >= ?',
                    (topic, p, timestamp_ms)).fetchone()
                out[p] = end if row[0] is None else row[0]
        return out

    def committed(self, group: str, topic: str) -> dict[int, int]:
        with self._reading():
            rows = self._conn.execute('SELECT partition, "offset" FROM group_offsets WHERE grp = ? AND topic = ?',
                                      (group, topic))
            return dict(rows.fetchall())

    # -- clients --------------------------------------------------------------
    def producer(self) -> "SqliteLogProducer":
        return SqliteLogProducer(self)

    def consumer(self, group: str, topics: Sequence[str],
                 start_offsets: Mapping[TopicPartition, int] | None = None,
                 co_partitioned: bool = False) -> "SqliteLogConsumer":
        return SqliteLogConsumer(self, group, list(topics), start_offsets, co_partitioned)

    def close(self) -> None:
        self._conn.close()

    # -- used by the clients ----------------------------------------------------
    @contextmanager
    def _reading(self):
        """Reads under the connection's lock, SQLite errors as StoreUnavailable."""
        with self._lock, unavailable(f"SQLite event log {self.path}"):
            yield

    @contextmanager
    def _writing(self):
        """One write transaction: rolled back on error, SQLite errors as StoreUnavailable."""
        with unavailable(f"SQLite event log {self.path}"), transaction(self._conn):
            yield

    def _append(self, batch: list[tuple[str, bytes | None, bytes, int, str | None, int | None]]) -> None:
        """Append (topic, key, value, timestamp, headers, partition or None) in one transaction."""
        with self._lock, self._writing():
            counts = self._partition_counts({b[0] for b in batch})
            ends = {(t, p): o for t, p, o in self._conn.execute("SELECT topic, partition, next_offset FROM log_end")}
            rows, rr = [], itertools.count()
            for topic, key, value, ts, headers, partition in batch:
                if partition is None:
                    partition = (zlib.crc32(key) if key is not None else next(rr)) % counts[topic]
                offset = ends[(topic, partition)]
                ends[(topic, partition)] = offset + 1
                rows.append((topic, partition, offset, key, value, ts, headers))
            self._conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._conn.executemany("UPDATE log_end SET next_offset = ? WHERE topic = ? AND partition = ?",
                                   [(o, t, p) for (t, p), o in ends.items()])

    def _partition_counts(self, topics: set[str]) -> dict[str, int]:
        """Partitions per topic, creating `topics` that do not exist yet (inside the caller's transaction)."""
        counts = dict(self._conn.execute("SELECT name, partitions FROM topics").fetchall())
        for topic in topics - counts.keys():
            self._conn.execute("INSERT INTO topics VALUES (?, ?)", (topic, self.default_partitions))
            self._conn.executemany("INSERT INTO log_end VALUES (?, ?, 0)",
                                   [(topic, p) for p in range(self.default_partitions)])
            counts[topic] = self.default_partitions
        return counts

    def _fetch(self, tp: TopicPartition, offset: int, limit: int) -> list[Record]:
        with self._reading():
            rows = self._conn.execute(
                'SELECT "offset", key, value, timestamp_ms, headers FROM records '
                'WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (tp[0], tp[1], offset, limit)).fetchall()
        return [Record(tp[0], tp[1], o, k, v, ts, _decode_headers(h)) for o, k, v, ts, h in rows]

    def _heartbeat(self, group: str, member: str) -> list[str]:
        """Refresh `member`, drop members that stopped heartbeating; return live members."""
        now = _now_ms()
        with self._lock, self._writing():
            self._conn.execute("INSERT OR REPLACE INTO group_members VALUES (?, ?, ?)", (group, member, now))
            self._conn.execute("DELETE FROM group_members WHERE grp = ? AND heartbeat_ms < ?",
                               (group, now - self.session_timeout_ms))
            members = [m for (m,) in self._conn.execute(
                "SELECT member FROM group_members WHERE grp = ? ORDER BY member", (group,))]
        return members

    def _leave(self, group: str, member: str) -> None:
        with self._lock, self._writing():
            self._conn.execute("DELETE FROM group_members WHERE grp = ? AND member = ?", (group, member))

    def _commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self._lock, self._writing():
            self._conn.executemany('INSERT OR REPLACE INTO group_offsets VALUES (?, ?, ?, ?)',
                                   [(group, t, p, o) for (t, p), o in offsets.items()])


class SqliteLogProducer:
    """Buffers sends; `flush` appends them durably in one transaction."""

    def __init__(self, log: SqliteEventLog, max_buffer: int = 20_000):
        self._log = log
        self._buffer: list = []
        self._max = max_buffer
        self._lock = threading.Lock()

    def send(self, topic: str, value: bytes, key: bytes | None = None,
             timestamp_ms: int | None = None, headers: Sequence[tuple[str, bytes]] = (),
             partition: int | None = None) -> None:
        with self._lock:
            self._buffer.append((topic, key, value, timestamp_ms or _now_ms(), _encode_headers(headers), partition))
            full = len(self._buffer) >= self._max
        if full:
            self.flush()

    def flush(self, timeout_s: float = 30.0) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:  # on failure the batch is dropped, as Kafka drops undelivered records: callers resend
            self._log._append(batch)

    def close(self) -> None:
        self.flush()


class SqliteLogConsumer:
    def __init__(self, log: SqliteEventLog, group: str, topics: list[str],
                 start_offsets: Mapping[TopicPartition, int] | None, co_partitioned: bool = False):
        self._log = log
        self._co_partitioned = co_partitioned
        self._group = group
        self._topics = topics
        self._member = f"{uuid.uuid4()}"
        self._static = start_offsets is not None
        self._positions: dict[TopicPartition, int] = dict(start_offsets or {})
        self._next_rebalance = 0.0
        self._rotation = 0

    def _all_partitions(self) -> list[TopicPartition]:
        return [(t, p) for t in sorted(self._topics) for p in range(self._log.partitions(t))]

    def _rebalance(self) -> None:
        if self._static or time.monotonic() < self._next_rebalance:
            return
        self._next_rebalance = time.monotonic() + 0.5
        members = self._log._heartbeat(self._group, self._member)
        index = members.index(self._member)
        if self._co_partitioned:
            mine = [tp for tp in self._all_partitions() if tp[1] % len(members) == index]
        else:
            mine = [tp for i, tp in enumerate(self._all_partitions()) if i % len(members) == index]
        if set(mine) != set(self._positions):
            committed = {(t, p): o for t in self._topics for p, o in self._log.committed(self._group, t).items()}
            self._positions = {tp: self._positions.get(tp, committed.get(tp, 0)) for tp in mine}

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while True:
            self._rebalance()
            records = self._fetch_round(max_records)
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def _fetch_round(self, max_records: int) -> list[Record]:
        """Take from the assigned partitions in rotation so none starves."""
        tps = sorted(self._positions)
        if not tps:
            return []
        self._rotation = (self._rotation + 1) % len(tps)
        out: list[Record] = []
        for tp in tps[self._rotation:] + tps[:self._rotation]:
            if len(out) >= max_records:
                break
            got = self._log._fetch(tp, self._positions[tp], max_records - len(out))
            if got:
                self._positions[tp] = got[-1].offset + 1
                out.extend(got)
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._log._commit(self._group, offsets)

    def assignment(self) -> list[TopicPartition]:
        self._rebalance()
        return sorted(self._positions)

    def position(self, tp: TopicPartition) -> int | None:
        return self._positions.get(tp)

    def lag(self) -> dict[TopicPartition, int]:
        ends = {(t, p): o for t in self._topics for p, o in self._log.end_offsets(t).items()}
        return {tp: max(0, ends[tp] - pos) for tp, pos in self._positions.items()}

    def close(self) -> None:
        if not self._static:
            self._log._leave(self._group, self._member)
