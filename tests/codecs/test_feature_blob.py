import numpy as np
import pytest

from vahini.codecs import feature_blob
from vahini.errors import DecodeError
from vahini.registry.model import Feature

FEATURES = (
    Feature("age", "int", 0), Feature("clicks", "int32", -1), Feature("score", "float", 0.5),
    Feature("ctr", "float32", 0.0), Feature("premium", "bool", False), Feature("city", "string", "unknown"),
    Feature("emb", "vector", (0.0, 0.0, 0.0), dim=3), Feature("brand", "string", ""),
)


def test_round_trip_with_defaults_for_unsent_features():
    blob = feature_blob.encode(FEATURES, 7, 1234, {"age": 2**40, "ctr": 0.25, "city": "Pune ✓", "emb": [1, 2, 3]})
    assert feature_blob.read_header(blob) == (7, 1234)
    d = feature_blob.decode(blob, FEATURES)
    assert d.as_dict() == {"age": 2**40, "clicks": -1, "score": 0.5, "ctr": 0.25, "premium": False,
                           "city": "Pune ✓", "emb": [1.0, 2.0, 3.0], "brand": ""}
    assert d.present.tolist() == [True, False, False, True, False, True, True, False]


def test_numeric_parts_are_numpy_views_of_the_blob():
    blob = feature_blob.encode(FEATURES, 1, 1, {"age": 5, "emb": [0.5, 1.5, 2.5]})
    d = feature_blob.decode(blob, FEATURES)
    assert d.scalars["int"].dtype == np.dtype("<i8") and d.scalars["int"].base is not None
    assert d.vectors[0].dtype == np.float32 and d.vectors[0].tolist() == [0.5, 1.5, 2.5]
    assert d.scalars["float32"].dtype == np.float32


def test_layout_is_compact():
    blob = feature_blob.encode(FEATURES, 1, 1, {})
    fixed = 16 + 1 + 8 + 4 + 8 + 4 + 1 + 3 * 4
    strings = 4 + len("unknown") + 4
    assert len(blob) == fixed + strings


def test_garbage_and_truncation_are_typed_errors():
    with pytest.raises(DecodeError):
        feature_blob.read_header(b"nope")
    with pytest.raises(DecodeError):
        feature_blob.read_header(b"XX" + bytes(14))
    blob = feature_blob.encode(FEATURES, 1, 1, {})
    with pytest.raises(DecodeError):
        feature_blob.decode(blob[:20], FEATURES)
