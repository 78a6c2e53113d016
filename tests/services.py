"""Where the real services for tests come from, in this order:

1. an endpoint in an environment variable (VAHINI_TEST_KAFKA, VAHINI_TEST_CASSANDRA,
   VAHINI_TEST_REDIS, VAHINI_TEST_ZOOKEEPER), e.g. a shared staging cluster;
2. a service already listening on its default loopback port (infra/services.sh start);
3. a throwaway container through testcontainers, when a Docker engine is reachable.

With VAHINI_REQUIRE_SERVICES=1 (set by `make test` and CI) a service that cannot be
found fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Callable

import pytest


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure to reach it means no Docker here
        return False


def _kafka_container():
    from testcontainers.kafka import KafkaContainer

    c = KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft()
    c.start()
    return c, c.get_bootstrap_server()


def _scylla_container():
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    c = DockerContainer("scylladb/scylla:6.2").with_command("--smp 1 --memory 750M --overprovisioned 1") \
        .with_exposed_ports(9042)
    c.start()
    wait_for_logs(c, "init - serving", timeout=180)
    return c, f"{c.get_container_host_ip()}:{c.get_exposed_port(9042)}"


def _redis_container():
    from testcontainers.redis import RedisContainer

    c = RedisContainer("redis:7.4")
    c.start()
    return c, f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"


def _zookeeper_container():
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    c = DockerContainer("zookeeper:3.9").with_exposed_ports(2181)
    c.start()
    wait_for_logs(c, "binding to port", timeout=60)
    return c, f"{c.get_container_host_ip()}:{c.get_exposed_port(2181)}"


@dataclass(frozen=True)
class Service:
    name: str
    env: str
    local_endpoint: str
    local_port: int
    container: Callable[[], tuple[object, str]]


SERVICES = {
    "kafka": Service("Kafka", "VAHINI_TEST_KAFKA", "127.0.0.1:9092", 9092, _kafka_container),
    "cassandra": Service("Cassandra/Scylla", "VAHINI_TEST_CASSANDRA", "127.0.0.1:9042", 9042, _scylla_container),
    "redis": Service("Redis", "VAHINI_TEST_REDIS", "redis://127.0.0.1:6379/0", 6379, _redis_container),
    "zookeeper": Service("ZooKeeper", "VAHINI_TEST_ZOOKEEPER", "127.0.0.1:2181", 2181, _zookeeper_container),
}


def resolve(key: str, started: list) -> str:
    service = SERVICES[key]
    if os.environ.get(service.env):
        return os.environ[service.env]
    if port_open("127.0.0.1", service.local_port):
        return service.local_endpoint
    if _docker_available():
        container, endpoint = service.container()
        started.append(container)
        return endpoint
    message = (f"{service.name} not available: set {service.env}, run `infra/services.sh start`, "
               f"or make a Docker engine reachable for testcontainers")
    if os.environ.get("VAHINI_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)
