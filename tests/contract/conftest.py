"""Each port's fixture yields one adapter per engine, built through `vahini.wiring`
from a settings URL, exactly as the services build them."""

from __future__ import annotations

import pytest

from vahini import wiring
from vahini.settings import Settings

real = pytest.mark.real_service


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=real)])
def feature_store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/features.db"
    else:
        endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
        url = f"cassandra://{endpoint}/{keyspace}"
    store = wiring.feature_store(Settings(feature_store=url))
    yield store
    store.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=real)])
def hot_tier(request, tmp_path):
    urls = {"memory": lambda: "memory://", "sqlite": lambda: f"sqlite:///{tmp_path}/hot.db",
            "redis": lambda: request.getfixturevalue("redis_url")}
    url = urls[request.param]()
    tier = wiring.hot_tier(Settings(feature_cache=url))
    yield tier
    tier.close()


@pytest.fixture(params=["file", pytest.param("zookeeper", marks=real)])
def config_store(request, tmp_path, unique):
    if request.param == "file":
        url = f"file://{tmp_path}/config"
    else:
        url = f"zk://{request.getfixturevalue('zookeeper_hosts')}/vahini-test-{unique}"
    store = wiring.config_store(Settings(config_store=url))
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=real)])
def event_log(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/events.db"
    else:
        url = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
    log = wiring.event_log(Settings(event_log=url, kafka_session_timeout_ms=6000))
    yield log
    log.close()


def _interaction_settings(request, tmp_path, unique, engine: str) -> Settings:
    from vahini.settings import InteractionSettings

    if engine == "sqlite":
        return Settings(feature_store=f"sqlite:///{tmp_path}/features.db",
                        interactions=InteractionSettings(hot_tier=f"sqlite:///{tmp_path}/ihot.db"))
    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    return Settings(feature_store=f"cassandra://{endpoint}/{keyspace}",
                    interactions=InteractionSettings(hot_tier=request.getfixturevalue("redis_url"),
                                                     namespace=f"ih-{unique}", bucket_days=1))


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=real)])
def cold_interactions(request, tmp_path, unique):
    tier = wiring.cold_interactions(_interaction_settings(request, tmp_path, unique, request.param))
    yield tier
    tier.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=real)])
def interaction_hot_tier(request, tmp_path, unique):
    tier = wiring.interaction_hot_tier(_interaction_settings(request, tmp_path, unique, request.param))
    yield tier
    tier.close()
