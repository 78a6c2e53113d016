"""Fixtures for the cluster profile: three KRaft brokers and three Cassandra nodes on
127.0.0.2-4 (`make test-cluster` starts them). Each test gets a keyspace and topics of
its own, replicated three times, and leaves every node running when it ends."""

from __future__ import annotations

import os

import pytest

from tests.cluster import nodes
from vahini.settings import CassandraSettings, CacheSettings, IngestSettings, InteractionSettings, Settings, \
    TopicSettings


@pytest.fixture(scope="session")
def cluster() -> None:
    if not nodes.all_listening():
        message = "the cluster profile is not running (bash infra/cluster.sh start, or make test-cluster)"
        if os.environ.get("VAHINI_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _every_node_back(cluster):
    yield
    nodes.restore()


def cluster_settings(unique: str, redis_url: str, zookeeper_hosts: str, **ingest) -> Settings:
    return Settings(
        event_log=f"kafka://{nodes.KAFKA_BOOTSTRAP}",
        feature_store=f"cassandra://{nodes.CASSANDRA_HOSTS}:9042/cluster_{unique}",
        feature_cache=redis_url, config_store=f"zk://{zookeeper_hosts}/vahini-cluster-{unique}",
        topics=TopicSettings(feature_updates=f"fu-{unique}", interactions=f"ia-{unique}", sessions=f"ia-{unique}",
                             dead_letter=f"dlq-{unique}", partitions=4, replication_factor=3),
        ingest=IngestSettings(**{"group": f"ingest-{unique}", "batch_linger_ms": 20, **ingest}),
        cassandra=CassandraSettings(replication_factor=3, consistency="LOCAL_QUORUM"),
        cache=CacheSettings(namespace=f"c-{unique}"),
        interactions=InteractionSettings(hot_tier=redis_url, namespace=f"ih-{unique}"))


@pytest.fixture
def settings(cluster, unique, redis_url, zookeeper_hosts) -> Settings:
    from tests.conftest_backends import with_sample_registry

    settings = with_sample_registry(cluster_settings(unique, redis_url, zookeeper_hosts, batch_size=500,
                                                     batch_linger_ms=5))
    yield settings
    _drop_keyspace(settings)


def _drop_keyspace(settings: Settings) -> None:
    from cassandra.cluster import Cluster

    keyspace = settings.feature_store.rsplit("/", 1)[1]
    cluster = Cluster(list(nodes.HOSTS))
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()
