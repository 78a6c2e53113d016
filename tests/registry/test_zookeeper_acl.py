"""The registry in ZooKeeper with ACLs: only the principal that runs `vahini apply`
writes; servers and workers read; anyone else is refused with a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kazoo.security import make_digest_acl_credential

from tests.streams.processes import settings_env
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.errors import NotAllowed
from vahini.registry import publish
from vahini.settings import Settings, ZooKeeperSettings

ADMIN_PW, READER_PW = "zk-admin-pw-91c2", "zk-reader-pw-4be0"


@pytest.mark.real_service
def test_only_the_applying_principal_writes_the_registry_and_readers_read(request, tmp_path, unique, capsys):
    hosts = request.getfixturevalue("zookeeper_hosts")
    admin_pw_file = tmp_path / "zk-admin"
    admin_pw_file.write_text(ADMIN_PW)
    readers = [make_digest_acl_credential("reader", READER_PW)]
    at = lambda zk: Settings(config_store=f"zk://{hosts}/vahini-acl-{unique}", zookeeper=zk)  # noqa: E731
    admin = at(ZooKeeperSettings(username="admin", password_file=admin_pw_file, readers=readers))
    reader = at(ZooKeeperSettings(username="reader", password=READER_PW))
    anonymous = at(ZooKeeperSettings())

    store = wiring.config_store(admin)
    publish.apply(SAMPLE_REGISTRY, store)
    store.close()

    follower = publish.RegistryFollower(wiring.config_store(reader))  # servers and workers read
    assert "home_ranker" in follower.current.models
    follower.close()
    for who in (reader, anonymous):
        store = wiring.config_store(who)
        with pytest.raises(NotAllowed, match="ZooKeeper refused to let"):
            publish.apply(SAMPLE_REGISTRY, store) if who is reader else publish.read_published(store)
        store.close()

    result = subprocess.run([sys.executable, "-m", "vahini.cli", "apply", str(SAMPLE_REGISTRY)],
                            env=settings_env(reader), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "only the principal that runs `vahini apply` may write" in result.stderr
    said = capsys.readouterr()
    everything = result.stdout + result.stderr + said.out + said.err + repr(admin) + repr(reader)
    assert ADMIN_PW not in everything and READER_PW not in everything
