"""Cassandra with security on (infra/cassandra-secure.sh): PasswordAuthenticator,
CassandraAuthorizer and client-to-node TLS. Vahini's role holds rights on its own
keyspace only; wrong credentials and a plaintext client are refused with a clear
error that never shows the password."""

from __future__ import annotations

import ssl
import time

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

from tests.conftest_backends import stack_settings
from vahini import wiring
from vahini.errors import StoreUnavailable
from vahini.ports.feature_store import FeatureRow
from vahini.ports.interaction_store import HistoryQuery, StoredInteraction
from vahini.settings import CassandraSettings

pytestmark = pytest.mark.real_service


def superuser(endpoint: str, ca: str):
    """The default superuser's session; its role appears shortly after the node first starts."""
    host, port = endpoint.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while True:
        cluster = Cluster([host], port=int(port), ssl_context=ssl.create_default_context(cafile=ca),
                          auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
        try:
            return cluster, cluster.connect()
        except Exception:
            cluster.shutdown()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def role_with_keyspace(admin, role: str, password: str, keyspace: str) -> None:
    """A keyspace, and a login role with every right on it and none elsewhere."""
    admin.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', "
                  f"'replication_factor': 1}}")
    admin.execute(f"CREATE ROLE {role} WITH PASSWORD = '{password}' AND LOGIN = true")
    admin.execute(f"GRANT ALL PERMISSIONS ON KEYSPACE {keyspace} TO {role}")


def test_the_store_and_the_cold_tier_run_over_tls_as_a_role_limited_to_its_keyspace(request, tmp_path, unique,
                                                                                    cassandra_secure, capsys):
    endpoint, ca = cassandra_secure
    role, password, keyspace = f"vahini_{unique}", f"cass-pw-{unique}", f"sec_{unique}"
    cluster, admin = superuser(endpoint, ca)
    role_with_keyspace(admin, role, password, keyspace)
    password_file = tmp_path / "cassandra-password"
    password_file.write_text(password + "\n")
    base = stack_settings("embedded", request, tmp_path, unique)
    settings = base.model_copy(update={"feature_store": f"cassandra://{endpoint}/{keyspace}",
                                       "cassandra": CassandraSettings(username=role, password_file=password_file,
                                                                      ca_file=ca)})
    now = int(time.time() * 1000)
    store = wiring.feature_store(settings)
    store.write([FeatureRow("user", "u1", "user_activity", now, b"blob-1")])
    assert store.read("user", ["u1"], ["user_activity"])[("u1", "user_activity")].blob == b"blob-1"
    store.close()
    cold = wiring.cold_interactions(settings)
    cold.write([StoredInteraction("e1", "u1", "p1", "c1", "CLICK", now)])
    assert [i.event_id for i in cold.read(HistoryQuery("u1"))] == ["e1"]
    cold.close()

    elsewhere = settings.model_copy(update={"feature_store": f"cassandra://{endpoint}/other_{unique}"})
    with pytest.raises(StoreUnavailable, match="Unauthorized"):  # no rights outside its keyspace
        wiring.feature_store(elsewhere)
    wrong = settings.model_copy(update={"cassandra": CassandraSettings(username=role, password="not-it",
                                                                       ca_file=ca)})
    with pytest.raises(StoreUnavailable, match="password are incorrect") as info:
        wiring.feature_store(wrong)
    assert "not-it" not in str(info.value)
    plaintext = settings.model_copy(update={"cassandra": CassandraSettings(username=role, password=password)})
    with pytest.raises(StoreUnavailable, match="Connection reset by peer"):  # refused, not left to time out
        wiring.feature_store(plaintext)
    admin.execute(f"DROP ROLE {role}")
    admin.execute(f"DROP KEYSPACE {keyspace}")
    cluster.shutdown()
    printed = capsys.readouterr()
    assert password not in printed.out + printed.err + repr(settings)
