"""The registry tests run against each config store: a directory and ZooKeeper."""

import pytest

from vahini.settings import Settings


@pytest.fixture(params=["file", pytest.param("zookeeper", marks=pytest.mark.real_service)])
def settings(request, tmp_path, unique):
    if request.param == "file":
        return Settings(config_store=f"file://{tmp_path}/config")
    return Settings(config_store=f"zk://{request.getfixturevalue('zookeeper_hosts')}/vahini-test-{unique}")
