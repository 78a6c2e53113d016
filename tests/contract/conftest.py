"""Each port's fixture yields one adapter per engine, built through `vahini.wiring`
from a settings URL, exactly as the services build them. The ports whose adapters have
fast paths (vahini.fast_paths) are built both ways: `fast` and `public`."""

from __future__ import annotations

import pytest

from vahini import fast_paths, wiring
from vahini.settings import Settings

real = pytest.mark.real_service


@pytest.fixture(params=[True, False], ids=["fast", "public"])
def fast(request):
    """The setting fast_paths for the adapter under test; the process is left with them on."""
    yield request.param
    fast_paths.use(True)


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=real)])
def feature_store(request, tmp_path, fast):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/features.db"
    else:
        endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
        url = f"cassandra://{endpoint}/{keyspace}"
    store = wiring.feature_store(Settings(feature_store=url, fast_paths=fast))
    yield store
    store.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=real)])
def hot_tier(request, tmp_path, fast):
    urls = {"memory": lambda: "memory://", "sqlite": lambda: f"sqlite:///{tmp_path}/hot.db",
            "redis": lambda: request.getfixturevalue("redis_url")}
    url = urls[request.param]()
    tier = wiring.hot_tier(Settings(feature_cache=url, fast_paths=fast))
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


def _interaction_settings(request, tmp_path, unique, engine: str, fast: bool) -> Settings:
    from vahini.settings import InteractionSettings

    if engine == "sqlite":
        return Settings(feature_store=f"sqlite:///{tmp_path}/features.db", fast_paths=fast,
                        interactions=InteractionSettings(hot_tier=f"sqlite:///{tmp_path}/ihot.db"))
    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    return Settings(feature_store=f"cassandra://{endpoint}/{keyspace}", fast_paths=fast,
                    interactions=InteractionSettings(hot_tier=request.getfixturevalue("redis_url"),
                                                     namespace=f"ih-{unique}", bucket_days=1))


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=real)])
def cold_interactions(request, tmp_path, unique, fast):
    tier = wiring.cold_interactions(_interaction_settings(request, tmp_path, unique, request.param, fast))
    yield tier
    tier.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=real)])
def interaction_hot_tier(request, tmp_path, unique, fast):
    tier = wiring.interaction_hot_tier(_interaction_settings(request, tmp_path, unique, request.param, fast))
    yield tier
    tier.close()


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=real)])
def vector_index(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/vectors.db"
    else:
        endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
        url = f"cassandra://{endpoint}/{keyspace}"
    index = wiring.vector_index(Settings(feature_store=url))
    yield index
    index.close()
