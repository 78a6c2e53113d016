"""Vector indexes in the registry (`indexes:`): validated with file and line, published
and read back."""

from __future__ import annotations

import pytest

from tests.registry.test_apply import problems, write
from vahini.registry.loader import load_registry
from vahini.registry.model import Lookup, Registry, VectorIndex

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


def test_an_index_without_filters_or_metric_is_cosine_and_unfiltered(tmp_path):
    text = "indexes:\n  - {name: plain, group: stats, feature: emb}\n"
    registry = load_registry(write(tmp_path, base=BASE, indexes=text))
    assert registry.indexes["plain"] == VectorIndex("plain", "stats", "emb", "cosine", ())


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


CANDIDATES = """\
indexes:
  - {name: similar, group: stats, feature: emb, filters: [core.in_stock]}
models:
  - name: near
    context: [user_id]
    lookups:
      - {name: me, group: taste, keys: {user_id: context.user_id}}
      - {name: item, group: core, keys: {product_id: row}}
    candidates: {name: hits, index: similar, query: me.emb, k: 50, filters: {in_stock: true}}
    rows: hits
    features: [hits.ctr, item.price]
"""
TASTE = BASE + """\
  - name: taste
    entity: user
    version: 1
    features:
      - {name: emb, type: vector, dim: 4}
      - {name: short, type: vector, dim: 2}
"""


def test_a_candidates_step_gives_the_graph_a_lookup_of_the_index_group_keyed_by_the_row(tmp_path):
    registry = load_registry(write(tmp_path, base=TASTE, graph=CANDIDATES))
    graph = registry.models["near"]
    assert graph.rows == "hits" and graph.candidates.k == 50 and graph.candidates.filters == (("in_stock", True),)
    assert graph.lookups[-1] == Lookup("hits", "stats", (("product_id", "row"),))
    assert Registry.from_json_dict(registry.to_json_dict()) == registry


BAD_CANDIDATES = {
    "unknown index": ({"index: similar, query": "index: nope, query"}, "unknown index 'nope'", 9),
    "query not a vector of the dimension": ({"query: me.emb": "query: me.short"},
                                            "query 'me.short' must be a vector of 4 dimensions", 9),
    "query keyed by the row": ({"query: me.emb": "query: item.price"},
                               "query lookup 'item' must be keyed by context ids only", 9),
    "query not a lookup": ({"query: me.emb": "query: emb"}, "query 'emb' must be <lookup>.<feature>", 9),
    "k too big": ({"k: 50": "k: 5000"}, "k 5000 is more than 1000", 9),
    "unknown filter": ({"{in_stock: true}": "{brand: acme}"}, "index 'similar' has no filter 'brand'", 9),
    "filter from a missing context id": ({"{in_stock: true}": "{in_stock: context.shop}"},
                                         "filter in_stock: context has no 'shop'", 9),
    "rows not the step": ({"rows: hits": "rows: nope"}, "rows 'nope' is not in its context nor the name of its "
                                                         "candidates step ('hits')", 10),
}


@pytest.mark.parametrize("case", BAD_CANDIDATES, ids=list(BAD_CANDIDATES))
def test_a_bad_candidates_step_is_refused_with_file_line_and_reason(tmp_path, case):
    changes, message, line = BAD_CANDIDATES[case]
    text = CANDIDATES
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    found = problems(write(tmp_path, base=TASTE, graph=text))
    assert any(f"graph.yaml:{line}:" in p and message in p for p in found), found
