"""SQLite connection settings shared by the embedded adapters."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=FULL: a committed transaction
    survives kill -9 and power loss; readers never block the single writer."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def chunks(items: list, size: int = 500):
    """SQLite caps bound parameters per statement; query in slices."""
    for i in range(0, len(items), size):
        yield items[i:i + size]
