"""Model graphs in the registry: parsing their YAML (`models:`) and checking them
against the entities and feature groups they read.

The checks do not depend on where the graph came from: `graph_problems` reports a
path inside the model (("features", 3, "buckets"), ...), which the loader turns
into a file and line, and which publishing uses to retire pinned versions that
no longer fit the groups.
"""

from __future__ import annotations

import math
from dataclasses import replace
import re
from typing import Any, Iterator, cast

from vahini.registry.checks import NAME, Problems, at, fields, name_of, positive_int
from vahini.registry.model import (
    AGE_UNITS_MS, COLUMN_DTYPES, TENSOR_DATATYPES, TRANSFORMS, Candidates, Column, Endpoint, Entity, FeatureGroup,
    HistoryInput, InputTensor, Lookup, ModelGraph, ScoreNode, VectorIndex,
)
from vahini.registry.yaml_lines import LocatedList, LocatedMap

COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,127}$")
INTERACTION_TYPES = ("CLICK", "ORDER", "WISHLIST")
MAX_SEQUENCE_LENGTH = 200
MAX_ONE_HOT_VALUES = 64
MAX_HASH_BUCKETS = 2**24  # every bucket number is exact in float32
NUMERIC_TYPES = ("int", "int32", "float", "float32", "bool")
# transform -> (its YAML fields, the Column.args built from them in order)
TRANSFORM_FIELDS = {
    "": (), "log1p": (), "clip": ("min", "max"), "bucketize": ("boundaries",), "one_hot": ("values",),
    "ratio": ("over",), "age": ("unit",), "hash": ("buckets",), "count_matching": ("match",),
}
Path = tuple  # ("features", 3, "buckets"): where in the model's YAML a problem is


# -- parsing -------------------------------------------------------------------------------
def parse_model(problems: Problems, file: str, node: Any) -> ModelGraph | None:
    if not fields(problems, file, node, "model", ("name", "context", "rows", "lookups", "features"),
                  ("description", "on_outage", "sequences", "score", "log", "candidates")):
        return None
    name = name_of(problems, file, node, "name", "model")
    on_outage = node.get("on_outage", "fail")
    if on_outage not in ("fail", "defaults"):
        problems.add(at(file, node, "on_outage"), f"model on_outage {on_outage!r} must be 'fail' or 'defaults'")
        return None
    log_sample = _log_sample(problems, file, node, name)
    if log_sample is None:
        return None
    context = node["context"]
    if not isinstance(context, list) or not context or not all(isinstance(c, str) and NAME.match(c) for c in context):
        problems.add(at(file, node, "context"), f"model '{name}' context must be a non-empty list of names")
        return None
    candidates = _candidates(problems, file, node, name) if "candidates" in node else None
    if "candidates" in node and candidates is None:
        return None
    if node["rows"] not in context and (candidates is None or node["rows"] != candidates.name):
        also = f" nor the name of its candidates step ('{candidates.name}')" if candidates else ""
        problems.add(at(file, node, "rows"), f"model '{name}' rows {node['rows']!r} is not in its context{also}")
        return None
    parts = (_lookups(problems, file, node, name), _columns(problems, file, node, name),
             _sequences(problems, file, node, name), _score(problems, file, node, name))
    if name is None or any(p is None for p in parts):
        return None
    lookups, columns, sequences, score = cast(tuple[tuple[Lookup, ...], tuple[Column, ...], tuple[HistoryInput, ...],
                                                     tuple[ScoreNode, ...]], parts)  # none is None (above)
    return ModelGraph(name, tuple(context), node["rows"], lookups, columns, on_outage, sequences, score,
                      log_sample=log_sample, candidates=candidates)


MAX_CANDIDATES = 1000  # Cassandra's most for an ANN query


def _candidates(problems: Problems, file: str, node: LocatedMap, model: str | None) -> Candidates | None:
    """`candidates: {name, index, query, k, filters}`: the rows found by similarity search."""
    item = node["candidates"]
    what = f"candidates of model '{model}'"
    if not fields(problems, file, item, what, ("name", "index", "query", "k"), ("filters",)):
        return None
    name = name_of(problems, file, item, "name", "candidates")
    k = positive_int(problems, file, item, "k", what)
    if k is not None and k > MAX_CANDIDATES:
        problems.add(at(file, item, "k"), f"{what}: k {k} is more than {MAX_CANDIDATES}")
        return None
    filters = item.get("filters", LocatedMap())
    if not isinstance(filters, LocatedMap) or not all(
            isinstance(v, (bool, int, str)) and not isinstance(v, float) for v in filters.values()):
        problems.add(at(file, item, "filters"), f"{what}: filters must map a filter of the index to a value "
                                                f"(true, 3, \"c7\") or to context.<id>")
        return None
    if name is None or k is None or not isinstance(item["index"], str) or not isinstance(item["query"], str):
        return None
    return Candidates(name, item["index"], item["query"], k, tuple(filters.items()))


def _log_sample(problems: Problems, file: str, node: LocatedMap, model: str | None) -> float | None:
    """`log: {sample: 0.05}`: the share of requests whose response is logged (feature logging)."""
    log = node.get("log")
    if log is None:
        return 0.0
    if not isinstance(log, LocatedMap):
        problems.add(at(file, node, "log"), f"model '{model}' log must be a mapping like {{sample: 0.05}}, "
                                           f"got {type(log).__name__}")
        return None
    if not fields(problems, file, log, f"model '{model}' log", ("sample",), ()):
        return None
    sample = log["sample"]
    if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 <= sample <= 1:
        problems.add(at(file, log, "sample"), f"model '{model}' log sample {sample!r} must be a number from 0 to 1")
        return None
    return float(sample)


def _items(problems: Problems, file: str, node: LocatedMap, key: str, model: str | None,
           required: bool = True) -> LocatedList | None:
    items = node.get(key, LocatedList())
    if not isinstance(items, LocatedList) or (required and not items):
        problems.add(at(file, node, key), f"model '{model}' {key} must be a{' non-empty' if required else ''} list")
        return None
    return items


def _lookups(problems: Problems, file: str, node: LocatedMap, model: str | None) -> tuple[Lookup, ...] | None:
    items = _items(problems, file, node, "lookups", model)
    if items is None:
        return None
    out = []
    for item in items:
        if not fields(problems, file, item, f"lookup in model '{model}'", ("name", "group", "keys"), ()):
            return None
        if name_of(problems, file, item, "name", "lookup") is None:
            return None
        if not isinstance(item["keys"], LocatedMap):
            problems.add(at(file, item, "keys"), "lookup keys must map key columns to sources")
            return None
        out.append(Lookup(item["name"], item["group"], tuple((k, str(v)) for k, v in item["keys"].items())))
    return tuple(out)


def _columns(problems: Problems, file: str, node: LocatedMap, model: str | None) -> tuple[Column, ...] | None:
    items = _items(problems, file, node, "features", model)
    if items is None:
        return None
    columns = [_column(problems, file, items, i, model) for i in range(len(items))]
    return None if None in columns else tuple(cast(list[Column], columns))


def _column(problems: Problems, file: str, items: LocatedList, i: int, model: str | None) -> Column | None:
    item = items[i]
    if isinstance(item, str):
        return Column(item, item)
    transform = item.get("transform", "") if isinstance(item, LocatedMap) else ""
    if transform not in TRANSFORM_FIELDS:
        problems.add(at(file, item, "transform"),
                     f"feature transform {transform!r} is not one of: {', '.join(t for t in TRANSFORMS if t)}")
        return None
    args = TRANSFORM_FIELDS[transform]
    if not fields(problems, file, item, f"feature of model '{model}'", ("from", *args),
                  ("name", "transform", "dtype", "default", "description")):
        return None
    name = item.get("name", item["from"])
    if not isinstance(name, str) or not COLUMN_NAME.match(name):
        problems.add(at(file, item, "name"), f"column name {name!r} must be letters, digits, '_' and '.'")
        return None
    default = item.get("default")
    if default is not None and (isinstance(default, bool) or not isinstance(default, (int, float))
                                or not math.isfinite(default)):
        problems.add(at(file, item, "default"), f"column '{name}' default {default!r} is not a finite number")
        return None
    return Column(name, str(item["from"]), transform, tuple(_arg(item[a]) for a in args),
                  item.get("dtype", "float32"), None if default is None else float(default))


def _arg(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _sequences(problems: Problems, file: str, node: LocatedMap, model: str | None) -> tuple | None:
    items = _items(problems, file, node, "sequences", model, required=False)
    if items is None:
        return None
    out = []
    for item in items:
        if not fields(problems, file, item, f"sequence of model '{model}'",
                      ("name", "user", "type", "field", "length"), ("description",)):
            return None
        length = positive_int(problems, file, item, "length", "sequence")
        if name_of(problems, file, item, "name", "sequence") is None or length is None:
            return None
        out.append(HistoryInput(item["name"], str(item["user"]), str(item["type"]), str(item["field"]), length))
    return tuple(out)


READ_BACK_FIELDS = ("output", "column", "batch_size")  # on a score node, or overridden on one of its endpoints


def _score(problems: Problems, file: str, node: LocatedMap, model: str | None) -> tuple | None:
    items = _items(problems, file, node, "score", model, required=False)
    if items is None:
        return None
    out = []
    for item in items:
        what = f"score node of model '{model}'"
        if not fields(problems, file, item, what, ("name",),
                      ("endpoint", "endpoints", "timeout_ms", "split_by", "input", "inputs", "default",
                       "description", *READ_BACK_FIELDS)):
            return None
        read_back = _read_back(problems, file, item, what, {})
        endpoints = None if read_back is None else _endpoints(problems, file, item, read_back)
        inputs = _input_tensors(problems, file, item, what)
        if name_of(problems, file, item, "name", "score node") is None or endpoints is None or inputs is None:
            return None
        item.setdefault("timeout_ms", 100)
        if positive_int(problems, file, item, "timeout_ms", what) is None:
            return None
        default = item.get("default", 0.0)
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            problems.add(at(file, item, "default"), f"{what} default {default!r} is not a number")
            return None
        out.append(ScoreNode(item["name"], endpoints, item["timeout_ms"], str(item.get("split_by", "")),
                             str(item.get("input", "features")), float(default), inputs))
    return tuple(out)


def _read_back(problems: Problems, file: str, item: LocatedMap, what: str, inherited: dict) -> dict | None:
    """`output`, `column` and `batch_size` of a node or endpoint, over what it inherits."""
    values = dict(inherited)
    if "output" in item:
        if not isinstance(item["output"], str) or not item["output"]:
            problems.add(at(file, item, "output"), f"{what} output must be the name of an output tensor, "
                                                   f"got {item['output']!r}")
            return None
        values["output"] = item["output"]
    for key, allow_zero in (("column", True), ("batch_size", False)):
        if key in item:
            if positive_int(problems, file, item, key, what, allow_zero=allow_zero) is None:
                return None
            values[key] = item[key]
    return values


def _input_tensors(problems: Problems, file: str, item: LocatedMap, what: str) -> tuple[InputTensor, ...] | None:
    if "inputs" not in item:
        return ()
    if "input" in item:
        problems.add(at(file, item, "inputs"), f"{what} has both 'input' (the whole matrix as one tensor) and "
                                               f"'inputs' (named tensors of columns): give one")
        return None
    items = item["inputs"]
    if not isinstance(items, LocatedList) or not items:
        problems.add(at(file, item, "inputs"), f"{what} inputs must be a non-empty list of "
                                               f"{{name, columns, datatype}}")
        return None
    out = []
    for tensor in items:
        if not fields(problems, file, tensor, "input tensor", ("name", "columns"), ("datatype",)):
            return None
        columns, datatype = tensor["columns"], tensor.get("datatype", "FP32")
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            problems.add(at(file, tensor, "columns"), "input tensor columns must be a non-empty list of column names")
            return None
        if datatype not in TENSOR_DATATYPES:
            problems.add(at(file, tensor, "datatype"), f"input tensor datatype {datatype!r} must be one of "
                                                       f"{list(TENSOR_DATATYPES)}")
            return None
        if not isinstance(tensor["name"], str) or not tensor["name"]:
            problems.add(at(file, tensor, "name"), f"input tensor name {tensor['name']!r} must be a string")
            return None
        out.append(InputTensor(tensor["name"], tuple(columns), datatype))
    return tuple(out)


def _endpoints(problems: Problems, file: str, item: LocatedMap, read_back: dict) -> tuple[Endpoint, ...] | None:
    if ("endpoint" in item) == ("endpoints" in item):
        problems.add(at(file, item), "a score node needs either 'endpoint' or 'endpoints' (a traffic split)")
        return None
    items = [item["endpoint"]] if "endpoint" in item else item["endpoints"]
    if not isinstance(items, list) or not items:
        problems.add(at(file, item, "endpoints"), "endpoints must be a non-empty list")
        return None
    out = []
    for e in items:
        optional = ("version", "percent") if "endpoints" in item else ("version",)
        if not fields(problems, file, e, "endpoint", ("target", "model"), (*optional, *READ_BACK_FIELDS)):
            return None
        percent = e.get("percent", 100)
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            problems.add(at(file, e, "percent"), f"endpoint percent {percent!r} must be an integer 0..100")
            return None
        own = _read_back(problems, file, e, "endpoint", read_back)
        if own is None:
            return None
        out.append(Endpoint(str(e["target"]), str(e["model"]), str(e.get("version", "")), percent, **own))
    return tuple(out)


# -- checks against the registry ---------------------------------------------------------------
def with_candidate_lookup(graph: ModelGraph, indexes: dict[str, VectorIndex], groups: dict[str, FeatureGroup],
                          entities: dict[str, Entity]) -> ModelGraph:
    """The graph with its candidates step's lookup (the index's group, keyed by the row,
    named as the step) among its lookups, so the rest of the graph reads it like any
    other; as it is when it has no step, or the step does not fit."""
    c = graph.candidates
    index = indexes.get(c.index) if c is not None else None
    if c is None or index is None or index.group not in groups or any(lk.name == c.name for lk in graph.lookups):
        return graph
    entity = entities.get(groups[index.group].entity)
    if entity is None or len(entity.keys) != 1:
        return graph
    return replace(graph, lookups=(*graph.lookups, Lookup(c.name, index.group, ((entity.keys[0], "row"),))))


def graph_problems(graph: ModelGraph, groups: dict[str, FeatureGroup], entities: dict[str, Entity],
                   indexes: dict[str, VectorIndex] | None = None) -> Iterator[tuple[Path, str]]:
    """Every problem of `graph` against these groups, entities and indexes, with where it is."""
    known: dict[str, FeatureGroup] = {}
    if graph.candidates is not None:
        yield from _candidates_problems(graph, graph.candidates, groups, entities, indexes or {})
    for i, lookup in enumerate(graph.lookups):
        yield from _lookup_problems(graph, i, lookup, known, groups, entities)
    sequences = {s.name: s for s in graph.sequences}
    for i, sequence in enumerate(graph.sequences):
        yield from _sequence_problems(graph, i, sequence, known)
    seen: dict[str, int] = {}
    for i, column in enumerate(graph.columns):
        for problem in _column_problems(column, known, sequences):
            yield ("features", i, problem[0]) if problem[0] else ("features", i), \
                f"model '{graph.name}' column '{column.name}': {problem[1]}"
        for output in output_names(column, known, sequences):
            if output in seen:
                yield ("features", i), f"model '{graph.name}' has two columns named '{output}' " \
                                       f"(features {seen[output] + 1} and {i + 1})"
            seen.setdefault(output, i)
    yield from _score_problems(graph, _column_outputs(graph, known, sequences))


def _candidates_problems(graph: ModelGraph, c: Candidates, groups: dict[str, FeatureGroup],
                         entities: dict[str, Entity], indexes: dict[str, VectorIndex]) -> Iterator[tuple[Path, str]]:
    where = f"model '{graph.name}' candidates '{c.name}'"
    index = indexes.get(c.index)
    if index is None:
        yield ("candidates", "index"), f"{where}: unknown index '{c.index}' (indexes: {sorted(indexes) or 'none'})"
        return
    group = groups[index.group]
    if len(entities[group.entity].keys) != 1:
        yield ("candidates", "index"), f"{where}: index '{c.index}' is of entity '{group.entity}', keyed by " \
                                       f"{list(entities[group.entity].keys)}; candidates need a single-key entity"
    if graph.rows != c.name:
        yield ("rows",), f"{where}: rows must be '{c.name}', the candidates' keys"
    yield from _query_problems(graph, c, where, groups[index.group].feature(index.feature).dim, groups)  # type: ignore[union-attr]
    names = {index.filter_name(f) for f in index.filters}
    for name, value in c.filters:
        if name not in names:
            yield ("candidates", "filters"), f"{where}: index '{c.index}' has no filter '{name}' " \
                                             f"(its filters: {sorted(names) or 'none'})"
        elif isinstance(value, str) and value.startswith("context.") and value[8:] not in graph.context:
            yield ("candidates", "filters"), f"{where}: filter {name}: context has no '{value[8:]}'"


def _query_problems(graph: ModelGraph, c: Candidates, where: str, dim: int,
                    groups: dict[str, FeatureGroup]) -> Iterator[tuple[Path, str]]:
    """The query is `<lookup>.<feature>`: a vector of the index's dimension, of a lookup keyed by context ids."""
    head, _, tail = c.query.partition(".")
    lookup = next((lk for lk in graph.lookups if lk.name == head), None)
    if lookup is None or lookup.name == c.name:
        yield ("candidates", "query"), f"{where}: query {c.query!r} must be <lookup>.<feature> of a lookup of the graph"
        return
    if not all(source.startswith("context.") for _, source in lookup.keys):
        yield ("candidates", "query"), f"{where}: query lookup '{head}' must be keyed by context ids only, " \
                                       f"to be read before the rows are known"
    group = groups.get(lookup.group)
    feature = group.feature(tail) if group is not None else None
    if group is not None and (feature is None or feature.type != "vector" or feature.dim != dim):
        yield ("candidates", "query"), f"{where}: query {c.query!r} must be a vector of {dim} dimensions, as " \
                                       f"the index holds"


def _lookup_problems(graph: ModelGraph, i: int, lookup: Lookup, known: dict[str, FeatureGroup],
                     groups: dict[str, FeatureGroup], entities: dict[str, Entity]):
    group = groups.get(lookup.group)
    if group is None:
        yield ("lookups", i, "group"), f"model '{graph.name}' lookup '{lookup.name}' references unknown group " \
                                       f"'{lookup.group}'"
        return
    entity = entities.get(group.entity)
    if entity is not None and set(dict(lookup.keys)) != set(entity.keys):
        yield ("lookups", i, "keys"), f"lookup '{lookup.name}' keys {sorted(dict(lookup.keys))} must be exactly the " \
                                      f"key columns of entity '{entity.name}': {list(entity.keys)}"
    for column, source in lookup.keys:
        problem = _key_source_problem(source, graph, known)
        if problem:
            yield ("lookups", i, "keys", column), f"lookup '{lookup.name}' key {column}: {problem}"
    if lookup.name in known:
        yield ("lookups", i, "name"), f"model '{graph.name}' has two lookups named '{lookup.name}'"
    known[lookup.name] = group


def _key_source_problem(source: str, graph: ModelGraph, known: dict[str, FeatureGroup]) -> str | None:
    """Where a lookup key comes from: `row`, `context.<id>` or `<earlier lookup>.<feature>`."""
    if source == "row":
        return None
    head, _, tail = source.partition(".")
    if head == "context":
        return None if tail in graph.context else f"context has no '{tail}' (context: {list(graph.context)})"
    if head not in known:
        return f"source {source!r} is not 'row', 'context.<id>' or '<earlier lookup>.<feature>'"
    feature = known[head].feature(tail)
    if feature is None:
        return f"group '{known[head].name}' has no feature '{tail}'"
    if feature.type not in ("string", "int", "int32"):
        return f"feature '{tail}' is a {feature.type}; only string or int features can be used as keys"
    return None


def _sequence_problems(graph: ModelGraph, i: int, s: HistoryInput, known: dict[str, FeatureGroup]):
    head, _, tail = s.user.partition(".")
    if head != "context" or tail not in graph.context or tail == graph.rows:
        yield ("sequences", i, "user"), f"sequence '{s.name}' user {s.user!r} must be 'context.<id>' of a " \
                                        f"single-id context input (context: {list(graph.context)})"
    if s.type not in INTERACTION_TYPES:
        yield ("sequences", i, "type"), f"sequence '{s.name}' type {s.type!r} must be one of {INTERACTION_TYPES}"
    if s.field not in ("product_id", "category_id"):
        yield ("sequences", i, "field"), f"sequence '{s.name}' field {s.field!r} must be product_id or category_id"
    if s.length > MAX_SEQUENCE_LENGTH:
        yield ("sequences", i, "length"), f"sequence '{s.name}' length {s.length} is over {MAX_SEQUENCE_LENGTH}"
    if s.name in known:
        yield ("sequences", i, "name"), f"sequence '{s.name}' has the name of a lookup"


def _feature_of(source: str, known: dict[str, FeatureGroup]):
    """(the feature, None) of `<lookup>.<feature>`, or (None, what is wrong)."""
    head, dot, tail = source.partition(".")
    if not dot or head not in known:
        return None, f"{source!r} is not '<lookup>.<feature>' of a lookup of this model, nor a sequence"
    feature = known[head].feature(tail)
    return (feature, None) if feature is not None else (None, f"group '{known[head].name}' has no feature '{tail}'")


def _column_problems(c: Column, known: dict[str, FeatureGroup], sequences: dict[str, HistoryInput]):
    """(field, message) pairs; field "" is the column entry itself."""
    if c.dtype not in COLUMN_DTYPES:
        yield "dtype", f"dtype {c.dtype!r} must be one of {COLUMN_DTYPES}"
    if c.source in sequences:
        if c.transform not in ("hash", "count_matching"):
            yield "transform", "a sequence holds ids: use transform hash or count_matching"
    else:
        feature, problem = _feature_of(c.source, known)
        if problem:
            yield "from", problem
            return
        yield from _input_type_problems(c, feature.type)
    yield from _argument_problems(c, known)


def _input_type_problems(c: Column, ftype: str):
    if ftype == "string" and c.transform not in ("hash", "one_hot"):
        yield "from", "a string feature can only be a column as transform hash or one_hot"
    elif ftype == "vector" and c.transform:
        yield "transform", "a vector feature takes no transform (it expands to one column per dimension)"
    elif c.transform == "count_matching":
        yield "from", "count_matching needs a sequence as its source"
    elif c.transform == "age" and ftype not in ("int", "int32"):
        yield "from", "age needs an int feature holding epoch milliseconds"
    elif c.transform in ("one_hot", "hash") and ftype not in ("string", "int", "int32"):
        yield "from", f"{c.transform} needs a string or int feature, not {ftype}"


def _argument_problems(c: Column, known: dict[str, FeatureGroup]):
    t, args = c.transform, c.args
    numbers = lambda v: isinstance(v, tuple) and v and all(  # noqa: E731
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    if t == "clip" and not (numbers(args) and args[0] <= args[1]):
        yield "min", f"clip needs numbers min <= max, got {list(args)}"
    elif t == "bucketize" and not (numbers(args[0]) and list(args[0]) == sorted(set(args[0]))):
        yield "boundaries", "bucketize needs a non-empty list of strictly increasing numbers"
    elif t == "one_hot" and not (isinstance(args[0], tuple) and 0 < len(args[0]) <= MAX_ONE_HOT_VALUES
                                 and len(set(map(str, args[0]))) == len(args[0])):
        yield "values", f"one_hot needs a list of 1 to {MAX_ONE_HOT_VALUES} distinct values"
    elif t == "age" and args[0] not in AGE_UNITS_MS:
        yield "unit", f"age unit {args[0]!r} must be one of {list(AGE_UNITS_MS)}"
    elif t == "hash" and (isinstance(args[0], bool) or not isinstance(args[0], int)
                          or not 1 <= args[0] <= MAX_HASH_BUCKETS):
        yield "buckets", f"hash buckets must be an integer 1..{MAX_HASH_BUCKETS}, got {args[0]!r}"
    elif t == "ratio":
        feature, problem = _feature_of(str(args[0]), known)
        if problem or feature.type not in NUMERIC_TYPES:
            yield "over", problem or f"ratio needs a number to divide by, not a {feature.type}"
    elif t == "count_matching" and args[0] != "row":
        feature, problem = _feature_of(str(args[0]), known)
        if problem or feature.type not in ("string", "int", "int32"):
            yield "match", problem or "count_matching matches 'row' or a string or int feature"


def output_names(c: Column, known: dict[str, FeatureGroup], sequences: dict[str, HistoryInput]) -> list[str]:
    """The names of the matrix columns `c` fills, in order."""
    if c.source in sequences and c.transform == "hash":
        return [f"{c.name}_{i}" for i in range(sequences[c.source].length)]
    if c.transform == "one_hot":
        return [f"{c.name}={v}" for v in c.args[0]]
    feature = None if c.source in sequences else _feature_of(c.source, known)[0]
    if feature is not None and feature.type == "vector":
        return [f"{c.name}_{d}" for d in range(feature.dim)]
    return [c.name]


def _column_outputs(graph: ModelGraph, known: dict[str, FeatureGroup],
                    sequences: dict[str, HistoryInput]) -> dict[str, list[str]]:
    """Each name an input tensor may list: a matrix column, or a graph column (all the columns it fills)."""
    out: dict[str, list[str]] = {}
    for column in graph.columns:
        names = output_names(column, known, sequences)
        out.setdefault(column.name, names)
        for name in names:
            out.setdefault(name, [name])
    return out


def input_columns(tensor_columns: tuple[str, ...], matrix_columns: list[str], scored: list[str]) -> list[int]:
    """The positions, in the matrix with earlier nodes' scores appended, of a tensor's columns.
    A graph column that fills several (a one-hot, a vector) stands for all of them, in order."""
    position = {name: i for i, name in enumerate([*matrix_columns, *scored])}
    out = []
    for name in tensor_columns:
        if name in position:
            out.append(position[name])
        else:
            prefixed = [i for c, i in position.items() if c.startswith((f"{name}_", f"{name}="))]
            if not prefixed:
                raise KeyError(name)
            out.extend(prefixed)
    return out


def _score_problems(graph: ModelGraph, columns: dict[str, list[str]]):
    names = {lk.name for lk in graph.lookups}
    scored: list[str] = []
    for i, node in enumerate(graph.score):
        if node.name in names:
            yield ("score", i, "name"), f"score node '{node.name}' has the name of another node"
        names.add(node.name)
        if len(node.endpoints) > 1 and sum(e.percent for e in node.endpoints) != 100:
            yield ("score", i, "endpoints"), f"score node '{node.name}' endpoint percents must add up to 100, " \
                                             f"got {sum(e.percent for e in node.endpoints)}"
        if len(node.endpoints) > 1 and node.split_by not in graph.context:
            yield ("score", i, "split_by"), f"score node '{node.name}' splits traffic: split_by must name a " \
                                            f"context input (context: {list(graph.context)}), got {node.split_by!r}"
        yield from _input_problems(node, i, columns, scored)
        scored.append(node.name)


def _input_problems(node: ScoreNode, i: int, columns: dict[str, list[str]], scored: list[str]):
    seen = set()
    for j, tensor in enumerate(node.inputs):
        if tensor.name in seen:
            yield ("score", i, "inputs", j, "name"), f"score node '{node.name}' has two input tensors named " \
                                                     f"'{tensor.name}'"
        seen.add(tensor.name)
        for k, name in enumerate(tensor.columns):
            if name not in columns and name not in scored:
                yield ("score", i, "inputs", j, "columns", k), \
                    f"score node '{node.name}' input '{tensor.name}': '{name}' is not a column of the graph " \
                    f"nor an earlier score node (columns: {', '.join(list(columns)[:12])}" \
                    f"{', ...' if len(columns) > 12 else ''})"
