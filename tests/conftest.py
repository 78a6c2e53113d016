"""Shared fixtures: real services (session-scoped), one per port and engine."""

from __future__ import annotations

import os
import uuid

import pytest

from tests import services

_REQUIRE = os.environ.get("VAHINI_REQUIRE_SERVICES") == "1"
_skipped_real: list[str] = []


@pytest.fixture(scope="session")
def _containers():
    started: list = []
    yield started
    for container in started:
        container.stop()


def _endpoint(key: str, containers) -> str:
    return services.resolve(key, containers)


@pytest.fixture(scope="session")
def kafka_bootstrap(_containers) -> str:
    return _endpoint("kafka", _containers)


@pytest.fixture(scope="session")
def cassandra_endpoint(_containers) -> str:
    return _endpoint("cassandra", _containers)


@pytest.fixture(scope="session")
def cassandra_keyspace(cassandra_endpoint) -> str:
    """A keyspace of this test session's own: no state from other runs or sessions."""
    from cassandra.cluster import Cluster

    name = f"vahini_test_{uuid.uuid4().hex[:12]}"
    yield name
    host, port = cassandra_endpoint.rsplit(":", 1)
    cluster = Cluster([host], port=int(port))
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def redis_url(_containers) -> str:
    return _endpoint("redis", _containers)


@pytest.fixture(scope="session")
def zookeeper_hosts(_containers) -> str:
    return _endpoint("zookeeper", _containers)


@pytest.fixture
def unique() -> str:
    """A short id that keeps one test's topics, keys and paths apart from another's."""
    return uuid.uuid4().hex[:10]


def pytest_runtest_logreport(report):
    if report.skipped and "real_service" in report.keywords:
        _skipped_real.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _REQUIRE and _skipped_real and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _REQUIRE and _skipped_real:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped_real)} real-service test(s) were skipped; with VAHINI_REQUIRE_SERVICES=1 "
            f"every test that needs Kafka, Cassandra, Redis or ZooKeeper must run:", red=True)
        for nodeid in _skipped_real:
            terminalreporter.write_line(f"  {nodeid}", red=True)
