"""vahini.adapters._cql_rows against the Python RowSerializer.encode and
InteractionSerializer.encode it stands in for: the same routing keys, values and BATCH
statement bytes for any row or interaction. The Python one
is itself checked against the driver's bind() and BATCH frame on a real Cassandra
(test_cassandra_driver_internals.py, which runs with the compiled one on). No services."""

import random
import struct

import pytest

from vahini.adapters import cassandra_feature_store as store
from vahini.adapters import compiled_cql
from vahini.adapters.cassandra_cold_interactions import InteractionSerializer
from vahini.ports.feature_store import FeatureRow
from vahini.ports.interaction_store import StoredInteraction

needs_compiled = pytest.mark.skipif(compiled_cql.built is None, reason="vahini.adapters._cql_rows was not built")
HEAD = b"\x01\x00\x10" + bytes(range(16)) + b"\x00\x07"


def _rows(rng: random.Random) -> list[FeatureRow]:
    words = ["u1", "ü|ÇAT", "", "p" * 300, "東京|c7"]
    return [FeatureRow(rng.choice(["user", "product", "user_category", "é"]), rng.choice(words) + str(i),
                       rng.choice(["user_activity", "g", "user_category_interaction_windows"]),
                       rng.choice([0, 1, 1_780_000_000_123, 9_223_372_036_854_774, -5]),
                       bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 40, 3000]))), 0)
            for i in range(500)]


def _encoded(rows, ttl):
    serializer = store.RowSerializer()
    return [serializer.encode(r, ttl, HEAD) for r in rows * 2]  # the second round reads the kept names


def test_the_compiled_row_encoder_is_built():
    assert compiled_cql.built is not None, "vahini.adapters._cql_rows was not built: see the pip install output"


@needs_compiled
@pytest.mark.parametrize("ttl", [None, 0, 1, 604_800, 2**31 - 1])
def test_the_compiled_encoder_makes_the_python_encoders_bytes(ttl):
    rows = _rows(random.Random(ttl))
    try:
        assert compiled_cql.use_compiled(False) is False
        expected = _encoded(rows, ttl)
    finally:
        assert compiled_cql.use_compiled(True) is True
    assert _encoded(rows, ttl) == expected


@needs_compiled
@pytest.mark.parametrize("row, ttl", [(FeatureRow("user", "u1", "g", 5, b"", 0), 2**31),
                                      (FeatureRow("user", "u1", "g", 2**62, b"", 0), None)])
def test_both_encoders_refuse_a_ttl_or_timestamp_out_of_range(row, ttl):
    with pytest.raises(OverflowError):
        store.RowSerializer().encode(row, ttl, HEAD)
    compiled_cql.use_compiled(False)
    try:
        with pytest.raises(struct.error):
            store.RowSerializer().encode(row, ttl, HEAD)
    finally:
        compiled_cql.use_compiled(True)


def _interactions(rng: random.Random) -> list[StoredInteraction]:
    words = ["u1", "ü|ÇAT", "", "p" * 300, "東京"]
    return [StoredInteraction(rng.choice(words) + str(i), rng.choice(words), rng.choice(words),
                              rng.choice([None, "", "shoes", "東京"]), rng.choice(["CLICK", "ORDER", "WISHLIST"]),
                              rng.choice([0, -5, 1_780_000_000_123, 2**62]),
                              rng.choice([{}, {"position": "3"}, {"ü": "", "surface": "home" * 40}]))
            for i in range(500)]


@needs_compiled
def test_the_compiled_interaction_encoder_makes_the_python_encoders_bytes():
    items = _interactions(random.Random(3))
    rng = random.Random(4)
    args = [(i, rng.choice([0, 1, 20_000, 2**31 - 1, -1]), rng.choice([1, 86_400, 2**31 - 1])) for i in items * 2]
    serializer = InteractionSerializer(b"query-id-16bytes")
    try:
        compiled_cql.use_compiled(False)
        expected = [serializer.encode(*a) for a in args]
    finally:
        compiled_cql.use_compiled(True)
    assert [InteractionSerializer(b"query-id-16bytes").encode(*a) for a in args] == expected
