"""Whole-stack settings for tests: the embedded set and the real set."""

from __future__ import annotations

import pytest

from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import publish
from vahini.settings import CacheSettings, IngestSettings, InteractionSettings, Settings, TopicSettings


def stack_settings(kind: str, request, tmp_path, unique: str, **ingest) -> Settings:
    topics = TopicSettings(feature_updates=f"fu-{unique}", interactions=f"ia-{unique}", sessions=f"se-{unique}",
                           dead_letter=f"dlq-{unique}", partitions=4)
    ingest_settings = IngestSettings(**{"group": f"ingest-{unique}", "batch_linger_ms": 20, **ingest})
    if kind == "embedded":
        return Settings(event_log=f"sqlite:///{tmp_path}/events.db", feature_store=f"sqlite:///{tmp_path}/f.db",
                        feature_cache=f"sqlite:///{tmp_path}/hot.db", config_store=f"file://{tmp_path}/config", topics=topics,
                        ingest=ingest_settings,
                        interactions=InteractionSettings(hot_tier=f"sqlite:///{tmp_path}/ihot.db", namespace=f"ih-{unique}"))
    return Settings(
        event_log=f"kafka://{request.getfixturevalue('kafka_bootstrap')}",
        feature_store=f"cassandra://{request.getfixturevalue('cassandra_endpoint')}/"
                      f"{request.getfixturevalue('cassandra_keyspace')}",
        feature_cache=request.getfixturevalue("redis_url"),
        config_store=f"zk://{request.getfixturevalue('zookeeper_hosts')}/vahini-test-{unique}",
        topics=topics, ingest=ingest_settings, kafka_session_timeout_ms=6000,
        cache=CacheSettings(namespace=f"t-{unique}"),
        interactions=InteractionSettings(hot_tier=request.getfixturevalue("redis_url"), namespace=f"ih-{unique}"))


def with_sample_registry(settings: Settings) -> Settings:
    store = wiring.config_store(settings)
    publish.apply(SAMPLE_REGISTRY, store)
    store.close()
    return settings


STACKS = ["embedded", pytest.param("real", marks=pytest.mark.real_service)]
