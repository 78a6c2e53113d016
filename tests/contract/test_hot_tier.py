"""Contract of the HotTier port, run against in-process memory and Redis."""

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


def test_empty_calls_are_no_ops(hot_tier):
    assert hot_tier.get_many([]) == []
    hot_tier.set_many({}, ttl_s=1)
    hot_tier.delete_many([])
