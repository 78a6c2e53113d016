"""A stored value that cannot be read gets a status of its own (UNREADABLE), is
counted, and never fails the rest of the request."""

from __future__ import annotations

import dataclasses
import time

import pytest
from prometheus_client import REGISTRY

from vahini.serving.retrieval import MISSING, PRESENT, UNREADABLE, FeatureReader
from vahini import wiring
from vahini.codecs import feature_blob
from vahini.ports.feature_store import FeatureRow
from vahini.registry.model import Feature
from vahini.registry.publish import RegistryFollower
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry


def unreadable(reason: str) -> float:
    return REGISTRY.get_sample_value("vahini_unreadable_values_total",
                                     {"group": "user_activity", "reason": reason}) or 0


@pytest.mark.parametrize("stack", STACKS)
def test_corrupt_unknown_and_narrowed_values_are_unreadable_and_the_rest_is_served(stack, request, tmp_path, unique):
    settings = with_sample_registry(stack_settings(stack, request, tmp_path, unique))
    follower = RegistryFollower(wiring.config_store(settings))
    registry = follower.current
    group = registry.groups["user_activity"]
    store = wiring.feature_store(settings)
    now = int(time.time() * 1000)
    good = feature_blob.encode(group.features, group.version, now, {"clicks_1d": 3})
    unknown_version = feature_blob.encode(group.features, 99, now, {"clicks_1d": 4})
    store.write([FeatureRow("user", f"good{unique}", "user_activity", now, good),
                 FeatureRow("user", f"corrupt{unique}", "user_activity", now, b"VF\x01\x00garbage"),
                 FeatureRow("user", f"truncated{unique}", "user_activity", now, good[:20]),
                 FeatureRow("user", f"unknown{unique}", "user_activity", now, unknown_version)])
    reader = FeatureReader(store, None, lambda: registry)
    keys = [f"good{unique}", f"corrupt{unique}", f"truncated{unique}", f"unknown{unique}", f"absent{unique}"]
    counts = {r: unreadable(r) for r in ("corrupt", "unknown_version", "type_changed")}
    (result,) = reader.retrieve("user", keys, ["user_activity"])
    assert result.status[:, 0].tolist() == [PRESENT, UNREADABLE, UNREADABLE, UNREADABLE, MISSING]
    assert result.values["clicks_1d"].tolist() == [3, 0, 0, 0, 0]
    assert unreadable("corrupt") == counts["corrupt"] + 2
    assert unreadable("unknown_version") == counts["unknown_version"] + 1

    # Version 2 narrows clicks_1d (int32 -> bool): a stored int32 cannot be read as a bool.
    narrowed = tuple(dataclasses.replace(f, type="bool", default=False) if f.name == "clicks_1d" else f
                     for f in group.features)
    v2 = dataclasses.replace(registry, groups={**registry.groups, "user_activity": dataclasses.replace(
        group, version=group.version + 1, features=narrowed)},
        history={**registry.history, ("user_activity", group.version): group.features})
    (result,) = FeatureReader(store, None, lambda: v2).retrieve("user", [f"good{unique}"], ["user_activity"])
    clicks = result.features.index("clicks_1d")
    assert result.status[0, clicks] == UNREADABLE and result.values["clicks_1d"].tolist() == [False]
    assert unreadable("type_changed") == counts["type_changed"] + 1
    follower.close()
    store.close()


def test_a_widened_type_reads_the_stored_value_exactly(tmp_path, unique):
    settings = with_sample_registry(stack_settings("embedded", None, tmp_path, unique))
    follower = RegistryFollower(wiring.config_store(settings))
    registry = follower.current
    v1 = (Feature("big", "int32", 0), Feature("ratio", "float32", 0.0))
    v2 = (Feature("big", "int", 0), Feature("ratio", "float", 0.0))
    group = dataclasses.replace(registry.groups["user_activity"], version=7, features=v2)
    widened = dataclasses.replace(registry, groups={**registry.groups, "user_activity": group},
                                  history={**registry.history, ("user_activity", 6): v1})
    store = wiring.feature_store(settings)
    now = int(time.time() * 1000)
    store.write([FeatureRow("user", "w", "user_activity", now,
                            feature_blob.encode(v1, 6, now, {"big": 2_000_000_000, "ratio": 0.25}))])
    (result,) = FeatureReader(store, None, lambda: widened).retrieve("user", ["w"], ["user_activity"])
    assert result.values["big"].tolist() == [2_000_000_000] and result.values["ratio"].tolist() == [0.25]
    assert result.status.tolist() == [[PRESENT, PRESENT]]
    follower.close()
    store.close()
