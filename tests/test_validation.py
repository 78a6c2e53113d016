"""Validation rules shared by the producer, the worker and Persist."""

import math

import pytest

from vahini.demo import SAMPLE_REGISTRY
from vahini.errors import InvalidEvent
from vahini.registry.loader import load_registry
from vahini.validation import EventLimits, validate_feature_update

REGISTRY = load_registry(SAMPLE_REGISTRY)
NOW = 1_800_000_000_000


def event(**overrides):
    base = {"entity": "user", "keys": {"user_id": "u1"}, "group": "user_profile",
            "values": {"account_age_days": 3, "embedding": [0.5] * 16}, "event_time_ms": NOW}
    return {**base, **overrides}


def reason(e) -> str:
    with pytest.raises(InvalidEvent) as info:
        validate_feature_update(e, REGISTRY, NOW, EventLimits(max_future_skew_ms=60_000))
    return info.value.reason


def test_a_valid_update_gives_its_storage_key():
    valid = validate_feature_update(event(entity="user_category", group="user_category_affinity",
                                          keys={"user_id": "u1", "category_id": "c9"}, values={"clicks_30d": 1}),
                                    REGISTRY, NOW, EventLimits(max_future_skew_ms=0))
    assert valid.key == "u1|c9" and valid.group.name == "user_category_affinity"


@pytest.mark.parametrize("vector, expected", [
    ([0.5] * 15, "wrong_vector_length"),
    ([0.5] * 15 + [math.nan], "out_of_range"),
    ([0.5] * 15 + [math.inf], "out_of_range"),
    ([0.5] * 15 + [1e39], "out_of_range"),
    ([0.5] * 15 + [-1e39], "out_of_range"),
    ([0.5] * 15 + ["x"], "wrong_type"),
    ([0.5] * 15 + [True], "wrong_type"),
    ("not a list", "wrong_type"),
])
def test_vectors_are_checked_whole(vector, expected):
    assert reason(event(values={"embedding": vector})) == expected


def test_integer_vector_elements_are_accepted():
    valid = validate_feature_update(event(values={"embedding": [1] * 16}), REGISTRY, NOW, EventLimits(max_future_skew_ms=0))
    assert valid.values["embedding"] == [1] * 16 and valid.group.name == "user_profile"


@pytest.mark.parametrize("values, expected", [
    ({"account_age_days": True}, "wrong_type"),
    ({"account_age_days": 1.5}, "wrong_type"),
    ({"account_age_days": 2**63}, "out_of_range"),
    ({"avg_order_value": math.nan}, "out_of_range"),
    ({"avg_order_value": "1"}, "wrong_type"),
    ({"is_premium": 1}, "wrong_type"),
    ({"city": 7}, "wrong_type"),
    ({"shoe_size": 9}, "unknown_feature"),
])
def test_scalar_rules(values, expected):
    assert reason(event(values=values)) == expected


@pytest.mark.parametrize("overrides, expected", [
    ({"keys": {"user_id": "a|b"}}, "invalid_key"),
    ({"keys": {"user_id": ""}}, "missing_key"),
    ({"keys": {"user_id": "u", "shop_id": "s"}}, "unknown_key"),
    ({"group": "product_core"}, "unknown_group"),
    ({"event_time_ms": NOW + 60_001}, "future_event_time"),
    ({"event_time_ms": -1}, "out_of_range"),
])
def test_key_group_and_time_rules(overrides, expected):
    assert reason(event(**overrides)) == expected


def test_event_time_within_the_allowed_skew_is_accepted():
    assert validate_feature_update(event(event_time_ms=NOW + 60_000), REGISTRY, NOW, EventLimits(max_future_skew_ms=60_000)).event_time_ms == \
        NOW + 60_000


@pytest.mark.parametrize("overrides", [
    {"keys": {"user_id": "k" * 257}},
    {"keys": {"user_id": "é" * 129}},  # 258 bytes in UTF-8, 129 characters
    {"values": {"city": "c" * 65_537}},
])
def test_oversized_keys_and_strings_are_too_large(overrides):
    assert reason(event(**overrides)) == "too_large"


def test_size_limits_are_configurable_and_the_message_names_the_setting():
    limits = EventLimits(max_key_bytes=4, max_string_bytes=8)
    assert validate_feature_update(event(keys={"user_id": "abcd"}, values={"city": "x" * 8}), REGISTRY, NOW, limits)
    with pytest.raises(InvalidEvent, match=r"feature 'city' is 9 bytes; the limit is 8 \(ingest.max_string_bytes\)"):
        validate_feature_update(event(values={"city": "x" * 9}), REGISTRY, NOW, limits)
    with pytest.raises(InvalidEvent, match=r"key 'user_id' is 5 bytes; the limit is 4 \(ingest.max_key_bytes\)"):
        validate_feature_update(event(keys={"user_id": "abcde"}), REGISTRY, NOW, limits)
