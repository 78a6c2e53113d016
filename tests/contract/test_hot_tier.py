"""Contract of the HotTier port, run against in-process memory, SQLite and Redis."""

import time


def test_values_come_back_in_key_order_with_none_for_absent(hot_tier, unique):
    hot_tier.set_many({f"{unique}:a": b"1", f"{unique}:c": b"\x00\xff"}, ttl_s=30)
    assert hot_tier.get_many([f"{unique}:a", f"{unique}:b", f"{unique}:c"]) == [b"1", None, b"\x00\xff"]


def test_empty_value_is_distinct_from_absent(hot_tier, unique):
    hot_tier.set_many({f"{unique}:neg": b""}, ttl_s=30)
    assert hot_tier.get_many([f"{unique}:neg"]) == [b""]


def test_delete_removes_only_named_keys(hot_tier, unique):
    hot_tier.set_many({f"{unique}:x": b"x", f"{unique}:y": b"y"}, ttl_s=30)
    hot_tier.delete_many([f"{unique}:x", f"{unique}:never-set"])
    assert hot_tier.get_many([f"{unique}:x", f"{unique}:y"]) == [None, b"y"]


def test_entries_expire_after_their_ttl(hot_tier, unique):
    hot_tier.set_many({f"{unique}:short": b"s"}, ttl_s=0.2)
    hot_tier.set_many({f"{unique}:long": b"l"}, ttl_s=30)
    deadline = time.monotonic() + 5
    while hot_tier.get_many([f"{unique}:short"]) != [None]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert hot_tier.get_many([f"{unique}:long"]) == [b"l"]


def test_empty_calls_are_no_ops(hot_tier, unique):
    hot_tier.set_many({f"{unique}:kept": b"k"}, ttl_s=30)
    assert hot_tier.get_many([]) == []
    hot_tier.set_many({}, ttl_s=1)
    hot_tier.set_if_newer({}, ttl_s=1)
    hot_tier.delete_many([])
    assert hot_tier.get_many([f"{unique}:kept"]) == [b"k"]


def versioned(version: int, tag: bytes, payload: bytes = b"") -> bytes:
    from vahini.ports.hot_tier import version_header

    return version_header(version, tag) + payload


def test_set_if_newer_writes_absent_keys_and_higher_versions_only(hot_tier, unique):
    k = lambda name: f"{unique}:{name}"  # noqa: E731
    hot_tier.set_if_newer({k("a"): versioned(5, b"V", b"five"), k("b"): versioned(5, b"V", b"five")}, ttl_s=30)
    hot_tier.set_if_newer({k("a"): versioned(4, b"V", b"four"),     # older: refused
                           k("b"): versioned(6, b"F"),              # newer: written
                           k("c"): versioned(1, b"N")}, ttl_s=30)   # absent: written
    assert hot_tier.get_many([k("a"), k("b"), k("c")]) == [versioned(5, b"V", b"five"), versioned(6, b"F"),
                                                            versioned(1, b"N")]


def test_set_if_newer_breaks_equal_versions_by_tag(hot_tier, unique):
    key = f"{unique}:tag"
    hot_tier.set_if_newer({key: versioned(7, b"F")}, ttl_s=30)
    hot_tier.set_if_newer({key: versioned(7, b"V", b"value")}, ttl_s=30)  # V > F
    hot_tier.set_if_newer({key: versioned(7, b"F")}, ttl_s=30)            # F < V: refused
    assert hot_tier.get_many([key]) == [versioned(7, b"V", b"value")]


def test_set_if_newer_over_an_expired_entry_writes(hot_tier, unique):
    key = f"{unique}:old"
    hot_tier.set_if_newer({key: versioned(9, b"V")}, ttl_s=0.1)
    time.sleep(0.3)
    hot_tier.set_if_newer({key: versioned(3, b"V")}, ttl_s=30)
    assert hot_tier.get_many([key]) == [versioned(3, b"V")]


def test_concurrent_conditional_writers_leave_the_highest_version(hot_tier, unique):
    import random
    import threading

    keys = [f"{unique}:c{i}" for i in range(20)]
    versions = list(range(1, 201))
    random.Random(7).shuffle(versions)

    def writer(mine: list[int]) -> None:
        for v in mine:
            hot_tier.set_if_newer({k: versioned(v, b"V") for k in keys}, ttl_s=30)

    threads = [threading.Thread(target=writer, args=(versions[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hot_tier.get_many(keys) == [versioned(200, b"V")] * len(keys)


def test_a_read_in_two_steps_answers_as_get_many_even_with_another_read_in_flight(hot_tier, unique):
    k = lambda name: f"{unique}:{name}"  # noqa: E731
    hot_tier.set_many({k("a"): b"1", k("b"): b"2"}, ttl_s=30)
    first = hot_tier.start_get_many([k("a"), k("missing")])
    second = hot_tier.start_get_many([k("b"), k("a")])  # sent before the first is answered
    assert second() == [b"2", b"1"]
    assert first() == [b"1", None]
    assert hot_tier.start_get_many([])() == []
    assert hot_tier.get_many([k("a")]) == [b"1"]  # nothing left unread on a reused connection
