"""The secured profile end to end, as an operator runs it: docs/secure-settings.toml
(every link authenticated and encrypted) drives `vahini apply`, `produce`, `ingest`,
`serve` and `query` against Kafka's SASL_SSL listener, the TLS Cassandra with
authentication, a TLS Redis with an ACL user, ZooKeeper with ACLs, and a TLS serving
port with tokens. Nothing the run prints holds a secret."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourceType

from tests.certs import make_ca, make_cert
from tests.faults import PrivateRedis
from tests.services import free_port, port_open
from tests.streams.test_cassandra_security import superuser
from tests.streams.test_kafka_security import Principals
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.settings import Settings

pytestmark = pytest.mark.real_service
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "secure-settings.toml"


class Profile:
    """The example's files, users and names, made for this test."""

    def __init__(self, tmp: Path, unique: str):
        self.etc, self.secrets = tmp / "etc" / "vahini", tmp / "secrets"
        (self.etc / "tls").mkdir(parents=True)
        self.secrets.mkdir()
        self.user = f"vahini{unique}"
        self.passwords = {name: f"{name}-secret-{unique}" for name in ("kafka", "cassandra", "redis", "zookeeper")}
        for name, password in self.passwords.items():
            (self.secrets / f"{name}-password").write_text(password + "\n")
        self.token = f"ranker-token-{unique}"
        self.keyspace, self.unique = f"vahini_secure_{unique}", unique

    def settings_file(self, redis_port: int) -> Path:
        text = EXAMPLE.read_text()
        for old, new in (("/etc/vahini", str(self.etc)), ("/run/secrets", str(self.secrets)),
                         ("127.0.0.1:6380", f"127.0.0.1:{redis_port}"), ('"vahini"', f'"{self.user}"'),
                         ("/vahini_secure", f"/{self.keyspace}"), ("/vahini-secure", f"/vahini-secure-{self.unique}")):
            assert old in text, old
            text = text.replace(old, new)
        path = self.etc / "vahini.toml"
        path.write_text(text)
        return path


@pytest.fixture
def profile(request, tmp_path, unique, kafka_secure, cassandra_secure):
    p = Profile(tmp_path, unique)
    _, kafka_ca = kafka_secure
    shutil.copy(kafka_ca, p.etc / "tls" / "kafka-ca.pem")
    endpoint, cassandra_ca = cassandra_secure
    shutil.copy(cassandra_ca, p.etc / "tls" / "cassandra-ca.pem")
    redis_ca = make_ca(tmp_path / "pki", "redis-ca")
    redis_cert = make_cert(redis_ca, tmp_path / "pki", "redis")
    shutil.copy(redis_ca.cert, p.etc / "tls" / "redis-ca.pem")
    server_ca = make_ca(tmp_path / "pki", "serving-ca")
    server_cert = make_cert(server_ca, tmp_path / "pki", "server")
    shutil.copy(server_cert.cert, p.etc / "tls" / "server.pem")
    shutil.copy(server_cert.key, p.etc / "tls" / "server.key")
    p.serving_ca = server_ca.cert
    (p.etc / "callers.yaml").write_text(
        f"callers:\n  - name: ranker\n    token_sha256: {hashlib.sha256(p.token.encode()).hexdigest()}\n"
        f"    allow: [ModelProxy.GetFeatures]\n")
    redis = PrivateRedis(tls=(redis_cert.cert, redis_cert.key, redis_ca.cert), extra=(
        "--user", "default", "off", "--user", p.user, "on", f">{p.passwords['redis']}", "~*", "&*", "+@all"))
    p.file = p.settings_file(redis.port)

    cluster, admin = superuser(endpoint, cassandra_ca)
    admin.execute(f"CREATE KEYSPACE {p.keyspace} WITH replication = {{'class': 'SimpleStrategy', "
                  f"'replication_factor': 1}}")
    admin.execute(f"CREATE ROLE {p.user} WITH PASSWORD = '{p.passwords['cassandra']}' AND LOGIN = true")
    admin.execute(f"GRANT ALL PERMISSIONS ON KEYSPACE {p.keyspace} TO {p.user}")

    settings = Settings()  # defaults: the topic names the example keeps
    plain_log = wiring.event_log(Settings(event_log=f"kafka://{request.getfixturevalue('kafka_bootstrap')}"))
    for topic in (settings.topics.feature_updates, settings.topics.dead_letter):
        plain_log.create_topic(topic, settings.topics.partitions)
    plain_log.close()
    principals = Principals(request.getfixturevalue("kafka_bootstrap"))
    principals.user(p.user, p.passwords["kafka"])
    principals.allow(p.user, [
        (ResourceType.TOPIC, settings.topics.feature_updates,
         [AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE]),
        (ResourceType.TOPIC, settings.topics.dead_letter, [AclOperation.WRITE, AclOperation.DESCRIBE]),
        (ResourceType.GROUP, f"ingest-{unique}", [AclOperation.READ])])
    yield p
    redis.stop()
    admin.execute(f"DROP ROLE {p.user}")
    cluster.shutdown()


def test_the_secure_settings_example_runs_end_to_end(profile, unique):
    p = profile
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAHINI_")}
    env["VAHINI_INGEST__GROUP"] = f"ingest-{unique}"  # the broker's ACLs name this test's group
    printed: list[str] = []

    def vahini(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "vahini.cli", "--settings", str(p.file), *args], env=env,
                                capture_output=True, text=True, timeout=timeout)
        printed.extend([result.stdout, result.stderr])
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    vahini("apply", str(SAMPLE_REGISTRY))
    product = f"sp-{unique}"
    events = p.etc / "events.jsonl"
    events.write_text(json.dumps({"entity": "product", "keys": {"product_id": product}, "group": "product_core",
                                  "values": {"price": 42.5, "category_id": "shoes"}}) + "\n")
    vahini("produce", str(events), "--kind", "feature-update", "--no-progress")
    vahini("ingest", "features", "--stop-at-end")

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vahini.cli", "--settings", str(p.file), "serve", "--port",
                               str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            assert server.poll() is None and time.monotonic() < deadline, "the secured server did not start"
            time.sleep(0.2)
        token_file = p.secrets / "ranker-token"
        token_file.write_text(p.token)
        reply = json.loads(vahini("query", "home_ranker", "--set", "user_id=u1", "--set", f"product_ids={product}",
                                  "--target", f"127.0.0.1:{port}", "--token-file", str(token_file),
                                  "--ca-file", str(p.serving_ca), "--json").stdout)
        assert reply["matrix"][0][reply["columns"].index("product.price")] == 42.5
    finally:
        server.terminate()
        printed.append(server.communicate(timeout=60)[0])
    everything = "\n".join(printed)
    for secret in [*p.passwords.values(), p.token]:
        assert secret not in everything
