"""The cache never serves a value older than the store's: guarded fills, writers'
fences, the LRU's stated bound, and a hung Redis (bypassed, then trusted again
only under a new epoch)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from vahini.serving.retrieval import PRESENT, FeatureReader
from vahini import wiring
from vahini.feature_rows import row_of
from vahini.ports.feature_store import FeatureRow
from vahini.registry.publish import RegistryFollower
from vahini.validation import EventLimits, validate_feature_update
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.processes_helpers import wait_for
from tests.streams.helpers import ingest_until_caught_up, send_updates, update

HOUR_MS = 3_600_000


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_sample_registry(stack_settings(request.param, request, tmp_path, unique, batch_size=100))


class Parts:
    def __init__(self, settings):
        self.follower = RegistryFollower(wiring.config_store(settings))
        self.store = wiring.feature_store(settings)
        self.cache = wiring.feature_cache(settings, self.store)

    def reader(self) -> FeatureReader:
        return FeatureReader(self.store, self.cache, lambda: self.follower.current)

    def row(self, entity, keys, group, values, event_time_ms) -> FeatureRow:
        event = {"entity": entity, "keys": keys, "group": group, "values": values, "event_time_ms": event_time_ms}
        return row_of(validate_feature_update(event, self.follower.current, event_time_ms, EventLimits(max_future_skew_ms=0)))

    def close(self):
        self.follower.close()
        self.cache.close()
        self.store.close()


@pytest.fixture
def parts(settings):
    p = Parts(settings)
    yield p
    p.close()


def clicks(reader: FeatureReader, users: list[str]) -> list[int]:
    (result,) = reader.retrieve("user", users, ["user_activity"])
    assert (result.status[:, 0] == PRESENT).all()
    return result.values["clicks_1d"].tolist()


def test_a_fill_from_a_store_read_that_preceded_a_write_never_replaces_it(parts, unique):
    t = int(time.time() * 1000) - HOUR_MS
    old = parts.row("user", {"user_id": f"r{unique}"}, "user_activity", {"clicks_1d": 1}, t)
    new = parts.row("user", {"user_id": f"r{unique}"}, "user_activity", {"clicks_1d": 2}, t + 1)
    read_started = time.monotonic()          # a reader reads `old` from the store ...
    parts.store.write([new])                 # ... a writer makes `new` durable and fences it ...
    assert parts.cache.fence([new])
    parts.cache.fill([("user", new.key, "user_activity", old, 600)], read_started)  # ... the reader fills late
    assert parts.cache.lookup([("user", new.key, "user_activity")]) == {}  # the fence stood: a miss
    assert clicks(parts.reader(), [new.key]) == [2]
    assert parts.cache.lookup([("user", new.key, "user_activity")]) == {("user", new.key, "user_activity"): new.blob}
    parts.cache.fill([("user", new.key, "user_activity", None, 600)], time.monotonic())  # a late "no row"
    assert clicks(parts.reader(), [new.key]) == [2]


def test_readers_hammering_keys_read_the_newest_value_once_ingestion_caught_up(settings, parts):
    users = [f"h{i}" for i in range(30)]
    t = int(time.time() * 1000) - HOUR_MS
    stop, errors = threading.Event(), []

    def hammer() -> None:
        reader = parts.reader()
        while not stop.is_set():
            try:
                reader.retrieve("user", users, ["user_activity"])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    for version in range(1, 6):
        send_updates(settings, [update(u, version, t + version) for u in users])
        ingest_until_caught_up(settings)
    time.sleep(0.2)  # let in-flight reads land their fills
    stop.set()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert clicks(parts.reader(), users) == [5] * len(users)  # user_activity has no LRU: no staleness allowed


def test_an_lru_hit_is_never_older_than_the_groups_lru_ttl(parts, unique):
    """On a clock the test runs: the superseded value is served from the LRU until its
    entry is lru_ttl_s old, and not a tick later."""
    group = parts.follower.current.groups["product_core"]
    bound_s = group.cache.lru_ttl_s
    product = {"product_id": f"p{unique}"}
    t = int(time.time() * 1000) - HOUR_MS
    now = [1000.0]
    reader = FeatureReader(parts.store, parts.cache, lambda: parts.follower.current, lru_clock=lambda: now[0])
    first = parts.row("product", product, "product_core", {"price": 1.0}, t)
    parts.store.write([first])
    parts.cache.fence([first])
    price = lambda: reader.retrieve("product", [product["product_id"]], ["product_core"])[0].values["price"][0]  # noqa: E731
    assert price() == 1.0  # now in this reader's LRU
    second = parts.row("product", product, "product_core", {"price": 2.0}, t + 1)
    parts.store.write([second])
    parts.cache.fence([second])  # another process's write: this reader's LRU does not hear of it
    now[0] += bound_s - 0.001
    assert price() == 1.0  # the LRU's entry, filled at 1000.0, is still younger than lru_ttl_s
    now[0] += 0.001
    assert price() == 2.0  # lru_ttl_s old: gone, and the fenced cache gives the new value


def _bypasses() -> float:
    return sum(REGISTRY.get_sample_value("vahini_cache_bypassed_total",
                                         {"dependency": "feature cache", "operation": op}) or 0
               for op in ("get", "fill", "fence"))


@pytest.mark.real_service
def test_a_hung_redis_is_bypassed_and_nothing_it_held_from_before_is_served_after(request, tmp_path, unique):
    from tests.faults import PrivateRedis

    redis = PrivateRedis()
    settings = with_sample_registry(stack_settings("real", request, tmp_path, unique, batch_size=100))
    settings = settings.model_copy(update={"feature_cache": redis.url})
    parts = Parts(settings)
    users = [f"s{i}" for i in range(50)]
    t = int(time.time() * 1000) - HOUR_MS
    try:
        send_updates(settings, [update(u, 1, t) for u in users])
        ingest_until_caught_up(settings)
        reader = parts.reader()
        assert clicks(reader, users) == [1] * 50  # now cached in Redis

        store_only = FeatureReader(parts.store, None, lambda: parts.follower.current)
        baseline = [_timed(lambda: clicks(store_only, users)) for _ in range(30)]
        redis.hang()
        hung = [_timed(lambda: clicks(reader, users)) for _ in range(30)]
        assert parts.cache.bypassed
        # Before: every call waited 2 s for the lookup and 2 s for the refill. The target
        # (p99 within 20 ms of store-only) is measured in benchmarks/; this bound only
        # catches a return of waiting on the hung peer.
        assert np.percentile(hung, 99) < np.percentile(baseline, 99) + 0.25, (hung, baseline)

        epochs = REGISTRY.get_sample_value("vahini_cache_epoch_bumps_total") or 0
        send_updates(settings, [update(u, 2, t + 1) for u in users])  # superseding what Redis holds
        ingest_until_caught_up(settings, timeout_s=60)  # the worker writes around the hung cache: a new epoch
        assert (REGISTRY.get_sample_value("vahini_cache_epoch_bumps_total") or 0) > epochs
        assert clicks(reader, users) == [2] * 50

        redis.resume()
        wait_for(lambda: not parts.cache.bypassed, 30, "the cache back in use after Redis answered again")
        bypasses = _bypasses()
        assert clicks(reader, users) == [2] * 50  # the entries Redis held from before are never read again
        assert clicks(reader, users) == [2] * 50  # ... now from the cache of the new epoch
        assert _bypasses() == bypasses
    finally:
        parts.close()
        redis.stop()


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started
