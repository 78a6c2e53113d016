"""The embedded SQLite adapters under errors: a locked database is a retriable
StoreUnavailable, and a failed write never leaves the connection inside a transaction."""

import sqlite3

import pytest

from vahini.adapters.sqlite_feature_store import SqliteFeatureStore
from vahini.errors import StoreUnavailable
from vahini.ports.feature_store import FeatureRow


def test_a_locked_database_is_store_unavailable_and_writes_resume_after(tmp_path):
    path = tmp_path / "f.db"
    store = SqliteFeatureStore(str(path), busy_timeout_s=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    with pytest.raises(StoreUnavailable) as info:
        store.write([FeatureRow("user", "k", "g", 1, b"v")])
    assert info.value.retriable and "locked" in str(info.value)
    other.execute("ROLLBACK")
    store.write([FeatureRow("user", "k", "g", 1, b"v")])
    assert store.read("user", ["k"], ["g"])[("k", "g")].blob == b"v"
    store.close()


def test_a_write_that_fails_midway_is_rolled_back_whole(tmp_path):
    store = SqliteFeatureStore(str(tmp_path / "f.db"))
    with pytest.raises(sqlite3.IntegrityError):  # a bug, not an outage: not retried
        store.write([FeatureRow("user", "a", "g", 1, b"a"), FeatureRow(None, "b", "g", 1, b"b")])
    assert store.read("user", ["a"], ["g"]) == {}  # the first row of the failed batch is gone too
    store.write([FeatureRow("user", "c", "g", 1, b"c")])  # the connection is usable: no open transaction
    assert store.read("user", ["c"], ["g"])[("c", "g")].blob == b"c"
    store.close()
