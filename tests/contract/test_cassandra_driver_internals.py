"""The Cassandra store writes rows without a BoundStatement each: it serializes the
INSERT's values and the routing key itself and appends them to the batch through a
private method of scylla-driver. This holds only for the driver version it was
measured with; these tests fail loudly when either changes."""

from __future__ import annotations

import time
from importlib.metadata import version

import pytest

from vahini import wiring
from vahini.adapters.cassandra_feature_store import RowSerializer
from vahini.ports.feature_store import FeatureRow, write_timestamp_us
from vahini.settings import Settings

PINNED = "3.29.12"  # pyproject.toml pins scylla-driver to this version


def test_the_driver_is_the_version_the_fast_path_was_written_for():
    assert version("scylla-driver") == PINNED, "re-check RowSerializer against bind() before moving the pin"


def test_the_private_parts_the_writers_use_are_still_there():
    """Without a server: each private attribute of scylla-driver that the pre-encoded
    batches use (the feature store's, the cold interaction tier's), failing by name."""
    import inspect

    from cassandra import ConsistencyLevel
    from cassandra.protocol import BatchMessage, ProtocolHandler
    from cassandra.query import BatchStatement, BatchType

    batch = BatchStatement(BatchType.UNLOGGED)
    assert isinstance(getattr(batch, "_statements_and_parameters", None), list), \
        "BatchStatement._statements_and_parameters (EncodedStatements is set in its place)"
    message = BatchMessage(BatchType.UNLOGGED, [], ConsistencyLevel.ONE, None, None, None)
    for name in ("batch_type", "queries", "consistency_level", "serial_consistency_level", "timestamp", "keyspace"):
        assert hasattr(message, name), f"BatchMessage.{name} (read by _PreEncodedBatch.send_body)"
    assert callable(getattr(BatchMessage, "send_body", None)), "BatchMessage.send_body"
    assert isinstance(inspect.getattr_static(ProtocolHandler, "encode_message", None), classmethod), \
        "ProtocolHandler.encode_message (PreEncodingProtocolHandler overrides it)"


def test_a_bound_statement_routing_key_is_still_a_property_that_a_subclass_can_replace():
    """RoutedBoundStatement (the feature store's bulk reads) shadows BoundStatement.routing_key,
    which the token-aware policy reads, with a plain attribute."""
    from cassandra.query import BoundStatement

    from vahini.adapters.cassandra_feature_store import RoutedBoundStatement

    assert isinstance(BoundStatement.__dict__.get("routing_key"), property), "BoundStatement.routing_key changed"
    assert "__slots__" not in BoundStatement.__dict__, "BoundStatement has __slots__ now: routing_key cannot be set"
    assert RoutedBoundStatement.routing_key is None


@pytest.mark.real_service
@pytest.mark.parametrize("ttl", [None, 3600])
def test_values_and_routing_keys_are_byte_identical_to_the_drivers_bind(request, ttl):
    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    store = wiring.feature_store(Settings(feature_store=f"cassandra://{endpoint}/{keyspace}"))
    now = int(time.time() * 1000)
    rows = [FeatureRow("user", "u1", "user_activity", now, b"\x01\x02blob"),
            FeatureRow("user_category", "ü|ÇAT", "user_category_affinity", now - 5, b""),
            FeatureRow("product", "p" * 300, "product_core", 0, bytes(range(256)))]
    serializer = RowSerializer()
    for r in rows * 2:  # the second round reads the serializer's kept name encodings
        bound = store._insert.bind((r.entity, r.key, r.group, r.event_time_ms, r.blob,
                                    write_timestamp_us(r.event_time_ms, r.blob), ttl or 0))
        routing_key, values = serializer.serialize(r, ttl)
        assert values == list(bound.values)
        assert routing_key == bound.routing_key
    store.close()


@pytest.fixture(params=["compiled", "python"])
def encoders(request):
    """Runs a test with the compiled CQL encoders and batch loops, then with the Python ones."""
    from vahini.adapters import compiled_cql

    if request.param == "compiled" and compiled_cql.built is None:
        pytest.skip("vahini.adapters._cql_rows was not built")
    compiled_cql.use_compiled(request.param == "compiled")
    yield request.param
    compiled_cql.use_compiled(True)


def _batched(batches) -> list:
    """What a list of batches sends: each batch's routing key, statements and encoded bodies."""
    return [(b.routing_key, list(b._statements_and_parameters), list(b._statements_and_parameters.encoded))
            for b in batches]


@pytest.mark.real_service
def test_compiled_and_python_batching_send_the_same_batches(request):
    from vahini.adapters import compiled_cql
    from vahini.ports.interaction_store import StoredInteraction

    if compiled_cql.built is None:
        pytest.skip("vahini.adapters._cql_rows was not built")
    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    # Both bounds bind: 20 rows are over 2 KiB for most batches
    settings = Settings(feature_store=f"cassandra://{endpoint}/{keyspace}", cassandra={"batch_rows": 20,
                                                                                        "batch_bytes": 2048})
    store, cold = wiring.feature_store(settings), wiring.cold_interactions(settings)
    now = int(time.time() * 1000)
    rows = [FeatureRow(["user", "product"][i % 2], f"k{i % 50}", ["g1", "g2"][i % 3 == 0], now - i * 20,
                       bytes(i % 200), ttl_s=(i % 4) * 3) for i in range(300)]
    items = [StoredInteraction(f"e{i}", f"u{i % 40}", f"p{i}", [None, "c"][i % 2], ["CLICK", "ORDER"][i % 3 == 0],
                               now - i * 86_400_000 // 7, {"k": "v" * (i % 300)}) for i in range(400)]
    made = {}
    try:
        for mode in (False, True):
            compiled_cql.use_compiled(mode)
            batches, partitions = cold._batches(items, now)
            made[mode] = (_batched(store._batches(rows, now)), _batched(batches), partitions)
    finally:
        compiled_cql.use_compiled(True)
    assert made[True] == made[False]
    assert len(made[True][0]) > 10 and len(made[True][1]) > 10
    store.close()
    cold.close()


@pytest.mark.real_service
def test_batches_hold_every_live_row_once_with_its_ttl_and_replica(request, encoders):
    """The one-pass batching: every live row in exactly one batch, its values those of
    RowSerializer with the TTL left, each batch within its bounds and of one primary replica."""
    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    store = wiring.feature_store(Settings(feature_store=f"cassandra://{endpoint}/{keyspace}",
                                          cassandra={"batch_rows": 7, "batch_bytes": 2048}))
    now = int(time.time() * 1000)
    rows = [FeatureRow("user", f"u{i}", "user_activity", now - i * 1000, bytes(i % 200), ttl_s=(i % 4) * 3)
            for i in range(300)]
    live = [r for r in rows if r.ttl_left_s(now) is None or r.ttl_left_s(now) > 0]
    assert 0 < len(live) < len(rows)
    batches = store._batches(rows, now)
    statements = [params for b in batches for _, _, params in b._statements_and_parameters]
    expected = [RowSerializer().serialize(r, r.ttl_left_s(now))[1] for r in live]
    assert sorted(statements) == sorted(expected)
    metadata = store._cluster.metadata
    for b in batches:
        assert 0 < len(b) <= 7
        assert sum(len(params[4]) + 64 for _, _, params in b._statements_and_parameters) <= 2048 or len(b) == 1
        primaries = {metadata.get_replicas(keyspace, RowSerializer().serialize(
            FeatureRow(p[0].decode(), p[1].decode(), "", 0, b""), None)[0])[0] for _, _, p in b._statements_and_parameters}
        assert len(primaries) == 1
    store.close()


def primaries_agree_with_the_driver(settings: Settings, keys: int = 3000) -> int:
    """PrimaryReplicas against Metadata.get_replicas(...)[0] for many partitions; the
    number of distinct primaries seen."""
    import random

    store = wiring.feature_store(settings)
    keyspace, metadata = store._keyspace, store._cluster.metadata
    primary = store._primary.lookup()
    rng, serializer, seen = random.Random(7), RowSerializer(), set()
    for i in range(keys):
        key = "".join(rng.choice("abcxyz0129|ü") for _ in range(rng.randrange(1, 30)))
        routing_key, _ = serializer.serialize(FeatureRow(rng.choice(["user", "product"]), key, "g", 0, b""), None)
        expected = metadata.get_replicas(keyspace, routing_key)
        assert primary(routing_key) == (expected[0] if expected else None), key
        seen.add(primary(routing_key))
    store.close()
    return len(seen)


@pytest.mark.real_service
def test_primary_replicas_are_the_drivers(request):
    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    assert primaries_agree_with_the_driver(Settings(feature_store=f"cassandra://{endpoint}/{keyspace}")) == 1


@pytest.mark.real_service
def test_cold_batches_hold_every_live_interaction_once_within_bounds_and_of_one_replica(request, encoders):
    from vahini.ports.interaction_store import StoredInteraction

    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    cold = wiring.cold_interactions(Settings(feature_store=f"cassandra://{endpoint}/{keyspace}",
                                             cassandra={"batch_rows": 7, "batch_bytes": 2048}))
    now = int(time.time() * 1000)
    items = [StoredInteraction(f"e{i}", f"u{i % 40}", f"p{i}", None, "CLICK", now - i * 86_400_000,
                               {"k": "v" * (i % 300)}) for i in range(400)]
    live = [i for i in items if i.event_time_ms > now - cold.retention_s * 1000]
    assert 0 < len(live) < len(items)
    batches, partitions = cold._batches(items, now)
    sent = sorted(params[4] for b in batches for _, _, params in b._statements_and_parameters)
    assert sent == sorted(i.event_id.encode() for i in live)
    assert partitions == len({(i.user_id, i.event_time_ms // cold._bucket_ms) for i in live})
    metadata = cold._connection.cluster.metadata
    for b in batches:
        statements = b._statements_and_parameters
        assert 0 < len(statements) <= 7
        assert sum(len(e) for e in statements.encoded) <= 2048 or len(statements) == 1
        assert len({metadata.get_replicas(keyspace, b"".join(len(v).to_bytes(2, "big") + v + b"\x00"
                                                             for v in p[:2]))[0]
                    for _, _, p in statements}) == 1
    cold.close()


@pytest.mark.real_service
def test_interactions_are_serialized_byte_for_byte_as_the_drivers_bind(request):
    """The cold interaction tier's InteractionSerializer: values, routing key and the BATCH
    body of each statement, against bind() and the driver's own encoding of the batch."""
    from cassandra import ConsistencyLevel
    from cassandra.protocol import BatchMessage, ProtocolHandler

    from vahini.adapters.cassandra_cold_interactions import InteractionSerializer
    from vahini.adapters.cassandra_session import PreEncodingProtocolHandler
    from vahini.ports.interaction_store import StoredInteraction

    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    cold = wiring.cold_interactions(Settings(feature_store=f"cassandra://{endpoint}/{keyspace}"))
    now = int(time.time() * 1000)
    items = [StoredInteraction("e1", "u1", "p1", "c1", "CLICK", now, {}),
             StoredInteraction("é2", "ü" * 200, "p" * 70_000, None, "ORDER", now - 86_400_000 * 40,
                               {"a": "1", "ß": "ü" * 300, "": ""}),
             StoredInteraction("e3", "u3", "p3", "", "WISHLIST", 0, {"k": ""})]
    serializer = InteractionSerializer(cold._insert.query_id)
    for n, i in enumerate(items):
        bucket, ttl = i.event_time_ms // cold._bucket_ms + n, 3600 * n
        bound = cold._insert.bind((i.user_id, bucket, i.type, i.event_time_ms, i.event_id, i.product_id,
                                   i.category_id, dict(i.attributes), ttl))
        routing_key, values, _ = serializer.encode(i, bucket, ttl)
        assert values == list(bound.values)
        assert routing_key == bound.routing_key
    batches, partitions = cold._batches(items + items[:1], now)  # the third is past retention
    assert partitions == 2 and sum(len(b._statements_and_parameters) for b in batches) == 3
    for batch in batches:
        statements = batch._statements_and_parameters

        def frame(handler, queries):
            message = BatchMessage(batch.batch_type, queries, ConsistencyLevel.LOCAL_QUORUM, None, None, None)
            return handler.encode_message(message, 7, 4, compressor=None, allow_beta_protocol_version=False,
                                          protocol_features=None)
        assert frame(PreEncodingProtocolHandler, statements) == frame(ProtocolHandler, list(statements))
    cold.close()


@pytest.mark.real_service
@pytest.mark.parametrize("protocol_version", [4, 5])
def test_a_batch_of_pre_encoded_statements_is_written_byte_for_byte_as_the_driver_writes_it(request,
                                                                                            protocol_version):
    """The store's batches carry each statement already encoded (EncodedStatements), and the
    session writes them with PreEncodingProtocolHandler: the frame must be the driver's own."""
    from cassandra import ConsistencyLevel
    from cassandra.protocol import BatchMessage, ProtocolHandler

    from vahini.adapters.cassandra_session import EncodedStatements, PreEncodingProtocolHandler

    endpoint, keyspace = request.getfixturevalue("cassandra_endpoint"), request.getfixturevalue("cassandra_keyspace")
    store = wiring.feature_store(Settings(feature_store=f"cassandra://{endpoint}/{keyspace}"))
    assert store._connection.session.client_protocol_handler is PreEncodingProtocolHandler
    now = int(time.time() * 1000)
    rows = [FeatureRow(e, f"k{i}" * (1 + i % 90), g, now - i, bytes(range(i % 256)) * (1 + i % 3), ttl_s=(i % 3) * 900)
            for i, (e, g) in enumerate([("user", "user_activity"), ("product", "product_core"),
                                        ("user_category", "ü|ÇAT")] * 70)]
    batches = store._batches(rows, now)
    assert batches and all(type(b._statements_and_parameters) is EncodedStatements for b in batches)
    options = [(None, None, None), (ConsistencyLevel.LOCAL_SERIAL, 1_700_000_000_000_000, None)]
    if protocol_version >= 5:
        options.append((None, None, keyspace))
    for batch in batches:
        statements = batch._statements_and_parameters
        for serial, timestamp, ks in options:
            def frame(handler, queries, compressor=None):
                message = BatchMessage(batch.batch_type, queries, ConsistencyLevel.LOCAL_QUORUM, serial, timestamp, ks)
                return handler.encode_message(message, 7, protocol_version, compressor=compressor,
                                              allow_beta_protocol_version=False, protocol_features=None)
            assert frame(PreEncodingProtocolHandler, statements) == frame(ProtocolHandler, list(statements))
            reverse = lambda body: body[::-1]  # noqa: E731 - any compressor sees the same body
            assert frame(PreEncodingProtocolHandler, statements, reverse) == frame(ProtocolHandler, list(statements),
                                                                                   reverse)
        tampered = EncodedStatements()
        tampered.extend(statements)
        tampered.encoded = [s[:-1] + b"\x00" for s in statements.encoded]
        assert frame(PreEncodingProtocolHandler, tampered) != frame(ProtocolHandler, list(statements))  # encodings used
    store.close()
