"""Contract of the FeatureStore port, run against SQLite and Cassandra/Scylla."""

import time

from vahini.ports.feature_store import FeatureRow


def row(entity, key, ts, blob, group="g", ttl_s=0):
    return FeatureRow(entity, key, group, ts, blob, ttl_s)


def test_written_rows_read_back(feature_store, unique):
    e = f"user_{unique}"
    feature_store.write([row(e, "k1", 10, b"a"), row(e, "k2", 11, b"b", group="h")])
    got = feature_store.read(e, ["k1", "k2", "absent"], ["g", "h"])
    assert {k: (r.event_time_ms, r.blob) for k, r in got.items()} == {("k1", "g"): (10, b"a"), ("k2", "h"): (11, b"b")}


def test_newer_event_time_wins_in_any_arrival_order(feature_store, unique):
    e = f"user_{unique}"
    feature_store.write([row(e, "new-first", 200, b"new")])
    feature_store.write([row(e, "new-first", 100, b"old")])
    feature_store.write([row(e, "old-first", 100, b"old")])
    feature_store.write([row(e, "old-first", 200, b"new")])
    got = feature_store.read(e, ["new-first", "old-first"], ["g"])
    assert got[("new-first", "g")].blob == b"new"
    assert got[("old-first", "g")].blob == b"new"


def test_equal_event_times_resolve_to_the_greater_blob_whatever_the_order(feature_store, unique):
    e = f"user_{unique}"
    feature_store.write([row(e, "x", 100, b"\x01")])
    feature_store.write([row(e, "x", 100, b"\x02")])
    feature_store.write([row(e, "y", 100, b"\x02")])
    feature_store.write([row(e, "y", 100, b"\x01")])
    got = feature_store.read(e, ["x", "y"], ["g"])
    assert got[("x", "g")].blob == got[("y", "g")].blob == b"\x02"


def test_replaying_the_same_rows_changes_nothing(feature_store, unique):
    e = f"user_{unique}"
    rows = [row(e, f"k{i}", 1000 + i, bytes([i])) for i in range(50)]
    feature_store.write(rows)
    first = feature_store.read(e, [r.key for r in rows], ["g"])
    feature_store.write(list(reversed(rows)))
    assert feature_store.read(e, [r.key for r in rows], ["g"]) == first
    assert len(first) == 50


def test_many_keys_in_one_read(feature_store, unique):
    e = f"product_{unique}"
    feature_store.write([row(e, f"p{i}", 1, b"v") for i in range(1200)])
    got = feature_store.read(e, [f"p{i}" for i in range(1200)] + ["p-missing"], ["g"])
    assert len(got) == 1200


def test_rows_with_a_ttl_disappear_after_it(feature_store, unique):
    e = f"user_{unique}"
    feature_store.write([row(e, "short", 1, b"v", ttl_s=1), row(e, "forever", 1, b"v", ttl_s=0)])
    assert len(feature_store.read(e, ["short", "forever"], ["g"])) == 2
    deadline = time.monotonic() + 10
    while ("short", "g") in feature_store.read(e, ["short"], ["g"]):
        assert time.monotonic() < deadline, "row with ttl_s=1 still readable after 10 s"
        time.sleep(0.25)
    assert ("forever", "g") in feature_store.read(e, ["forever"], ["g"])
