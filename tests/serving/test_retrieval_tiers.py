"""The read path's tiers: LRU -> cache -> store, negative caching, hit metrics."""

import time

import pytest
from prometheus_client import REGISTRY

from vahini.serving.retrieval import MISSING, PRESENT, FeatureReader
from vahini import wiring
from vahini.feature_rows import row_of
from vahini.registry.publish import RegistryFollower
from vahini.validation import EventLimits, validate_feature_update
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry


@pytest.fixture(params=STACKS)
def parts(request, tmp_path, unique):
    settings = with_sample_registry(stack_settings(request.param, request, tmp_path, unique))
    follower = RegistryFollower(wiring.config_store(settings))
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    yield store, cache, follower, unique, settings
    follower.close()
    store.close()
    cache.close()


def lookups(tier, result):
    return REGISTRY.get_sample_value("vahini_cache_lookups_total", {"tier": tier, "result": result}) or 0


def write(store, registry, entity, keys, group, values):
    now = int(time.time() * 1000)
    event = {"entity": entity, "keys": keys, "group": group, "values": values, "event_time_ms": now}
    store.write([row_of(validate_feature_update(event, registry, now, EventLimits(max_future_skew_ms=0)))])


def test_second_read_is_served_by_the_cache_not_the_store(parts):
    store, cache, follower, u, settings = parts
    write(store, follower.current, "user", {"user_id": f"t{u}"}, "user_activity", {"clicks_1d": 4})
    reader = FeatureReader(store, cache, lambda: follower.current)
    misses, hits = lookups("redis", "miss"), lookups("redis", "hit")
    reader.retrieve("user", [f"t{u}"], ["user_activity", "user_profile"])
    assert lookups("redis", "miss") == misses + 2
    # A fresh reader (no LRU) must find the value in the shared cache tier.
    second = FeatureReader(store, cache, lambda: follower.current).retrieve("user", [f"t{u}"], ["user_activity"])
    assert lookups("redis", "hit") == hits + 1
    assert second[0].values["clicks_1d"].tolist() == [4] and second[0].status[0, 0] == PRESENT


def test_misses_are_cached_briefly(parts):
    store, cache, follower, u, settings = parts
    reader = FeatureReader(store, cache, lambda: follower.current)
    reader.retrieve("user", [f"none{u}"], ["user_activity"])
    write(store, follower.current, "user", {"user_id": f"none{u}"}, "user_activity", {"clicks_1d": 1})
    # Without invalidation (no worker ran) the negative entry still answers: a store miss is not re-read.
    again = FeatureReader(store, cache, lambda: follower.current).retrieve("user", [f"none{u}"], ["user_activity"])
    assert again[0].status[0, 0] == MISSING


def test_in_process_lru_answers_hot_keys_without_the_cache(parts):
    store, cache, follower, u, settings = parts
    write(store, follower.current, "product", {"product_id": f"hot{u}"}, "product_core", {"price": 9.5})
    reader = FeatureReader(store, cache, lambda: follower.current)  # product_core has lru_size > 0
    lru_misses = lookups("lru", "miss")
    reader.retrieve("product", [f"hot{u}"], ["product_core"])
    assert lookups("lru", "miss") == lru_misses + 1
    lru_hits = lookups("lru", "hit")
    result = reader.retrieve("product", [f"hot{u}"], ["product_core"])
    assert lookups("lru", "hit") == lru_hits + 1 and lookups("lru", "miss") == lru_misses + 1
    assert result[0].values["price"].tolist() == [9.5]


def test_rows_written_under_an_older_schema_version_stay_readable(parts, tmp_path):
    import shutil

    from vahini.demo import SAMPLE_REGISTRY
    from vahini.registry import publish

    store, cache, follower, u, settings = parts
    write(store, follower.current, "user", {"user_id": f"v1{u}"}, "user_activity", {"clicks_1d": 8, "orders_7d": 2})
    registry_dir = tmp_path / "v2"
    shutil.copytree(SAMPLE_REGISTRY, registry_dir)
    groups = registry_dir / "feature_groups.yaml"
    groups.write_text(groups.read_text().replace(
        "  - name: user_activity\n    entity: user\n    version: 1\n",
        "  - name: user_activity\n    entity: user\n    version: 2\n").replace(
        "      - {name: session_count_7d, type: int32, default: 0}\n",
        "      - {name: session_count_7d, type: int32, default: 0}\n      - {name: returns_30d, type: int32, default: -1}\n"))
    config = wiring.config_store(settings)
    registry = publish.apply(registry_dir, config).registry
    config.close()
    assert registry.groups["user_activity"].version == 2
    reader = FeatureReader(store, cache, lambda: registry)
    (result,) = reader.retrieve("user", [f"v1{u}"], ["user_activity"])
    assert result.values["clicks_1d"].tolist() == [8] and result.values["orders_7d"].tolist() == [2]
    assert result.values["returns_30d"].tolist() == [-1]
    assert result.status[0].tolist() == [PRESENT, PRESENT, MISSING, MISSING]
