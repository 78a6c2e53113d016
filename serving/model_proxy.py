"""The Model Proxy's executor: a model id and context ids in, a rows x columns
float32 matrix out, driven by the model's graph in the registry.

The graph's lookups are resolved into levels: a lookup keyed by the row id or a
context id is in the first level; one keyed by a feature of another lookup comes
after it. Each level's lookups of one entity are fetched in one read (keys
de-duplicated) through the feature read path (LRU, cache, store), so a level
costs one round trip per entity. A context-keyed lookup is fetched once and
broadcast to every row. Columns are assembled with numpy, without a loop per
cell; a missing, expired or unreadable value takes its column's default, and is
counted per column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from serving.retrieval import EXPIRED, MISSING, PRESENT, UNREADABLE, FeatureReader, GroupResult
from vahini.errors import InvalidEvent, NotFound, Reason, StoreUnavailable
from vahini.registry.model import KEY_SEPARATOR, Lookup, ModelGraph, Registry

STATUS_COUNTED = {MISSING: "missing", EXPIRED: "expired", UNREADABLE: "unreadable"}


@dataclass
class FeatureMatrix:
    model: str
    columns: list[str]
    row_ids: list[str]
    values: np.ndarray  # float32, rows x columns
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> {missing, expired, unreadable}
    degraded: str = ""  # why defaults were served for reads that failed (on_outage: defaults), else ""


@dataclass
class _Fetched:
    """One lookup's result: `result` rows for the lookup's unique keys, `index[i]` the row
    of `result` for output row i (-1: the key could not be built, defaults)."""

    result: GroupResult | None
    index: np.ndarray


def levels(graph: ModelGraph) -> list[list[Lookup]]:
    """Lookups in dependency order; each level needs only the levels before it."""
    placed: dict[str, int] = {}
    for lookup in graph.lookups:  # the registry validates that sources refer to earlier lookups
        deps = [s.partition(".")[0] for _, s in lookup.keys if s != "row" and not s.startswith("context.")]
        placed[lookup.name] = 1 + max((placed[d] for d in deps), default=-1)
    out: list[list[Lookup]] = [[] for _ in range(max(placed.values(), default=-1) + 1)]
    for lookup in graph.lookups:
        out[placed[lookup.name]].append(lookup)
    return out


class ModelExecutor:
    def __init__(self, reader: FeatureReader, registry: Callable[[], Registry]):
        self._reader = reader
        self._registry = registry

    def run(self, model: str, context: Mapping[str, Sequence[str]], timeout_s: float | None = None) -> FeatureMatrix:
        registry = self._registry()  # one snapshot for the whole request
        graph = registry.models.get(model)
        if graph is None:
            raise NotFound(f"unknown model '{model}'")
        rows = self._check_context(graph, context)
        fetched: dict[str, _Fetched] = {}
        outages: list[str] = []
        for level in levels(graph):
            self._fetch_level(registry, graph, level, context, rows, fetched, timeout_s, outages)
        matrix = self._assemble(registry, graph, rows, fetched)
        matrix.degraded = "; ".join(outages)
        return matrix

    def _check_context(self, graph: ModelGraph, context: Mapping[str, Sequence[str]]) -> list[str]:
        for name in graph.context:
            ids = context.get(name)
            if not ids:
                raise InvalidEvent(Reason.MISSING_KEY, f"context.{name}: required by model '{graph.name}'")
            if name != graph.rows and len(ids) != 1:
                raise InvalidEvent(Reason.INVALID_KEY, f"context.{name}: one id expected, got {len(ids)}")
            for i, value in enumerate(ids):
                if not value or KEY_SEPARATOR in value:
                    raise InvalidEvent(Reason.INVALID_KEY, f"context.{name}[{i}]: empty or contains "
                                                           f"'{KEY_SEPARATOR}': {value!r}")
        unknown = sorted(set(context) - set(graph.context))
        if unknown:
            raise InvalidEvent(Reason.UNKNOWN_KEY, f"context.{unknown[0]}: model '{graph.name}' takes "
                                                   f"{list(graph.context)}")
        return list(context[graph.rows])

    @staticmethod
    def _keys(lookup: Lookup, context, rows: list[str], fetched: dict[str, _Fetched]) -> list[str | None]:
        """The storage key of `lookup` for each row; None where a part is unavailable."""
        parts: list[list[str | None]] = []
        for _, source in lookup.keys:
            if source == "row":
                parts.append(list(rows))
            elif source.startswith("context."):
                parts.append([context[source[len("context."):]][0]] * len(rows))
            else:
                name, _, feature = source.partition(".")
                parts.append(_key_values(fetched[name], feature, len(rows)))
        return [None if any(p is None or p == "" for p in combo) else KEY_SEPARATOR.join(combo)
                for combo in zip(*parts)]

    def _fetch_level(self, registry: Registry, graph: ModelGraph, level: list[Lookup], context, rows: list[str],
                     fetched: dict[str, _Fetched], timeout_s: float | None, outages: list[str]) -> None:
        by_entity: dict[str, list[tuple[Lookup, list[str | None]]]] = {}
        for lookup in level:
            entity = registry.groups[lookup.group].entity
            by_entity.setdefault(entity, []).append((lookup, self._keys(lookup, context, rows, fetched)))
        for entity, lookups in by_entity.items():
            unique = list(dict.fromkeys(k for _, keys in lookups for k in keys if k is not None))
            position = {k: i for i, k in enumerate(unique)}
            groups = list(dict.fromkeys(lookup.group for lookup, _ in lookups))
            results = self._read(entity, unique, groups, timeout_s, registry, graph, outages)
            by_group = dict(zip(groups, results))
            for lookup, keys in lookups:
                index = np.fromiter((position[k] if k is not None else -1 for k in keys), np.int64, len(keys))
                fetched[lookup.name] = _Fetched(by_group[lookup.group], index)

    def _read(self, entity: str, keys: list[str], groups: list[str], timeout_s: float | None, registry: Registry,
              graph: ModelGraph, outages: list[str]) -> list[GroupResult | None]:
        """The groups' values for `keys`; with on_outage: defaults, None (every row takes
        defaults) when the store is down, and the outage is noted for the response."""
        if not keys:
            return [None] * len(groups)
        try:
            return self._reader.retrieve(entity, keys, groups, timeout_s=timeout_s, registry=registry)
        except StoreUnavailable as exc:
            if graph.on_outage != "defaults":
                raise
            outages.append(f"{', '.join(groups)}: {exc}")
            return [None] * len(groups)

    def _assemble(self, registry: Registry, graph: ModelGraph, rows: list[str],
                  fetched: dict[str, _Fetched]) -> FeatureMatrix:
        blocks, columns, counts = [], [], {}
        for column in graph.features:
            name, _, feature_name = column.partition(".")
            lookup = next(lk for lk in graph.lookups if lk.name == name)
            feature = registry.groups[lookup.group].feature(feature_name)
            block, status = _column(fetched[name], feature, len(rows))
            names = [f"{column}_{d}" for d in range(feature.dim)] if feature.type == "vector" else [column]
            blocks.append(block.reshape(len(rows), -1))
            columns += names
            tally = {label: int((status == code).sum()) for code, label in STATUS_COUNTED.items()}
            if any(tally.values()):
                for n in names:
                    counts[n] = tally
        values = np.hstack(blocks).astype(np.float32, copy=False) if blocks else np.zeros((len(rows), 0), np.float32)
        return FeatureMatrix(graph.name, columns, rows, np.ascontiguousarray(values), counts)


def _key_values(f: _Fetched, feature: str, n: int) -> list[str | None]:
    if f.result is None:
        return [None] * n
    j = f.result.features.index(feature)
    values, status = f.result.values[feature], f.result.status[:, j]
    return [None if i < 0 or status[i] != PRESENT else str(values[i]) for i in f.index]


def _column(f: _Fetched, feature, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values as float32 for each row, status for each row): the default where absent."""
    default = np.asarray(feature.default if feature.type != "bool" else float(feature.default), np.float32)
    width = feature.dim if feature.type == "vector" else 1
    out = np.broadcast_to(default.reshape(-1) if width > 1 else default, (n, width) if width > 1 else (n,)).copy()
    status = np.full(n, MISSING, np.int8)
    if f.result is None:
        return out, status
    j = f.result.features.index(feature.name)
    have = f.index >= 0
    picked = f.index[have]
    out[have] = f.result.values[feature.name][picked].astype(np.float32)
    status[have] = f.result.status[picked, j]
    return out, status
