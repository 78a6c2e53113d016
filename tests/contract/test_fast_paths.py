"""The setting fast_paths (vahini.fast_paths): off, every fast path gives way to Python
code and the libraries' public APIs. The contract suites run each adapter both ways
(tests/contract/conftest.py); these tests check that `public` really is public, so
that those runs cannot pass on the fast paths by mistake."""

from __future__ import annotations

import importlib
import io

import fastavro
import pytest
from cassandra.protocol import ProtocolHandler
from cassandra.query import BatchStatement

from vahini import fast_paths, wiring
from vahini.adapters import compiled_cql
from vahini.adapters.cassandra_session import EncodedStatements, PreEncodingProtocolHandler
from vahini.adapters.redis_wire import PublicWire, Wire
from vahini.codecs import avro, feature_blob, interaction_reader, loops
from vahini.codecs.avro import FEATURE_UPDATE, AvroCodec, SchemaCatalog
from vahini.ports.feature_store import FeatureRow
from vahini.settings import Settings
from vahini.streams import window_loops
from vahini.synthetic import synthesize

# Every module with a fast path; a new one must register its switch (and join this list).
SWITCHED = {"vahini.adapters.compiled_cql", "vahini.adapters.redis_wire.compiled", "vahini.codecs.avro",
            "vahini.codecs.feature_blob.compiled", "vahini.codecs.interaction_reader", "vahini.codecs.loops.compiled",
            "vahini.feature_cache.compiled", "vahini.serving.transforms.compiled", "vahini.streams.window_loops"}


@pytest.fixture
def public():
    wiring.use_fast_paths(Settings(fast_paths=False))
    yield
    fast_paths.use(True)


def test_every_module_with_a_fast_path_has_registered_its_switch():
    for module in ("vahini.feature_cache", "vahini.serving.transforms"):  # imported for their registration
        importlib.import_module(module)
    assert SWITCHED <= set(fast_paths.registered())


def test_off_turns_every_compiled_loop_off_and_on_turns_them_back(public):
    assert loops.compiled is None and feature_blob.compiled is None
    assert compiled_cql.in_use() is None
    assert interaction_reader._use is False
    assert window_loops.step_users is window_loops.step_users_py
    fast_paths.use(True)
    assert loops.compiled is loops.built and feature_blob.compiled is loops.built
    assert compiled_cql.in_use() is compiled_cql.built
    assert window_loops.step_users is not window_loops.step_users_py


def test_off_the_codec_reads_with_schemaless_reader_only(public, monkeypatch):
    def private_reader_called(*_args, **_kwargs):
        raise AssertionError("the private reader ran with fast paths off")
    monkeypatch.setattr(avro, "_read_data", private_reader_called)
    monkeypatch.setattr(avro.feature_update_reader, "read", private_reader_called)
    codec = AvroCodec(SchemaCatalog.default())
    writer = codec.catalog.reader(FEATURE_UPDATE).parsed
    for message in synthesize(200, seed=5).payloads:
        body = io.BytesIO(message[avro.HEADER_LEN:])
        assert codec.decode(message)[1] == fastavro.schemaless_reader(body, writer)


@pytest.mark.real_service
def test_off_cassandra_writes_plain_batches_through_the_drivers_own_handler(public, cassandra_endpoint,
                                                                            cassandra_keyspace):
    store = wiring.feature_store(Settings(feature_store=f"cassandra://{cassandra_endpoint}/{cassandra_keyspace}",
                                          fast_paths=False))
    try:
        assert store._connection.session.client_protocol_handler is ProtocolHandler
        rows = [FeatureRow("user", f"u{i}", "g", 1_700_000_000_000 + i, b"blob") for i in range(10)]
        batches = store._batches(rows, 1_700_000_000_000)
        assert sum(len(b._statements_and_parameters) for b in batches) == 10
        assert all(type(b) is BatchStatement and type(b._statements_and_parameters) is not EncodedStatements
                   for b in batches)
        store.write(rows)
        assert set(store.read("user", ["u0", "u9"], ["g"])) == {("u0", "g"), ("u9", "g")}
    finally:
        store.close()
    fast_paths.use(True)
    store = wiring.feature_store(Settings(feature_store=f"cassandra://{cassandra_endpoint}/{cassandra_keyspace}"))
    try:  # and on, the pre-encoded path this test would otherwise not tell apart
        assert store._connection.session.client_protocol_handler is PreEncodingProtocolHandler
        assert type(store._batches(rows, 1_700_000_000_000)[0]._statements_and_parameters) is EncodedStatements
    finally:
        store.close()


@pytest.mark.real_service
def test_off_the_redis_tiers_call_through_redis_py_pipelines(public, redis_url):
    tier = wiring.hot_tier(Settings(feature_cache=redis_url, fast_paths=False))
    try:
        assert type(tier._wire) is PublicWire
    finally:
        tier.close()
    tier = wiring.hot_tier(Settings(feature_cache=redis_url))
    try:
        assert type(tier._wire) is Wire
    finally:
        tier.close()
