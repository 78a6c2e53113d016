"""Model graphs in the registry: transforms, sequences and model nodes validated with
file and line; versions assigned by publish, kept for pinning, retired when they no
longer fit the groups."""

from __future__ import annotations

import pytest

from tests.registry.test_apply import problems, write
from vahini import wiring
from vahini.registry import publish

ENTITIES = """\
entities:
  - {name: user, keys: [user_id]}
  - {name: product, keys: [product_id]}
"""
GROUPS = """\
feature_groups:
  - name: items
    entity: product
    version: 1
    features:
      - {name: price, type: float}
      - {name: brand, type: string}
      - {name: listed_ms, type: int}
      - {name: emb, type: vector, dim: 2}
      - {name: size, type: int32}
"""
MODEL = """\
models:
  - name: ranker
    context: [user_id, product_ids]
    rows: product_ids
    lookups:
      - {name: p, group: items, keys: {product_id: row}}
    sequences:
      - {name: clicks, user: context.user_id, type: CLICK, field: category_id, length: 5}
    features:
      - p.price
      - COLUMN
"""
COLUMN_LINE = 11

BAD_COLUMNS = {
    "plain string": ("p.brand", "a string feature can only be a column as transform hash or one_hot"),
    "unknown transform": ("{name: x, from: p.price, transform: sqrt}", "feature transform 'sqrt' is not one of"),
    "missing argument": ("{name: x, from: p.price, transform: clip, min: 0}", "missing required field 'max'"),
    "clip min over max": ("{name: x, from: p.price, transform: clip, min: 2, max: 1}", "clip needs numbers min <= max"),
    "unsorted boundaries": ("{name: x, from: p.price, transform: bucketize, boundaries: [5, 1]}",
                            "strictly increasing"),
    "one_hot of a float": ("{name: x, from: p.price, transform: one_hot, values: [1]}",
                           "one_hot needs a string or int feature, not float"),
    "hash buckets zero": ("{name: x, from: p.brand, transform: hash, buckets: 0}", "hash buckets must be an integer"),
    "ratio over a string": ("{name: x, from: p.price, transform: ratio, over: p.brand}",
                            "ratio needs a number to divide by"),
    "age of a float": ("{name: x, from: p.price, transform: age, unit: d}", "age needs an int feature"),
    "age unit": ("{name: x, from: p.listed_ms, transform: age, unit: weeks}", "age unit 'weeks' must be one of"),
    "vector transformed": ("{name: x, from: p.emb, transform: log1p}", "a vector feature takes no transform"),
    "sequence as is": ("{name: x, from: clicks}", "a sequence holds ids: use transform hash or count_matching"),
    "count_matching a feature": ("{name: x, from: p.size, transform: count_matching, match: row}",
                                 "count_matching needs a sequence"),
    "unknown source": ("{name: x, from: q.price, transform: log1p}", "is not '<lookup>.<feature>'"),
    "bad dtype": ("{name: x, from: p.price, dtype: float64}", "dtype 'float64' must be one of"),
    "duplicate column": ("{name: p.price, from: p.price, transform: log1p}", "two columns named 'p.price'"),
    "non-numeric default": ("{name: x, from: p.price, default: high}", "default 'high' is not a finite number"),
}


@pytest.mark.parametrize("case", BAD_COLUMNS, ids=list(BAD_COLUMNS))
def test_bad_columns_are_rejected_with_file_line_and_reason(tmp_path, case):
    column, message = BAD_COLUMNS[case]
    found = problems(write(tmp_path, entities=ENTITIES, groups=GROUPS, models=MODEL.replace("COLUMN", column)))
    assert any(f"models.yaml:{COLUMN_LINE}:" in p and message in p for p in found), found


BAD_PARTS = {
    "sequence type": ("type: CLICK", "type: VIEW", 8, "sequence 'clicks' type 'VIEW' must be one of"),
    "sequence user from rows": ("user: context.user_id", "user: context.product_ids", 8, "single-id context input"),
    "sequence length": ("length: 5", "length: 500", 8, "length 500 is over 200"),
}


@pytest.mark.parametrize("case", BAD_PARTS, ids=list(BAD_PARTS))
def test_bad_sequences_are_rejected_with_file_line_and_reason(tmp_path, case):
    old, new, line, message = BAD_PARTS[case]
    models = MODEL.replace("COLUMN", "{name: n, from: clicks, transform: count_matching, match: row}")
    found = problems(write(tmp_path, entities=ENTITIES, groups=GROUPS, models=models.replace(old, new)))
    assert any(f"models.yaml:{line}:" in p and message in p for p in found), found


SCORED = MODEL.replace("COLUMN", "p.size") + """\
    score:
      - name: first
        endpoint: {target: 127.0.0.1:1, model: m}
      - name: second
        split_by: user_id
        endpoints:
          - {target: 127.0.0.1:1, model: a, percent: 70}
          - {target: 127.0.0.1:1, model: b, percent: 20}
"""


def test_a_traffic_split_must_add_up_and_name_a_context_input(tmp_path):
    found = problems(write(tmp_path, entities=ENTITIES, groups=GROUPS,
                           models=SCORED.replace("split_by: user_id", "split_by: shop_id")))
    assert any("models.yaml:17:" in p and "percents must add up to 100, got 90" in p for p in found), found
    assert any("models.yaml:16:" in p and "split_by must name a context input" in p for p in found), found
    fixed = SCORED.replace("percent: 20", "percent: 30")
    found = problems(write(tmp_path, entities=ENTITIES, groups=GROUPS,
                           models=fixed.replace("endpoint: {target", "endpoints: {target")))
    assert any("models.yaml:14:" in p and "endpoints must be a non-empty list" in p for p in found), found


READ_BACK = MODEL.replace("COLUMN", "{name: brand_hash, from: p.brand, transform: hash, buckets: 10}") + """\
    score:
      - name: ctr
        endpoint: {target: 127.0.0.1:1, model: m, output: probabilities, column: 1}
        batch_size: 64
        inputs:
          - {name: dense, columns: [p.price], datatype: FP64}
          - {name: ids, columns: [brand_hash], datatype: INT64}
"""
# case -> (what is replaced, by what, the line reported, the message)
BAD_SCORE_NODES = {
    "output not a name": ("output: probabilities", "output: [a]", 14, "endpoint output must be the name of an output"),
    "negative column": ("column: 1", "column: -1", 14, "endpoint column must be an integer >= 0, got -1"),
    "zero batch_size": ("batch_size: 64", "batch_size: 0", 15, "batch_size must be an integer >= 1, got 0"),
    "unknown column": ("columns: [p.price]", "columns: [p.cost]", 17, "input 'dense': 'p.cost' is not a column"),
    "datatype": ("datatype: FP64", "datatype: BYTES", 17, "datatype 'BYTES' must be one of"),
    "two tensors of a name": ("name: ids", "name: dense", 18, "two input tensors named 'dense'"),
    "input and inputs": ("batch_size: 64", "input: x", 16, "has both 'input'"),
    "unknown endpoint field": ("column: 1}", "column: 1, outputs: [a]}", 14, "unknown field 'outputs'"),
}


@pytest.mark.parametrize("case", BAD_SCORE_NODES, ids=list(BAD_SCORE_NODES))
def test_bad_outputs_inputs_and_batch_sizes_are_rejected_with_file_line_and_reason(tmp_path, case):
    old, new, line, message = BAD_SCORE_NODES[case]
    assert old in READ_BACK
    found = problems(write(tmp_path, entities=ENTITIES, groups=GROUPS, models=READ_BACK.replace(old, new)))
    assert any(f"models.yaml:{line}:" in p and message in p for p in found), found


def test_a_node_s_output_column_and_batch_size_reach_each_endpoint_unless_it_overrides_them(tmp_path):
    from vahini.registry.loader import load_registry
    from vahini.registry.model import Registry

    models = READ_BACK.replace("        endpoint: {target: 127.0.0.1:1, model: m, output: probabilities, column: 1}\n",
                               "        output: probabilities\n        column: 1\n        split_by: user_id\n"
                               "        endpoints:\n"
                               "          - {target: a:1, model: m, percent: 50}\n"
                               "          - {target: b:1, model: n, percent: 50, column: 0, batch_size: 8}\n")
    registry = load_registry(write(tmp_path, entities=ENTITIES, groups=GROUPS, models=models))
    node = registry.models["ranker"].score[0]
    assert [(e.output, e.column, e.batch_size) for e in node.endpoints] == [("probabilities", 1, 64),
                                                                           ("probabilities", 0, 8)]
    assert [(t.name, t.columns, t.datatype) for t in node.inputs] == [("dense", ("p.price",), "FP64"),
                                                                     ("ids", ("brand_hash",), "INT64")]
    # as published to the config store and read back
    assert Registry.from_json_dict(registry.to_json_dict()).models["ranker"] == registry.models["ranker"]


def test_each_changed_graph_gets_the_next_version_and_earlier_ones_stay_pinnable(tmp_path, settings):
    store = wiring.config_store(settings)
    d = write(tmp_path, entities=ENTITIES, groups=GROUPS, models=MODEL.replace("COLUMN", "p.size"))
    plan = publish.apply(d, store)
    assert plan.registry.models["ranker"].version == 1
    assert any(c.message == "model 'ranker': version 1 (new)" for c in plan.changes)
    assert publish.apply(d, store).registry.models["ranker"].version == 1  # nothing changed: same version
    write(tmp_path, models=MODEL.replace("COLUMN", "{name: log_price, from: p.price, transform: log1p}"))
    plan = publish.apply(d, store)
    published = publish.read_published(store)
    assert published.model("ranker").version == 2 and published.model("ranker", 2).columns[1].name == "log_price"
    assert published.model("ranker", 1).columns[1].name == "p.size"  # pinned: the graph as it was
    assert published.model("ranker", 3) is None
    # v1 reads `size`; once the group drops it, v1 can no longer run: it is retired, with a warning
    write(tmp_path, groups=GROUPS.replace("version: 1", "version: 2").replace(
        "      - {name: size, type: int32}\n", ""))
    plan = publish.apply(d, store)
    assert [c.message for c in plan.warnings if c.kind == "retired"] == [
        "model 'ranker' version 1 retired: model 'ranker' column 'p.size': group 'items' has no feature 'size'"]
    published = publish.read_published(store)
    assert published.model("ranker", 1) is None and published.model("ranker").version == 2
    store.close()


def test_a_registry_that_names_no_outputs_or_inputs_publishes_what_older_servers_read(tmp_path):
    """Rolling upgrades: score-node fields at their defaults are left out of the published JSON."""
    from vahini.registry.loader import load_registry
    from vahini.registry.model import Registry

    models = SCORED.replace("percent: 20", "percent: 30")
    published = load_registry(write(tmp_path, entities=ENTITIES, groups=GROUPS, models=models)).to_json_dict()
    (node, *_) = published["models"][0]["score"]
    assert "inputs" not in node and set(node["endpoints"][0]) == {"target", "model", "version", "percent"}
    assert Registry.from_json_dict(published).models["ranker"].score[0].endpoints[0].column is None
