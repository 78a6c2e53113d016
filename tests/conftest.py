"""Shared fixtures: real services (session-scoped), one per port and engine."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests import services

_REQUIRE = os.environ.get("VAHINI_REQUIRE_SERVICES") == "1"
# The cluster profile's tests need three brokers and three Cassandra nodes: only
# `make test-cluster` (infra/test-cluster.sh) collects them.
if os.environ.get("VAHINI_CLUSTER_TESTS") != "1":
    collect_ignore = ["cluster"]
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
def kafka_secure(kafka_bootstrap) -> tuple[str, str]:
    """(bootstrap, CA file) of the broker's SASL_SSL listener (SCRAM-SHA-512, ACLs), which
    infra/kafka.sh sets up beside the plaintext one; or VAHINI_TEST_KAFKA_SECURE and
    VAHINI_TEST_KAFKA_CA for a broker elsewhere."""
    return _secured("VAHINI_TEST_KAFKA", "127.0.0.1:9094", ("kafka", "tls", "ca.pem"), "SASL_SSL Kafka listener")


@pytest.fixture(scope="session")
def cassandra_secure() -> tuple[str, str]:
    """(host:port, CA file) of the secured profile's Cassandra (infra/cassandra-secure.sh):
    PasswordAuthenticator with the default superuser cassandra/cassandra, CassandraAuthorizer,
    TLS required; or VAHINI_TEST_CASSANDRA_SECURE and VAHINI_TEST_CASSANDRA_CA."""
    return _secured("VAHINI_TEST_CASSANDRA", "127.0.0.1:9142", ("cassandra-secure", "tls", "ca.pem"),
                    "TLS Cassandra")


def _secured(env: str, default: str, ca_parts: tuple[str, ...], what: str) -> tuple[str, str]:
    """(endpoint, CA file) from $<env>_SECURE and $<env>_CA, else where infra/ puts them;
    fails under `make test` (skips otherwise) when the service or its CA is missing."""
    home = os.environ.get("VAHINI_INFRA_HOME", os.path.expanduser("~/.cache/vahini-infra"))
    endpoint = os.environ.get(f"{env}_SECURE", default)
    ca = os.environ.get(f"{env}_CA", os.path.join(home, *ca_parts))
    host, port = endpoint.rsplit(":", 1)
    if not services.port_open(host, int(port)) or not os.path.exists(ca):
        message = f"no {what} at {endpoint} with CA {ca} (make services-start)"
        if _REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return endpoint, ca


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


# -- the CI guard ------------------------------------------------------------------
# A run passes only if every real-service test it collected ran and passed: a skip
# (no service), a deselection (-k, -m) or a failure all fail it. VAHINI_ALLOW_PARTIAL=1
# lets a developer run a subset on purpose; infra/test.sh never sets it, and also
# checks the count against every real-service test under tests/ (tests/ci_guard.py).
_ALLOW_PARTIAL = os.environ.get("VAHINI_ALLOW_PARTIAL") == "1"
_real = {"collected": 0, "selected": 0, "passed": 0}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    _real["collected"] = sum(1 for item in items if item.get_closest_marker("real_service"))
    yield
    _real["selected"] = sum(1 for item in items if item.get_closest_marker("real_service"))


def pytest_runtest_logreport(report):
    if "real_service" not in report.keywords:
        return
    if report.skipped:
        _skipped_real.append(report.nodeid)
    elif report.when == "call" and report.passed:
        _real["passed"] += 1


def _short_of_real_tests() -> bool:
    return _real["passed"] < _real["collected"] and not _ALLOW_PARTIAL


def pytest_sessionfinish(session, exitstatus):
    report = os.environ.get("VAHINI_REAL_SERVICE_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(_real, f)
    if session.exitstatus == 0 and ((_REQUIRE and _skipped_real) or _short_of_real_tests()):
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    write = lambda text: terminalreporter.write_line(text, red=True)  # noqa: E731
    if _skipped_real and (_REQUIRE or not _ALLOW_PARTIAL):
        write(f"FAILED: {len(_skipped_real)} real-service test(s) were skipped; every test that needs Kafka, "
              f"Cassandra, Redis or ZooKeeper must run:")
        for nodeid in _skipped_real:
            write(f"  {nodeid}")
    if _short_of_real_tests():
        write(f"FAILED: {_real['passed']} of {_real['collected']} real-service tests passed "
              f"({_real['collected'] - _real['selected']} deselected by -k/-m). Start the services "
              f"(make services-start) and run them all, or set VAHINI_ALLOW_PARTIAL=1 to run a subset on purpose.")
