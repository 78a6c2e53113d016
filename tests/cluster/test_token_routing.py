"""The store's own token-ring table picks the primary replica the driver picks, on three nodes."""

import pytest

from tests.contract.test_cassandra_driver_internals import primaries_agree_with_the_driver

pytestmark = [pytest.mark.real_service, pytest.mark.cluster]


def test_primary_replicas_are_the_drivers_on_three_nodes(settings):
    assert primaries_agree_with_the_driver(settings) == 3
