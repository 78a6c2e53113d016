"""Running workers in tests and inspecting what they wrote."""

from __future__ import annotations

import threading
import time

from vahini import wiring
from vahini.codecs.avro import FEATURE_UPDATE, AvroCodec, SchemaCatalog
from vahini.settings import Settings
from vahini.streams.app import Backends, build_worker

CODEC = AvroCodec(SchemaCatalog.default())


def update(user: str, clicks: int, event_time_ms: int, group: str = "user_activity", **values) -> dict:
    return {"entity": "user", "keys": {"user_id": user}, "group": group,
            "values": {"clicks_1d": clicks, **values} if group == "user_activity" else values,
            "event_time_ms": event_time_ms, "producer_id": "test"}


def send_raw(settings: Settings, payloads: list[bytes], key: bytes | None = b"k") -> None:
    """Put bytes on the feature topic as a producer would, without the producer's checks."""
    log = wiring.event_log(settings)
    log.create_topic(settings.topics.feature_updates, settings.topics.partitions)
    producer = log.producer()
    for payload in payloads:
        producer.send(settings.topics.feature_updates, payload, key=key)
    producer.flush()
    log.close()


def send_updates(settings: Settings, updates: list[dict]) -> None:
    send_raw(settings, [CODEC.encode(FEATURE_UPDATE, u) for u in updates],
             key=None)


def ingest_until_caught_up(settings: Settings, timeout_s: float = 60) -> None:
    """Run one worker in this process until its group has committed the topic's end."""
    backends = Backends.open(settings)
    topic = settings.topics.feature_updates
    backends.event_log.create_topic(topic, settings.topics.partitions)
    worker = build_worker(settings, backends)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for_commits(settings, timeout_s)
    finally:
        stop.set()
        thread.join(30)
        worker.close()
        backends.close()


def wait_for_commits(settings: Settings, timeout_s: float) -> None:
    log = wiring.event_log(settings)
    topic = settings.topics.feature_updates
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ends = log.end_offsets(topic)
            committed = log.committed(settings.ingest.group, topic)
            if all(committed.get(p, 0) >= end for p, end in ends.items()):
                return
            assert time.monotonic() < deadline, f"not caught up: committed {committed}, end {ends}"
            time.sleep(0.2)
    finally:
        log.close()


def stored_clicks(settings: Settings, users: list[str]) -> dict[str, int]:
    from vahini.serving.retrieval import FeatureReader
    from vahini.registry.publish import RegistryFollower

    follower = RegistryFollower(wiring.config_store(settings))
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    reader = FeatureReader(store, cache, lambda: follower.current)
    (result,) = reader.retrieve("user", users, ["user_activity"])
    cache.close()
    store.close()
    follower.close()
    return {u: int(result.values["clicks_1d"][i]) for i, u in enumerate(users) if result.status[i, 0] == 0}


def dead_letters(settings: Settings, expected: int, timeout_s: float = 30) -> list:
    log = wiring.event_log(settings)
    topic = settings.topics.dead_letter
    consumer = log.consumer("dlq-reader", [topic], {(topic, p): 0 for p in range(log.partitions(topic))})
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out.extend(consumer.poll_batch(1000, 0.3))
    out.extend(consumer.poll_batch(1000, 0.5))  # anything beyond what was expected
    consumer.close()
    log.close()
    return out
