"""Vector indexes in the registry (`indexes:`): validated with file and line, published
and read back."""

from __future__ import annotations

import pytest

from tests.registry.test_apply import problems, write
from vahini.registry.loader import load_registry
from vahini.registry.model import Registry, VectorIndex

BASE = """\
entities:
  - {name: user, keys: [user_id]}
  - {name: product, keys: [product_id]}
feature_groups:
  - name: stats
    entity: product
    version: 1
    features:
      - {name: ctr, type: float32}
      - {name: emb, type: vector, dim: 4}
  - name: core
    entity: product
    version: 1
    features:
      - {name: in_stock, type: bool, default: true}
      - {name: category_id, type: string}
      - {name: price, type: float}
  - name: profile
    entity: user
    version: 1
    features:
      - {name: city, type: string}
"""
INDEX = """\
indexes:
  - name: similar
    group: stats
    feature: emb
    metric: METRIC
    filters: FILTERS
"""
INDEX_LINE = 2  # of the index's mapping in indexes.yaml


def registry_dir(tmp_path, metric="cosine", filters="[core.in_stock, core.category_id]", **changes):
    text = INDEX.replace("METRIC", metric).replace("FILTERS", filters)
    for old, new in changes.items():
        text = text.replace(old, new)
    return write(tmp_path, base=BASE, indexes=text)


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_an_index_loads_with_its_metric_and_filters(tmp_path, metric):
    registry = load_registry(registry_dir(tmp_path, metric))
    assert registry.indexes == {"similar": VectorIndex("similar", "stats", "emb", metric,
                                                       ("core.in_stock", "core.category_id"))}
    assert {i.name for i in registry.indexes_of("stats")} == {i.name for i in registry.indexes_of("core")} == {
        "similar"}
    assert registry.indexes_of("profile") == []


def test_an_index_survives_publishing_and_a_registry_without_indexes_publishes_as_before(tmp_path):
    registry = load_registry(registry_dir(tmp_path))
    assert Registry.from_json_dict(registry.to_json_dict()) == registry
    without = Registry(registry.entities, registry.groups, {})
    assert "indexes" not in without.to_json_dict()  # older servers read it during a rolling upgrade


BAD = {
    "not a vector": ({"feature: emb": "feature: ctr"}, "feature 'stats.ctr' is of type float32; an index needs a "
                                                       "float vector", 4),
    "unknown feature": ({"feature: emb": "feature: nope"}, "group 'stats' has no feature 'nope'", 4),
    "unknown group": ({"group: stats": "group: nope"}, "references unknown feature group 'nope'", 3),
    "unknown metric": ({"metric: cosine": "metric: hamming"}, "metric 'hamming' must be one of: cosine, dot, l2",
                       5),
    "filter of another entity": ({"core.category_id": "profile.city"},
                                 "filter 'profile.city' belongs to entity 'user', not 'product'", 6),
    "filter of a float": ({"core.category_id": "core.price"}, "filter 'core.price' is of type float", 6),
    "filter unknown": ({"core.category_id": "core.nope"}, "filter 'core.nope' is not a feature of any group", 6),
    "filter not dotted": ({"core.category_id": "category_id"}, "filters must be a list of <group>.<feature>", 6),
    "unknown field": ({"metric: cosine": "metric: cosine\n    k: 5"}, "index has unknown field 'k'", 6),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_index_is_refused_with_file_line_and_reason(tmp_path, case):
    changes, message, line = BAD[case]
    found = problems(registry_dir(tmp_path, **changes))
    assert any(f"indexes.yaml:{line}:" in p and message in p for p in found), found


def test_two_indexes_of_one_name_are_refused(tmp_path):
    text = INDEX.replace("METRIC", "cosine").replace("FILTERS", "[]")
    found = problems(write(tmp_path, base=BASE, indexes=text + text.replace("indexes:\n", "")))
    assert any("duplicate index 'similar' (first defined at" in p for p in found), found
