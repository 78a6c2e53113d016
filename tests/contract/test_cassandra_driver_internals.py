"""The Cassandra store writes rows without a BoundStatement each: it serializes the
INSERT's values and the routing key itself and appends them to the batch through a
private method of scylla-driver. This holds only for the driver version it was
measured with; these tests fail loudly when either changes."""

from __future__ import annotations

import time
from importlib.metadata import version

import pytest

from vahini import wiring
from vahini.adapters.cassandra_feature_store import insert_values, row_routing_key
from vahini.ports.feature_store import FeatureRow, write_timestamp_us
from vahini.settings import Settings

PINNED = "3.29.12"  # pyproject.toml pins scylla-driver to this version


def test_the_driver_is_the_version_the_fast_path_was_written_for():
    from cassandra.query import BatchStatement

    assert version("scylla-driver") == PINNED, "re-check insert_values against bind() before moving the pin"
    assert callable(getattr(BatchStatement, "_add_statement_and_params", None))


@pytest.mark.real_service
@pytest.mark.parametrize("ttl", [None, 3600])
def test_values_and_routing_keys_are_byte_identical_to_the_drivers_bind(request, ttl):
    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    store = wiring.feature_store(Settings(feature_store=f"cassandra://{endpoint}/{keyspace}"))
    now = int(time.time() * 1000)
    rows = [FeatureRow("user", "u1", "user_activity", now, b"\x01\x02blob"),
            FeatureRow("user_category", "ü|ÇAT", "user_category_affinity", now - 5, b""),
            FeatureRow("product", "p" * 300, "product_core", 0, bytes(range(256)))]
    for r in rows:
        bound = store._insert.bind((r.entity, r.key, r.group, r.event_time_ms, r.blob,
                                    write_timestamp_us(r.event_time_ms, r.blob), ttl or 0))
        assert insert_values(r, ttl) == list(bound.values)
        assert row_routing_key(r.entity, r.key) == bound.routing_key
    store.close()
