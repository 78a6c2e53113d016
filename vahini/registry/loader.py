"""Turns a directory of registry YAML files into a validated `Registry`.

Every problem found is collected (not just the first) with its file and line,
and the caller gets either a whole valid registry or a `ConfigError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vahini.errors import ConfigError, ConfigProblem
from vahini.registry.model import (
    FEATURE_TYPES, INTERACTION_ENTITY_KEYS, KEY_SEPARATOR, CachePolicy, Entity, Feature, FeatureGroup, Lookup,
    ModelGraph, Registry, window_of,
)
from vahini.registry.yaml_lines import LocatedList, LocatedMap, load_located

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
INT_RANGES = {"int": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}
FLOAT32_MAX = 3.4028234663852886e38
SECTIONS = ("entities", "feature_groups", "models")


@dataclass
class _Where:
    file: str
    line: int


class _Problems(list):
    def add(self, where: _Where, message: str) -> None:
        self.append(ConfigProblem(where.file, where.line, message))


def _at(file: str, node: Any, key: str | int | None = None) -> _Where:
    if isinstance(node, LocatedMap):
        return _Where(file, node.line_of(key) if key is not None else node.line)
    if isinstance(node, LocatedList):
        return _Where(file, node.line_of(key) if isinstance(key, int) else node.line)
    return _Where(file, 1)


def _fields(problems: _Problems, file: str, node: Any, what: str, required: tuple, optional: tuple) -> bool:
    """Check a mapping has the required keys and no unknown ones."""
    if not isinstance(node, LocatedMap):
        problems.add(_at(file, node), f"{what} must be a mapping, got {type(node).__name__}")
        return False
    ok = True
    for key in required:
        if key not in node:
            problems.add(_at(file, node), f"{what} is missing required field '{key}'")
            ok = False
    for key in node:
        if key not in required and key not in optional:
            allowed = ", ".join((*required, *optional))
            problems.add(_at(file, node, key), f"{what} has unknown field '{key}' (allowed: {allowed})")
    return ok


def _name(problems: _Problems, file: str, node: LocatedMap, key: str, what: str) -> str | None:
    value = node.get(key)
    if not isinstance(value, str) or not NAME.match(value):
        problems.add(_at(file, node, key),
                     f"{what} {key} {value!r} is not a valid name (lower_snake_case, starts with a letter, <= 63 chars)")
        return None
    return value


def _positive_int(problems: _Problems, file: str, node: LocatedMap, key: str, what: str, allow_zero=False) -> int | None:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        problems.add(_at(file, node, key), f"{what} {key} must be an integer {bound}, got {value!r}")
        return None
    return value


class _Builder:
    """Collects objects from every file, then cross-checks references."""

    def __init__(self) -> None:
        self.problems = _Problems()
        self.entities: dict[str, tuple[Entity, _Where]] = {}
        self.groups: dict[str, tuple[FeatureGroup, _Where]] = {}
        self.feature_lines: dict[tuple[str, str], _Where] = {}
        self.models: dict[str, tuple[ModelGraph, _Where, LocatedMap]] = {}

    # -- files -----------------------------------------------------------------
    def add_file(self, path: Path) -> None:
        file = str(path)
        doc = load_located(path, self.problems)
        if doc is None:
            return
        if not isinstance(doc, LocatedMap):
            self.problems.add(_Where(file, 1), f"top level must be a mapping with any of: {', '.join(SECTIONS)}")
            return
        handlers: dict[str, Callable[[str, Any], None]] = {
            "entities": self._entity, "feature_groups": self._group, "models": self._model,
        }
        for section, items in doc.items():
            if section not in handlers:
                self.problems.add(_at(file, doc, section),
                                  f"unknown section '{section}' (allowed: {', '.join(SECTIONS)})")
                continue
            if not isinstance(items, LocatedList):
                self.problems.add(_at(file, doc, section), f"'{section}' must be a list")
                continue
            for item in items:
                handlers[section](file, item)

    def _unique(self, table: dict, name: str, where: _Where, what: str) -> bool:
        if name in table:
            first = table[name][1]
            self.problems.add(where, f"duplicate {what} '{name}' (first defined at {first.file}:{first.line})")
            return False
        return True

    # -- entities --------------------------------------------------------------
    def _entity(self, file: str, node: Any) -> None:
        if not _fields(self.problems, file, node, "entity", ("name", "keys"), ("description",)):
            return
        name = _name(self.problems, file, node, "name", "entity")
        keys = node["keys"]
        where = _at(file, node)
        if not isinstance(keys, list) or not keys:
            self.problems.add(_at(file, node, "keys"), f"entity '{name}' needs a non-empty list of key columns")
            return
        for i, key in enumerate(keys):
            if not isinstance(key, str) or not NAME.match(key):
                self.problems.add(_at(file, keys, i), f"entity '{name}' key column {key!r} is not a valid name")
                return
        if len(set(keys)) != len(keys):
            self.problems.add(_at(file, node, "keys"), f"entity '{name}' repeats a key column: {list(keys)}")
            return
        if name and self._unique(self.entities, name, where, "entity"):
            self.entities[name] = (Entity(name, tuple(keys)), where)

    # -- feature groups ----------------------------------------------------------
    def _group(self, file: str, node: Any) -> None:
        required = ("name", "entity", "version", "features")
        if not _fields(self.problems, file, node, "feature group", required,
                       ("ttl_s", "cache", "description", "source")):
            return
        name = _name(self.problems, file, node, "name", "feature group")
        version = _positive_int(self.problems, file, node, "version", f"feature group '{name}'")
        node.setdefault("ttl_s", 0)
        ttl = _positive_int(self.problems, file, node, "ttl_s", f"feature group '{name}'", allow_zero=True)
        cache = self._cache(file, node.get("cache"), name) if "cache" in node else CachePolicy()
        features = self._features(file, node["features"], name)
        where = _at(file, node)
        source = self._source(file, node, name, features)
        if None in (name, version, ttl, cache, features, source):
            return
        if self._unique(self.groups, name, where, "feature group"):
            group = FeatureGroup(name, node["entity"], version, ttl, tuple(features), cache, source)
            self.groups[name] = (group, _at(file, node, "entity"))

    def _source(self, file: str, node: Any, group: str | None, features: list[Feature] | None) -> str | None:
        source = node.get("source", "events")
        if source not in ("events", "interactions"):
            self.problems.add(_at(file, node, "source"),
                              f"feature group '{group}' source {source!r} must be 'events' or 'interactions'")
            return None
        if source == "interactions":
            for f, item in zip(features or [], node["features"]):
                if window_of(f.name) is None or f.type not in ("int", "int32"):
                    self.problems.add(_at(file, item), (
                        f"feature '{f.name}' of group '{group}' (source: interactions) must be a windowed count "
                        f"named <clicks|orders|wishlists>_<N><m|h|d>, e.g. clicks_1h, of type int or int32"))
                    return None
        return source

    def _cache(self, file: str, node: Any, group: str | None) -> CachePolicy | None:
        optional = ("redis_ttl_s", "lru_size", "lru_ttl_s", "negative_ttl_s")
        if not _fields(self.problems, file, node, f"cache of group '{group}'", (), optional):
            return None
        values = {}
        for key in optional:
            if key in node:
                value = node[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    self.problems.add(_at(file, node, key), f"cache {key} must be a number >= 0, got {value!r}")
                    return None
                values[key] = int(value) if key == "lru_size" else float(value)
        return CachePolicy(**values)

    def _features(self, file: str, items: Any, group: str | None) -> list[Feature] | None:
        if not isinstance(items, LocatedList) or not items:
            self.problems.add(_at(file, items), f"feature group '{group}' needs a non-empty list of features")
            return None
        features, seen, ok = [], {}, True
        for node in items:
            feature = self._feature(file, node, group)
            if feature is None:
                ok = False
                continue
            if feature.name in seen:
                self.problems.add(_at(file, node), f"duplicate feature '{feature.name}' in group '{group}' "
                                                   f"(first at line {seen[feature.name]})")
                ok = False
                continue
            seen[feature.name] = node.line
            self.feature_lines[(group, feature.name)] = _at(file, node, "type")
            features.append(feature)
        return features if ok else None

    def _feature(self, file: str, node: Any, group: str | None) -> Feature | None:
        if not _fields(self.problems, file, node, f"feature in group '{group}'", ("name", "type"),
                       ("default", "dim", "description")):
            return None
        name = _name(self.problems, file, node, "name", "feature")
        ftype = node["type"]
        if ftype not in FEATURE_TYPES:
            self.problems.add(_at(file, node, "type"),
                              f"feature '{name}' has unknown type {ftype!r} (allowed: {', '.join(FEATURE_TYPES)})")
            return None
        dim = 0
        if ftype == "vector":
            dim = _positive_int(self.problems, file, node, "dim", f"vector feature '{name}'")
            if dim is None:
                return None
        elif "dim" in node:
            self.problems.add(_at(file, node, "dim"), f"feature '{name}' of type {ftype} cannot have a dim")
            return None
        default = _check_default(ftype, dim, node.get("default"))
        if isinstance(default, str) and default.startswith("!"):
            self.problems.add(_at(file, node, "default"), f"feature '{name}' default {default[1:]}")
            return None
        return Feature(name, ftype, default, dim) if name else None

    # -- models ------------------------------------------------------------------
    def _model(self, file: str, node: Any) -> None:
        if not _fields(self.problems, file, node, "model", ("name", "context", "rows", "lookups", "features"),
                       ("description", "on_outage")):
            return
        on_outage = node.get("on_outage", "fail")
        if on_outage not in ("fail", "defaults"):
            self.problems.add(_at(file, node, "on_outage"),
                              f"model on_outage {on_outage!r} must be 'fail' or 'defaults'")
            return
        name = _name(self.problems, file, node, "name", "model")
        where = _at(file, node)
        context, lookups_node = node["context"], node["lookups"]
        if not isinstance(context, list) or not all(isinstance(c, str) and NAME.match(c) for c in context):
            self.problems.add(_at(file, node, "context"), f"model '{name}' context must be a list of names")
            return
        if node["rows"] not in context:
            self.problems.add(_at(file, node, "rows"), f"model '{name}' rows {node['rows']!r} is not in its context")
            return
        if not isinstance(lookups_node, LocatedList) or not lookups_node:
            self.problems.add(_at(file, node, "lookups"), f"model '{name}' needs a non-empty list of lookups")
            return
        lookups = []
        for item in lookups_node:
            if not _fields(self.problems, file, item, f"lookup in model '{name}'", ("name", "group", "keys"), ()):
                return
            if not isinstance(item["keys"], LocatedMap):
                self.problems.add(_at(file, item, "keys"), "lookup keys must map key columns to sources")
                return
            lookups.append(Lookup(item["name"], item["group"], tuple((k, str(v)) for k, v in item["keys"].items())))
        if name and self._unique(self.models, name, where, "model"):
            graph = ModelGraph(name, tuple(context), node["rows"], tuple(lookups), tuple(node["features"] or ()),
                               on_outage)
            self.models[name] = (graph, where, node)

    # -- cross references -----------------------------------------------------------
    def check_references(self) -> None:
        for group, where in self.groups.values():
            if group.entity not in self.entities:
                self.problems.add(where, f"feature group '{group.name}' references unknown entity '{group.entity}'")
            elif group.source == "interactions" and self.entities[group.entity][0].keys not in INTERACTION_ENTITY_KEYS:
                self.problems.add(where, f"feature group '{group.name}' (source: interactions) needs an entity keyed "
                                         f"by [user_id] or [user_id, category_id], not "
                                         f"{list(self.entities[group.entity][0].keys)}")
        for graph, where, node in self.models.values():
            self._check_graph(graph, where.file, node)

    def _check_graph(self, graph: ModelGraph, file: str, node: LocatedMap) -> None:
        known: dict[str, FeatureGroup] = {}
        for lookup, item in zip(graph.lookups, node["lookups"]):
            entry = self.groups.get(lookup.group)
            if entry is None:
                self.problems.add(_at(file, item, "group"),
                                  f"model '{graph.name}' lookup '{lookup.name}' references unknown group '{lookup.group}'")
                continue
            group = entry[0]
            entity = self.entities.get(group.entity, (None,))[0]
            if entity is not None and set(dict(lookup.keys)) != set(entity.keys):
                self.problems.add(_at(file, item, "keys"),
                                  f"lookup '{lookup.name}' keys {sorted(dict(lookup.keys))} must be exactly the key "
                                  f"columns of entity '{entity.name}': {list(entity.keys)}")
            for column, source in lookup.keys:
                problem = _source_problem(source, graph, known)
                if problem:
                    self.problems.add(_at(file, item["keys"], column), f"lookup '{lookup.name}' key {column}: {problem}")
            known[lookup.name] = group
        for i, column in enumerate(graph.features):
            problem = _column_problem(column, known)
            if problem:
                self.problems.add(_at(file, node["features"], i), f"model '{graph.name}' feature {column!r}: {problem}")

    def registry(self) -> Registry:
        return Registry(
            entities={n: e for n, (e, _) in self.entities.items()},
            groups={n: g for n, (g, _) in self.groups.items()},
            models={n: m for n, (m, _, _) in self.models.items()},
        )


def _source_problem(source: str, graph: ModelGraph, known: dict[str, FeatureGroup]) -> str | None:
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


def _column_problem(column: Any, known: dict[str, FeatureGroup]) -> str | None:
    if not isinstance(column, str) or "." not in column:
        return "must be '<lookup>.<feature>'"
    head, _, tail = column.partition(".")
    if head not in known:
        return f"no lookup named '{head}'"
    feature = known[head].feature(tail)
    if feature is None:
        return f"group '{known[head].name}' has no feature '{tail}'"
    if feature.type == "string":
        return f"feature '{tail}' is a string; a model's matrix holds numbers only"
    return None


def _check_default(ftype: str, dim: int, value: Any) -> Any:
    """Return the normalised default, or a string starting with '!' describing the problem."""
    if value is None:
        return {"string": "", "bool": False, "vector": [0.0] * dim}.get(ftype, 0)
    if ftype in INT_RANGES:
        lo, hi = INT_RANGES[ftype]
        if isinstance(value, bool) or not isinstance(value, int):
            return f"!{value!r} is not an integer"
        return value if lo <= value <= hi else f"!{value} is out of range for {ftype} [{lo}, {hi}]"
    if ftype in ("float", "float32"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"!{value!r} is not a finite number"
        return f"!{value} is out of range for float32" if ftype == "float32" and abs(value) > FLOAT32_MAX else float(value)
    if ftype == "bool":
        return value if isinstance(value, bool) else f"!{value!r} is not true or false"
    if ftype == "string":
        return value if isinstance(value, str) else f"!{value!r} is not a string"
    if not isinstance(value, list) or len(value) != dim:
        return f"!must be a list of {dim} numbers"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return "!must contain only finite numbers"
    return [float(v) for v in value]


def load_registry(directory: Path) -> Registry:
    """Load and validate every *.yaml / *.yml file in `directory`; raise ConfigError on any problem."""
    return load_registry_located(directory)[0]


def load_registry_located(directory: Path) -> tuple[Registry, dict[str | tuple[str, str], tuple[str, int]]]:
    """Like load_registry, also returning where each feature group (by name) and each
    feature (by (group, feature)) is defined, as (file, line)."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    builder = _Builder()
    if not files:
        builder.problems.add(_Where(str(directory), 0), "no *.yaml or *.yml registry files found")
    for path in files:
        builder.add_file(path)
    builder.check_references()
    if builder.problems:
        raise ConfigError(list(builder.problems))
    where: dict[str | tuple[str, str], tuple[str, int]] = {n: (w.file, w.line) for n, (_, w) in builder.groups.items()}
    where.update({k: (w.file, w.line) for k, w in builder.feature_lines.items()})
    return builder.registry(), where


__all__ = ["load_registry", "load_registry_located", "KEY_SEPARATOR"]
