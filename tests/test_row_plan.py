"""The ingest worker's fused check-and-encode plan (vahini/row_plan.py) must accept and
reject exactly what validation followed by encoding does: the same rows, byte for
byte, and the same reasons and messages."""

import math
import random

import pytest

from tests.test_validation import NOW, REGISTRY, event
from vahini.errors import InvalidEvent
from vahini.feature_rows import row_of
from vahini.row_plan import feature_row
from vahini.validation import EventLimits, validate_feature_update

LIMITS = EventLimits(max_future_skew_ms=60_000, max_key_bytes=16, max_string_bytes=12)

# Valid and invalid candidates for each registry type, edge cases included.
CANDIDATES = {
    "int": [0, -1, 2**63 - 1, -(2**63), 2**63, 1.0, True, "3", None],
    "int32": [7, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2.5, False, None],
    "float": [0.5, -1e300, 3, 1.7976931348623157e308, math.inf, -math.inf, math.nan, True, "x", None],
    "float32": [0.25, 3.4028234663852886e38, 3.5e38, -3.5e38, 7, math.nan, math.inf, False, None],
    "bool": [True, False, 0, 1, "true", None],
    "string": ["", "paris", "é" * 4, "é" * 7, "x" * 13, 5, None],
}


def vector_candidates(dim: int) -> list:
    return [[0.5] * dim, [1] * dim, tuple([0.1] * dim), [0.5] * (dim - 1), [0.5] * (dim - 1) + [math.nan],
            [0.5] * (dim - 1) + [1e39], [0.5] * (dim - 1) + [True], [0.5] * (dim - 1) + ["x"], "vector", None]


def outcome(path, e):
    try:
        return "row", path(e)
    except InvalidEvent as exc:
        return "invalid", exc.reason, str(exc)


def validated_then_encoded(e):
    return row_of(validate_feature_update(e, REGISTRY, NOW, LIMITS))


def fused(e):
    return feature_row(e, REGISTRY, NOW, LIMITS)


def random_events(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    groups = [g for g in REGISTRY.groups.values() if g.source == "events"]
    out = []
    for _ in range(n):
        group = rng.choice(groups)
        keys = {k: rng.choice(["u1", "c9", "p|3", "", "k" * 17]) for k in REGISTRY.entities[group.entity].keys}
        values = {}
        for f in rng.sample(group.features, rng.randint(0, len(group.features))):
            options = vector_candidates(f.dim) if f.type == "vector" else CANDIDATES[f.type]
            values[f.name] = rng.choice(options)
        if rng.random() < 0.05:
            values["no_such_feature"] = 1
        out.append({"entity": group.entity, "keys": keys, "group": group.name, "values": values,
                    "event_time_ms": rng.choice([NOW, NOW - 5, NOW + 60_000, NOW + 60_001, -1])})
    return out


def test_both_paths_agree_on_thousands_of_random_events_valid_and_not():
    events = random_events(5000, seed=7)
    outcomes = [(outcome(validated_then_encoded, e), outcome(fused, e)) for e in events]
    assert all(a == b for a, b in outcomes), next((e, a, b) for e, (a, b) in zip(events, outcomes) if a != b)
    kinds = {a[0] for a, _ in outcomes}
    reasons = {a[1] for a, _ in outcomes if a[0] == "invalid"}
    assert kinds == {"row", "invalid"}  # the sample exercises both
    assert {"wrong_type", "out_of_range", "too_large", "wrong_vector_length", "unknown_feature", "invalid_key",
            "missing_key", "future_event_time"} <= reasons


@pytest.mark.parametrize("overrides", [
    {"values": {"account_age_days": 3, "embedding": [0.5] * 16}},
    {"values": {"embedding": [1] * 16, "city": None}},
    {"values": {}},
    {"entity": "product", "group": "user_profile"},
    {"entity": "shop"},
    {"group": "no_such_group"},
])
def test_both_paths_agree_on_chosen_events(overrides):
    e = event(**overrides)
    assert outcome(validated_then_encoded, e) == outcome(fused, e)
