"""Turns a directory of registry YAML files into a validated `Registry`.

Every problem found is collected (not just the first) with its file and line,
and the caller gets either a whole valid registry or a `ConfigError`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, cast

from vahini.errors import ConfigError
from vahini.registry.model import (
    FEATURE_TYPES, INTERACTION_ENTITY_KEYS, KEY_SEPARATOR, CachePolicy, Entity, Feature, FeatureGroup,
    ModelGraph, Registry, VectorIndex, window_of,
)
from vahini.registry.indexes import index_problems, parse_index
from vahini.registry.graphs import graph_problems, parse_model, with_candidate_lookup
from vahini.registry.checks import NAME, at, fields, name_of, positive_int, Problems, Where
from vahini.registry.yaml_lines import LocatedList, LocatedMap, load_located

INT_RANGES = {"int": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}
FLOAT32_MAX = 3.4028234663852886e38
SECTIONS = ("entities", "feature_groups", "models", "indexes")


class _Builder:
    """Collects objects from every file, then cross-checks references."""

    def __init__(self) -> None:
        self.problems = Problems()
        self.entities: dict[str, tuple[Entity, Where]] = {}
        self.groups: dict[str, tuple[FeatureGroup, Where]] = {}
        self.feature_lines: dict[tuple[str, str], Where] = {}
        self.group_starts: dict[str, Where] = {}  # a group's first line (`groups` keeps its entity's, for errors)
        self.models: dict[str, tuple[ModelGraph, Where, LocatedMap]] = {}
        self.indexes: dict[str, tuple[VectorIndex, Where, LocatedMap]] = {}

    # -- files -----------------------------------------------------------------
    def add_file(self, path: Path) -> None:
        file = str(path)
        doc = load_located(path, self.problems)
        if doc is None:
            return
        if not isinstance(doc, LocatedMap):
            self.problems.add(Where(file, 1), f"top level must be a mapping with any of: {', '.join(SECTIONS)}")
            return
        handlers: dict[str, Callable[[str, Any], None]] = {
            "entities": self._entity, "feature_groups": self._group, "models": self._model,
            "indexes": self._index,
        }
        for section, items in doc.items():
            if section not in handlers:
                self.problems.add(at(file, doc, section),
                                  f"unknown section '{section}' (allowed: {', '.join(SECTIONS)})")
                continue
            if not isinstance(items, LocatedList):
                self.problems.add(at(file, doc, section), f"'{section}' must be a list")
                continue
            for item in items:
                handlers[section](file, item)

    def _unique(self, table: dict, name: str, where: Where, what: str) -> bool:
        if name in table:
            first = table[name][1]
            self.problems.add(where, f"duplicate {what} '{name}' (first defined at {first.file}:{first.line})")
            return False
        return True

    # -- entities --------------------------------------------------------------
    def _entity(self, file: str, node: Any) -> None:
        if not fields(self.problems, file, node, "entity", ("name", "keys"), ("description",)):
            return
        name = name_of(self.problems, file, node, "name", "entity")
        keys = node["keys"]
        where = at(file, node)
        if not isinstance(keys, list) or not keys:
            self.problems.add(at(file, node, "keys"), f"entity '{name}' needs a non-empty list of key columns")
            return
        for i, key in enumerate(keys):
            if not isinstance(key, str) or not NAME.match(key):
                self.problems.add(at(file, keys, i), f"entity '{name}' key column {key!r} is not a valid name")
                return
        if len(set(keys)) != len(keys):
            self.problems.add(at(file, node, "keys"), f"entity '{name}' repeats a key column: {list(keys)}")
            return
        if name and self._unique(self.entities, name, where, "entity"):
            self.entities[name] = (Entity(name, tuple(keys)), where)

    # -- feature groups ----------------------------------------------------------
    def _group(self, file: str, node: Any) -> None:
        required = ("name", "entity", "version", "features")
        if not fields(self.problems, file, node, "feature group", required,
                       ("ttl_s", "cache", "description", "source")):
            return
        name = name_of(self.problems, file, node, "name", "feature group")
        version = positive_int(self.problems, file, node, "version", f"feature group '{name}'")
        node.setdefault("ttl_s", 0)
        ttl = positive_int(self.problems, file, node, "ttl_s", f"feature group '{name}'", allow_zero=True)
        cache = self._cache(file, node.get("cache"), name) if "cache" in node else CachePolicy()
        features = self._features(file, node["features"], name)
        where = at(file, node)
        source = self._source(file, node, name, features)
        if name is None or version is None or ttl is None or cache is None or features is None or source is None:
            return
        if self._unique(self.groups, name, where, "feature group"):
            group = FeatureGroup(name, node["entity"], version, ttl, tuple(features), cache, source)
            self.groups[name] = (group, at(file, node, "entity"))
            self.group_starts[name] = at(file, node)

    def _source(self, file: str, node: Any, group: str | None, features: list[Feature] | None) -> str | None:
        source = node.get("source", "events")
        if source not in ("events", "interactions"):
            self.problems.add(at(file, node, "source"),
                              f"feature group '{group}' source {source!r} must be 'events' or 'interactions'")
            return None
        if source == "interactions":
            for f, item in zip(features or [], node["features"]):
                if window_of(f.name) is None or f.type not in ("int", "int32"):
                    self.problems.add(at(file, item), (
                        f"feature '{f.name}' of group '{group}' (source: interactions) must be a windowed count "
                        f"named <clicks|orders|wishlists>_<N><m|h|d>, e.g. clicks_1h, of type int or int32"))
                    return None
        return source

    def _cache(self, file: str, node: Any, group: str | None) -> CachePolicy | None:
        optional = ("redis_ttl_s", "lru_size", "lru_ttl_s", "negative_ttl_s")
        if not fields(self.problems, file, node, f"cache of group '{group}'", (), optional):
            return None
        values: dict[str, Any] = {}
        for key in optional:
            if key in node:
                value = node[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    self.problems.add(at(file, node, key), f"cache {key} must be a number >= 0, got {value!r}")
                    return None
                values[key] = int(value) if key == "lru_size" else float(value)
        return CachePolicy(**values)

    def _features(self, file: str, items: Any, group: str | None) -> list[Feature] | None:
        if not isinstance(items, LocatedList) or not items:
            self.problems.add(at(file, items), f"feature group '{group}' needs a non-empty list of features")
            return None
        features: list[Feature] = []
        seen: dict[str, int] = {}
        ok = True
        for node in items:
            feature = self._feature(file, node, group)
            if feature is None:
                ok = False
                continue
            if feature.name in seen:
                self.problems.add(at(file, node), f"duplicate feature '{feature.name}' in group '{group}' "
                                                   f"(first at line {seen[feature.name]})")
                ok = False
                continue
            seen[feature.name] = node.line
            self.feature_lines[(cast(str, group), feature.name)] = at(file, node, "type")
            features.append(feature)
        return features if ok else None

    def _feature(self, file: str, node: Any, group: str | None) -> Feature | None:
        if not fields(self.problems, file, node, f"feature in group '{group}'", ("name", "type"),
                       ("default", "dim", "description")):
            return None
        name = name_of(self.problems, file, node, "name", "feature")
        ftype = node["type"]
        if ftype not in FEATURE_TYPES:
            self.problems.add(at(file, node, "type"),
                              f"feature '{name}' has unknown type {ftype!r} (allowed: {', '.join(FEATURE_TYPES)})")
            return None
        dim = 0
        if ftype == "vector":
            wanted = positive_int(self.problems, file, node, "dim", f"vector feature '{name}'")
            if wanted is None:
                return None
            dim = wanted
        elif "dim" in node:
            self.problems.add(at(file, node, "dim"), f"feature '{name}' of type {ftype} cannot have a dim")
            return None
        default = _check_default(ftype, dim, node.get("default"))
        if isinstance(default, str) and default.startswith("!"):
            self.problems.add(at(file, node, "default"), f"feature '{name}' default {default[1:]}")
            return None
        return Feature(name, ftype, default, dim) if name else None

    # -- models ------------------------------------------------------------------
    def _model(self, file: str, node: Any) -> None:
        graph = parse_model(self.problems, file, node)
        if graph is not None and self._unique(self.models, graph.name, at(file, node), "model"):
            self.models[graph.name] = (graph, at(file, node), node)

    # -- indexes -------------------------------------------------------------------
    def _index(self, file: str, node: Any) -> None:
        index = parse_index(self.problems, file, node)
        if index is not None and self._unique(self.indexes, index.name, at(file, node), "index"):
            self.indexes[index.name] = (index, at(file, node), node)

    # -- cross references -----------------------------------------------------------
    def check_references(self) -> None:
        for group, where in self.groups.values():
            if group.entity not in self.entities:
                self.problems.add(where, f"feature group '{group.name}' references unknown entity '{group.entity}'")
            elif group.source == "interactions" and self.entities[group.entity][0].keys not in INTERACTION_ENTITY_KEYS:
                self.problems.add(where, f"feature group '{group.name}' (source: interactions) needs an entity keyed "
                                         f"by [user_id] or [user_id, category_id], not "
                                         f"{list(self.entities[group.entity][0].keys)}")
        groups = {n: g for n, (g, _) in self.groups.items()}
        entities = {n: e for n, (e, _) in self.entities.items()}
        indexes = {n: i for n, (i, _, _) in self.indexes.items()}
        for name, (graph, where, node) in list(self.models.items()):
            graph = with_candidate_lookup(graph, indexes, groups, entities)
            self.models[name] = (graph, where, node)
            self._check_graph(graph, where.file, node)
        for index, where, node in self.indexes.values():
            for key, message in index_problems(index, groups):
                self.problems.add(at(where.file, node, key), message)

    def _check_graph(self, graph: ModelGraph, file: str, node: LocatedMap) -> None:
        groups = {n: g for n, (g, _) in self.groups.items()}
        entities = {n: e for n, (e, _) in self.entities.items()}
        indexes = {n: i for n, (i, _, _) in self.indexes.items()}
        for path, message in graph_problems(graph, groups, entities, indexes):
            self.problems.add(_located(file, node, path), message)

    def registry(self) -> Registry:
        return Registry(
            entities={n: e for n, (e, _) in self.entities.items()},
            groups={n: g for n, (g, _) in self.groups.items()},
            models={n: m for n, (m, _, _) in self.models.items()},
            indexes={n: i for n, (i, _, _) in self.indexes.items()},
            sources=self._sources(),
        )

    def _sources(self) -> dict[str, str]:
        def place(where: Where) -> str:
            return f"{Path(where.file).name}:{where.line}"
        found = {f"entity:{n}": place(w) for n, (_, w) in self.entities.items()}
        found.update({f"group:{n}": place(w) for n, w in self.group_starts.items() if n in self.groups})
        found.update({f"feature:{g}.{f}": place(w) for (g, f), w in self.feature_lines.items()})
        found.update({f"model:{n}": place(w) for n, (_, w, _) in self.models.items()})
        found.update({f"index:{n}": place(w) for n, (_, w, _) in self.indexes.items()})
        return found


def _located(file: str, node: Any, path: tuple) -> Where:
    """The line of `path` (keys and indexes) inside `node`, or of the deepest part that exists."""
    for i, step in enumerate(path):
        child = node.get(step) if isinstance(node, LocatedMap) else (
            node[step] if isinstance(node, LocatedList) and isinstance(step, int) and step < len(node) else None)
        if child is None or i == len(path) - 1 or not isinstance(child, (LocatedMap, LocatedList)):
            return at(file, node, step) if child is not None else at(file, node)
        node = child
    return at(file, node)


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
    """Like load_registry, also returning where each feature group (by name), each
    feature (by (group, feature)) and each index (by ("indexes", name)) is defined, as (file, line)."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    builder = _Builder()
    if not files:
        builder.problems.add(Where(str(directory), 0), "no *.yaml or *.yml registry files found")
    for path in files:
        builder.add_file(path)
    builder.check_references()
    if builder.problems:
        raise ConfigError(list(builder.problems))
    where: dict[str | tuple[str, str], tuple[str, int]] = {n: (w.file, w.line) for n, (_, w) in builder.groups.items()}
    where.update({k: (w.file, w.line) for k, w in builder.feature_lines.items()})
    where.update({("indexes", n): (w.file, w.line) for n, (_, w, _) in builder.indexes.items()})
    return builder.registry(), where


__all__ = ["load_registry", "load_registry_located", "KEY_SEPARATOR"]
