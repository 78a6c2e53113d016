"""Contract of the FeatureStore port, run against SQLite and Cassandra/Scylla."""

import time

from vahini.ports.feature_store import FeatureRow, write_timestamp_us


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


def test_a_bulk_read_answers_as_read_does(feature_store, unique):
    """read_in_bulk (several keys per request on Cassandra) against read, over more keys than
    one request takes, with missing keys, repeated keys, several groups and expired rows."""
    e = f"user_{unique}"
    now = int(time.time() * 1000)
    feature_store.write([row(e, f"u{i}", now - i, bytes([i % 256]), group="gh"[i % 2]) for i in range(330)]
                        + [row(e, "gone", now - 10_000, b"x", ttl_s=1)])
    keys = [f"u{i}" for i in range(0, 340, 1)] + ["u7", "gone", "never"]
    bulk = feature_store.read_in_bulk(e, keys, ["g", "h"])
    assert bulk == feature_store.read(e, keys, ["g", "h"])
    assert len(bulk) == 330 and ("gone", "g") not in bulk
    assert feature_store.read_in_bulk(e, [], ["g"]) == {}


def test_rows_with_a_ttl_disappear_after_it(feature_store, unique):
    e = f"user_{unique}"
    now = int(time.time() * 1000)
    feature_store.write([row(e, "short", now, b"v", ttl_s=1), row(e, "forever", 1, b"v", ttl_s=0)])
    assert len(feature_store.read(e, ["short", "forever"], ["g"])) == 2
    deadline = time.monotonic() + 10
    while ("short", "g") in feature_store.read(e, ["short"], ["g"]):
        assert time.monotonic() < deadline, "row with ttl_s=1 still readable after 10 s"
        time.sleep(0.25)
    assert ("forever", "g") in feature_store.read(e, ["forever"], ["g"])


def test_ties_with_a_ttl_resolve_alike_in_both_arrival_orders_and_after_a_replay(feature_store, unique):
    """Cassandra 4+ reconciles equal-timestamp cells with a TTL by expiry first; the
    store's timestamps must keep the outcome a function of the rows alone."""
    e = f"user_{unique}"
    now = int(time.time() * 1000)
    blobs = [bytes([1, i]) for i in range(8)]
    # The tie-break has 1000 values; blobs sharing one fall back to the engine's own rule (see the port).
    assert len({write_timestamp_us(now, b) for b in blobs}) == len(blobs)
    rows = lambda key: [row(e, key, now, b, ttl_s=3600) for b in blobs]  # noqa: E731
    forward, backward = rows("forward"), rows("backward")
    for r in forward:
        feature_store.write([r])
        time.sleep(0.15)  # each write in its own second: a later expiry than the previous one
    for r in reversed(backward):
        feature_store.write([r])
        time.sleep(0.15)
    got = feature_store.read(e, ["forward", "backward"], ["g"])
    winner = max(forward, key=FeatureRow.precedence).blob
    assert got[("forward", "g")].blob == got[("backward", "g")].blob == winner
    feature_store.write([r for r in forward if r.blob != winner])  # a replay of the losers
    assert feature_store.read(e, ["forward"], ["g"])[("forward", "g")].blob == winner


def test_ttl_runs_from_event_time_and_expired_rows_are_not_written(feature_store, unique):
    e = f"user_{unique}"
    now = int(time.time() * 1000)
    feature_store.write([row(e, "backfill", now - 3_000, b"old", ttl_s=5),      # 2 s of life left
                         row(e, "dead", now - 10_000, b"dead", ttl_s=5),        # expired on arrival
                         row(e, "fresh", now, b"new", ttl_s=3600)])
    assert set(feature_store.read(e, ["backfill", "dead", "fresh"], ["g"])) == {("backfill", "g"), ("fresh", "g")}
    deadline = time.monotonic() + 10
    while ("backfill", "g") in feature_store.read(e, ["backfill"], ["g"]):
        assert time.monotonic() < deadline, "a row 3 s old with ttl_s=5 still readable 10 s later"
        time.sleep(0.2)
    assert ("fresh", "g") in feature_store.read(e, ["fresh"], ["g"])
