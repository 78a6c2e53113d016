"""The ingestion worker on the embedded stack and on Kafka + Cassandra + Redis + ZooKeeper."""

import time

import pytest

from vahini import wiring
from vahini.codecs.avro import FEATURE_UPDATE, INTERACTION
from vahini.streams.dead_letter import reason_of
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.streams.helpers import (
    CODEC, dead_letters, ingest_until_caught_up, send_raw, send_updates, stored_clicks, update,
)

HOUR_MS = 3_600_000


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_sample_registry(stack_settings(request.param, request, tmp_path, unique, batch_size=500))


def now_ms() -> int:
    return int(time.time() * 1000)


def test_every_kind_of_bad_event_is_dead_lettered_and_the_rest_is_written(settings):
    t = now_ms()
    good = CODEC.encode(FEATURE_UPDATE, update("good", 1, t))
    unknown_fp = b"\xc3\x01" + b"\x42" * 8 + good[10:]
    bad = {
        "undecodable": b"definitely not avro",
        "unknown_schema": unknown_fp,
        "wrong_event_type": CODEC.encode(INTERACTION, {"event_id": "e", "user_id": "u", "product_id": "p",
                                                       "category_id": None, "type": "CLICK", "event_time_ms": t,
                                                       "attributes": {}}),
        "unknown_entity": CODEC.encode(FEATURE_UPDATE, {**update("x", 1, t), "entity": "shop"}),
        "unknown_group": CODEC.encode(FEATURE_UPDATE, {**update("x", 1, t), "group": "user_hobbies"}),
        "unknown_feature": CODEC.encode(FEATURE_UPDATE, update("x", 1, t, likes=3)),
        "wrong_type": CODEC.encode(FEATURE_UPDATE, update("x", 1, t, orders_7d="two")),
        "wrong_vector_length": CODEC.encode(FEATURE_UPDATE, update("x", 0, t, group="user_profile",
                                                                   embedding=[0.5] * 3)),
        "missing_key": CODEC.encode(FEATURE_UPDATE, {**update("x", 1, t), "keys": {"uid": "x"}}),
        "out_of_range": CODEC.encode(FEATURE_UPDATE, update("x", 2**40, t)),
        "future_event_time": CODEC.encode(FEATURE_UPDATE, update("x", 1, t + 24 * HOUR_MS)),
        "too_large": CODEC.encode(FEATURE_UPDATE, update("x", 0, t, group="user_profile", city="c" * 70_000)),
    }
    payloads = [good] + list(bad.values()) + [CODEC.encode(FEATURE_UPDATE, update("good2", 2, t))]
    send_raw(settings, payloads, key=b"same-partition")
    ingest_until_caught_up(settings)

    letters = dead_letters(settings, len(bad))
    assert len(letters) == len(bad)
    by_reason = {reason_of(r)["vahini.reason"]: r for r in letters}
    assert set(by_reason) == set(bad)
    offsets = set()
    for reason, record in by_reason.items():
        headers = reason_of(record)
        assert record.value == bad[reason], f"{reason}: original bytes not kept"
        assert headers["vahini.source.topic"] == settings.topics.feature_updates
        offsets.add(int(headers["vahini.source.offset"]))
        assert headers["vahini.detail"]
    assert offsets == set(range(1, 1 + len(bad)))  # one partition: offsets 1..N of the bad ones
    assert stored_clicks(settings, ["good", "good2", "x"]) == {"good": 1, "good2": 2}


def test_out_of_order_and_replayed_events_never_overwrite_newer_values(settings):
    t = now_ms() - HOUR_MS
    updates = []
    for i in range(30):
        user = f"u{i}"
        updates += [update(user, 300, t + 3000), update(user, 100, t + 1000), update(user, 200, t + 2000)]
    send_updates(settings, updates[:45])
    ingest_until_caught_up(settings)  # first half in one run, rest in another: batch boundaries differ
    send_updates(settings, updates[45:])
    ingest_until_caught_up(settings)
    expected = {f"u{i}": 300 for i in range(30)}
    assert stored_clicks(settings, list(expected)) == expected

    from vahini.streams.replay import replay

    stats = replay(settings, settings.topics.feature_updates, "earliest", None, "replay-1", progress=False)
    assert stats.events == 90 and stats.dead_lettered == 0
    assert stored_clicks(settings, list(expected)) == expected


def test_replay_positions_offsets_latest_epoch_ms_and_iso_time(settings):
    from datetime import datetime, timezone

    from vahini.streams.replay import replay
    from tests.streams.helpers import CODEC, send_raw
    from vahini.codecs.avro import FEATURE_UPDATE

    t = now_ms() - HOUR_MS
    one_partition = lambda updates: send_raw(settings, [CODEC.encode(FEATURE_UPDATE, u) for u in updates],  # noqa: E731
                                             key=b"same-key")
    one_partition([update("r", 1, t + 1), update("r", 2, t + 2)])        # offsets 0, 1
    time.sleep(0.05)
    middle = now_ms()
    time.sleep(0.05)
    one_partition([update("s", 5, t + 5), update("s", 6, t + 6)])        # offsets 2, 3
    topic = settings.topics.feature_updates

    assert replay(settings, topic, "2", None, "from-offset", progress=False).events == 2
    assert stored_clicks(settings, ["r", "s"]) == {"s": 6}
    assert replay(settings, topic, "0", "1", "offset-range", progress=False).events == 1
    assert stored_clicks(settings, ["r", "s"]) == {"r": 1, "s": 6}
    assert replay(settings, topic, "latest", None, "from-latest", progress=False).events == 0
    iso = datetime.fromtimestamp(middle / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    assert replay(settings, topic, "earliest", iso, "to-iso", progress=False).events == 2
    assert stored_clicks(settings, ["r", "s"]) == {"r": 2, "s": 6}
    assert replay(settings, topic, f"@{middle}", None, "from-epoch-ms", progress=False).events == 2


def test_a_new_value_fences_the_cached_one(settings):
    from vahini.serving.retrieval import FeatureReader
    from vahini.registry.publish import RegistryFollower

    t = now_ms() - HOUR_MS
    send_updates(settings, [update("c", 1, t)])
    ingest_until_caught_up(settings)
    follower = RegistryFollower(wiring.config_store(settings))
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)  # this reader's cache; the worker opens its own
    reader = FeatureReader(store, cache, lambda: follower.current)
    assert reader.retrieve("user", ["c"], ["user_activity"])[0].values["clicks_1d"].tolist() == [1]
    assert ("user", "c", "user_activity") in cache.lookup([("user", "c", "user_activity")])  # filled
    send_updates(settings, [update("c", 2, t + 1)])
    ingest_until_caught_up(settings)
    assert cache.lookup([("user", "c", "user_activity")]) == {}  # the worker's fence reads as a miss
    assert reader.retrieve("user", ["c"], ["user_activity"])[0].values["clicks_1d"].tolist() == [2]
    follower.close()
    cache.close()
    store.close()


def test_group_ttl_expires_rows_in_the_store(settings, tmp_path):
    import shutil

    from vahini.demo import SAMPLE_REGISTRY
    from vahini.registry import publish

    registry_dir = tmp_path / "reg"
    shutil.copytree(SAMPLE_REGISTRY, registry_dir)
    text = (registry_dir / "feature_groups.yaml").read_text()
    (registry_dir / "feature_groups.yaml").write_text(
        text.replace("  - name: user_activity\n    entity: user\n    version: 1\n    ttl_s: 604800",
                     "  - name: user_activity\n    entity: user\n    version: 1\n    ttl_s: 10"))
    store = wiring.config_store(settings)
    publish.apply(registry_dir, store)
    store.close()
    send_updates(settings, [update("ttl", 4, now_ms())])
    ingest_until_caught_up(settings)
    feature_store = wiring.feature_store(settings)
    assert ("ttl", "user_activity") in feature_store.read("user", ["ttl"], ["user_activity"])
    deadline = time.monotonic() + 30  # the row expires 10 s after its event time
    while ("ttl", "user_activity") in feature_store.read("user", ["ttl"], ["user_activity"]):
        assert time.monotonic() < deadline, "row outlived its group's ttl_s"
        time.sleep(0.25)
    feature_store.close()


@pytest.mark.real_service
def test_a_store_outage_is_retried_and_nothing_is_committed_until_written(request, tmp_path, unique):
    import threading

    from vahini.streams.app import Backends, build_worker
    from tests.faults import TcpProxy
    from tests.streams.helpers import wait_for_commits

    base = with_sample_registry(stack_settings("real", request, tmp_path, unique, batch_size=50))
    host, port = request.getfixturevalue("cassandra_endpoint").split(":")
    proxy = TcpProxy(host, int(port))
    keyspace = request.getfixturevalue("cassandra_keyspace")
    behind_proxy = base.model_copy(update={"feature_store": f"cassandra://127.0.0.1:{proxy.port}/{keyspace}"})
    t = now_ms() - HOUR_MS
    send_updates(base, [update(f"a{i}", i, t) for i in range(100)])
    backends = Backends.open(behind_proxy)
    worker = build_worker(behind_proxy, backends)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    wait_for_commits(base, 60)

    from prometheus_client import REGISTRY

    retries = lambda: REGISTRY.get_sample_value("vahini_ingest_retries_total", {"step": "store_write"}) or 0  # noqa: E731
    log = wiring.event_log(base)
    before = log.committed(base.ingest.group, base.topics.feature_updates)
    retries_before = retries()
    proxy.cut()
    send_updates(base, [update(f"b{i}", i, t) for i in range(300)])
    from tests.processes_helpers import wait_for

    wait_for(lambda: retries() >= retries_before + 3, 30, "failed writes to be retried")
    assert thread.is_alive()
    assert log.committed(base.ingest.group, base.topics.feature_updates) == before
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    assert log.committed(base.ingest.group, base.topics.feature_updates) == before
    worker.close()
    backends.close()
    log.close()

    ingest_until_caught_up(base)  # a restart with the store reachable again
    assert stored_clicks(base, [f"b{i}" for i in range(300)]) == {f"b{i}": i for i in range(300)}
