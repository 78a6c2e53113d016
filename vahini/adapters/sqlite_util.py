"""SQLite connection settings shared by the embedded adapters."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

from vahini.errors import StoreUnavailable


def connect(path: str, busy_timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=FULL: a committed transaction
    survives kill -9 and power loss; readers never block the single writer."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return conn


def chunks(items: list, size: int = 500):
    """SQLite caps bound parameters per statement; query in slices."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


@contextmanager
def transaction(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error so the connection is
    never left inside an open transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def unavailable(what: str):
    """Operational SQLite errors (a locked or full database, an I/O error) become
    StoreUnavailable, so callers retry them as they retry a server that is down.
    Others (a constraint, a bad statement) are bugs and stay as they are."""
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.InternalError) as exc:
        raise StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
