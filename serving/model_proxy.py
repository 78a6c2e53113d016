"""The Model Proxy's executor: a model id and context ids in, a rows x columns
float32 matrix out (and scores, when the graph ends in model nodes), driven by
the model's graph in the registry.

The graph's lookups are resolved into levels: a lookup keyed by the row id or a
context id is in the first level; one keyed by a feature of another lookup comes
after it. All lookups of a level are fetched together, keys de-duplicated: one
round trip to the cache for the level, then one store read per entity for what
the cache lacked. A level's round trip goes out as soon as the groups its keys
are built from are decoded, while the earlier level's other groups still wait
to be. A context-keyed lookup is fetched once and broadcast to every row.
Sequences come from the interaction store, one read per user and type, sent
before the first level and taken while it is in flight.
The matrix is a numpy array filled a column at a time: a transform runs once per
distinct key, and each column is gathered by row into its slot in one compiled
pass (vahini.codecs.loops); a missing, expired or unreadable value takes its
column's default, and is counted per column.

One request reads one registry snapshot from start to end, so a publish in the
middle of it never mixes two versions of a graph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Callable, Mapping, Sequence

import numpy as np

from vahini.serving import transforms
from vahini.serving.interactions import InteractionReader, last_ids
from vahini.serving.per_graph import PerGraph
from vahini.serving.retrieval import (EXPIRED, MISSING, PRESENT, UNREADABLE, FeatureReader, GroupResult, PendingReads,
                               Read, empty_column)
from vahini.codecs.loops import looked_up, take_rows_into
from vahini.errors import InvalidEvent, NotFound, Reason, StoreUnavailable
from vahini.ports.interaction_store import HistoryQuery
from vahini.registry.graphs import output_names
from vahini.registry.model import KEY_SEPARATOR, Candidates, Column, Lookup, ModelGraph, Registry

STATUS_COUNTED = {MISSING: "missing", EXPIRED: "expired", UNREADABLE: "unreadable"}


@dataclass
class FeatureMatrix:
    model: str
    version: int
    columns: list[str]
    dtypes: list[str]
    row_ids: list[str]
    values: np.ndarray  # float32, rows x columns
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> {missing, expired, unreadable}
    degraded: str = ""  # why defaults were served for reads that failed (on_outage: defaults), else ""
    scores: dict[str, "NodeScores"] = field(default_factory=dict)  # score node -> its scores, in graph order
    served_at_ms: int = 0  # the one moment the request was served as of: TTLs, ages and reads
    log_sample: float = 0.0  # the graph's share of requests to log (registry `log: {sample: ...}`)
    rows_field: str = ""  # the context field whose ids are the rows


@dataclass
class NodeScores:
    endpoint: str  # "target/model" that answered (or was asked, when defaults were served)
    values: np.ndarray  # float32, one per row


@dataclass
class _Fetched:
    """One lookup's result: `result` rows for the lookup's unique keys, `index[i]` the row
    of `result` for output row i (-1: the key could not be built, defaults)."""

    group: str
    result: GroupResult | None
    index: np.ndarray
    complete: bool = False  # every row has a key, and every value of it is present: nothing to count


@dataclass
class _LevelRead:
    """One level's reads in flight. Per planned read: its lookups with their row
    positions into its keys, and its position among the reads sent (None: no keys)."""

    planned: list[_GroupRead]
    keyed: list[list[tuple[Lookup, np.ndarray, bool]]] = field(default_factory=list)
    positions: list[int | None] = field(default_factory=list)
    pending: PendingReads | None = None
    failed: bool = False  # the store was down: every read of the level takes defaults


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


@dataclass(frozen=True)
class _GroupRead:
    """The lookups of one level that read one feature group: one Read, keys merged."""

    entity: str
    group: str
    lookups: list[Lookup]
    features: list[str]  # the features the graph reads of the group
    feeds_later: bool  # a later level's keys are built from these lookups' values


@dataclass
class _Plan:
    """What executing a published graph needs that does not change between requests."""

    levels: list[list[_GroupRead]]
    key_sources: dict[str, tuple[str, ...]]  # per lookup: the source of each key part, in the entity's key order
    features: dict[str, tuple[str, ...]]  # per lookup: the features the graph reads of it
    columns: list[str]
    dtypes: list[str]
    spans: list[tuple[int, int, list[str]]]  # per graph column: (first matrix column, width, names)
    as_is: list[bool]  # per graph column: the source's values, cast into their slot


def plan_of(graph: ModelGraph, registry: Registry) -> _Plan:
    known = {lk.name: registry.groups[lk.group] for lk in graph.lookups}
    sequences = {s.name: s for s in graph.sequences}
    used: dict[str, dict[str, None]] = {lk.name: {} for lk in graph.lookups}
    sources = [source for lk in graph.lookups for _, source in lk.keys]
    for c in graph.columns:
        sources.append(c.source)
        if c.transform in ("ratio", "count_matching"):
            sources.append(c.args[0])
    for source in sources:
        name, _, feature = source.partition(".")
        if name in used:
            used[name][feature] = None
    key_sources = {lk.name: tuple(dict(lk.keys)[column] for column in registry.entities[known[lk.name].entity].keys)
                   for lk in graph.lookups}
    features = {name: tuple(f) for name, f in used.items()}
    feeders = {source.partition(".")[0] for lk in graph.lookups for _, source in lk.keys}
    plan = _Plan([_group_reads(level, registry, features, feeders) for level in levels(graph)], key_sources,
                 features, [], [], [], [])
    for c in graph.columns:
        names = output_names(c, known, sequences)
        plan.spans.append((len(plan.columns), len(names), names))
        plan.columns.extend(names)
        plan.dtypes.extend([c.dtype] * len(names))
        plan.as_is.append(not c.transform and c.default is None and c.dtype == "float32"
                          and c.source not in sequences)
    return plan


def _group_reads(level: list[Lookup], registry: Registry, features: dict[str, tuple[str, ...]],
                 feeders: set[str]) -> list[_GroupRead]:
    by_group: dict[str, list[Lookup]] = {}
    for lookup in level:
        by_group.setdefault(lookup.group, []).append(lookup)
    return [_GroupRead(registry.groups[group].entity, group, lookups,
                       list(dict.fromkeys(f for lookup in lookups for f in features[lookup.name])),
                       any(lookup.name in feeders for lookup in lookups))
            for group, lookups in by_group.items()]


@dataclass
class _Request:
    """What one execution carries from step to step."""

    registry: Registry
    graph: ModelGraph
    plan: _Plan
    context: Mapping[str, Sequence[str]]
    rows: list[str]
    deadline: float | None
    now_ms: int  # served as of this moment, once for the whole request: a training set replays it
    fetched: dict[str, _Fetched] = field(default_factory=dict)
    sequences: dict[str, list[str]] = field(default_factory=dict)
    outages: list[str] = field(default_factory=list)
    distinct_rows: bool = False  # no row id repeats: a row-keyed lookup needs no de-duplication
    sources: dict[str, tuple] = field(default_factory=dict)  # `<lookup>.<feature>` -> _source(), once
    _row_positions: np.ndarray | None = None

    def row_positions(self) -> np.ndarray:
        """0..rows-1: the index of a block that has a row per output row."""
        if self._row_positions is None:
            self._row_positions = np.arange(len(self.rows), dtype=np.int64)
        return self._row_positions

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.001)


class ModelExecutor:
    def __init__(self, reader: FeatureReader, registry: Callable[[], Registry],
                 histories: InteractionReader | None = None, scorer=None, clock: Callable[[], float] = time.time,
                 search=None):
        self._search = search  # serving.search.VectorSearch: a graph's candidates step
        self._reader = reader
        self._registry = registry
        self._histories = histories
        self._scorer = scorer  # serving.scoring.Scorer: calls the graph's model nodes
        self._clock = clock
        self._plans: PerGraph[_Plan] = PerGraph()

    def run(self, model: str, context: Mapping[str, Sequence[str]], version: int = 0,
            timeout_s: float | None = None, as_of_ms: int | None = None) -> FeatureMatrix:
        """The model's matrix for `context`, served as of now, or as of `as_of_ms` (a
        training set replays a past moment through this same code)."""
        registry = self._registry()  # one snapshot for the whole request
        now_ms = int(self._clock() * 1000) if as_of_ms is None else as_of_ms
        graph = _graph(registry, model, version)
        rows = _check_context(graph, context)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        outages: list[str] = []
        if graph.candidates is not None:
            rows = self._candidates(registry, graph, graph.candidates, context, deadline, outages)
            context = {**context, graph.rows: rows}
        request = _Request(registry, graph, self._plan(graph, registry), context, rows, deadline, now_ms,
                           outages=outages, distinct_rows=len(set(rows)) == len(rows))
        histories = self._start_histories(request)  # sent first: answered while the first level is in flight
        in_flight = self._start_level(request, 0)
        self._read_sequences(request, histories)
        for k in range(len(request.plan.levels)):
            # A level's next round trip waits only on the groups its keys are built from.
            self._take_level(request, in_flight, feeding=True)
            in_flight_next = self._start_level(request, k + 1)
            self._take_level(request, in_flight, feeding=False)
            in_flight = in_flight_next
        matrix = self._assemble(request)
        if graph.score and self._scorer is not None and rows:
            matrix.scores = self._scorer.score(graph, matrix, context, request.time_left(), request.outages)
        matrix.degraded = "; ".join(request.outages)
        matrix.served_at_ms, matrix.log_sample, matrix.rows_field = request.now_ms, graph.log_sample, graph.rows
        return matrix

    # -- candidates --------------------------------------------------------------------------
    def _candidates(self, registry: Registry, graph: ModelGraph, step: Candidates,
                    context: Mapping[str, Sequence[str]], deadline: float | None, outages: list[str]) -> list[str]:
        """The rows of a graph with a candidates step: the keys nearest the query vector,
        nearest first. None when the query has no live vector; with on_outage: defaults,
        none when the store is down (the outage noted), else StoreUnavailable."""
        if self._search is None:
            raise StoreUnavailable(f"model '{graph.name}' finds its rows by vector search; this server has none")
        left = lambda: None if deadline is None else max(deadline - time.monotonic(), 0.001)  # noqa: E731
        head, _, feature = step.query.partition(".")
        lookup = next(lk for lk in graph.lookups if lk.name == head)
        entity = registry.entities[registry.groups[lookup.group].entity]
        sources = dict(lookup.keys)
        key = KEY_SEPARATOR.join(context[sources[column][len("context."):]][0] for column in entity.keys)
        filters = {name: context[value[8:]][0] if isinstance(value, str) and value.startswith("context.") else value
                   for name, value in step.filters}
        try:
            [result] = self._reader.retrieve(entity.name, [key], [lookup.group], {lookup.group: [feature]},
                                             timeout_s=left(), registry=registry)
            if result.status[0, 0] != PRESENT:
                return []
            hits = self._search.search(step.index, step.k, filters, result.values[feature][0], timeout_s=left(),
                                       registry=registry)
        except StoreUnavailable as exc:
            if graph.on_outage != "defaults":
                raise
            outages.append(f"candidates {step.name}: {exc}")
            return []
        return [hit.key for hit in hits]

    # -- reading -----------------------------------------------------------------------------
    def _start_level(self, request: _Request, k: int) -> _LevelRead | None:
        """Level k's reads, sent in one read across groups (None past the last level)."""
        if k == len(request.plan.levels):
            return None
        level = _LevelRead(request.plan.levels[k])
        reads = []
        for planned in level.planned:
            lookups = [(lookup, *_keys(lookup, request)) for lookup in planned.lookups]
            unique, of_lookups = _merged(lookups)
            level.keyed.append([(lookup, index, every_row_keyed)
                                for (lookup, _, _, every_row_keyed), index in zip(lookups, of_lookups)])
            level.positions.append(len(reads) if unique else None)
            if unique:
                reads.append(Read(planned.entity, unique, (planned.group,), {planned.group: planned.features},
                                  checked=True))
        if reads:
            level.pending = self._reader.start_many(reads, timeout_s=request.time_left(), registry=request.registry,
                                                    now_ms=request.now_ms)
        return level

    def _take_level(self, request: _Request, level: _LevelRead, feeding: bool) -> None:
        """The results of the level's reads that feed a later level (`feeding`), or of the others."""
        for planned, keyed, at in zip(level.planned, level.keyed, level.positions):
            if planned.feeds_later != feeding:
                continue
            result = None if at is None else self._result(request, level, at)
            for lookup, index, every_row_keyed in keyed:
                complete = every_row_keyed and result is not None and result.complete
                request.fetched[lookup.name] = _Fetched(planned.group, result, index, complete)

    @staticmethod
    def _result(request: _Request, level: _LevelRead, at: int) -> GroupResult | None:
        """One read's values; with on_outage: defaults, None (every row takes defaults)
        when the store is down, and the outage is noted for the response, once a level."""
        if level.failed:
            return None
        try:
            return level.pending.results(at)[0]
        except StoreUnavailable as exc:
            if request.graph.on_outage != "defaults":
                raise
            level.failed = True
            read = [p.group for p, position in zip(level.planned, level.positions) if position is not None]
            request.outages.append(f"{', '.join(read)}: {exc}")
            return None

    def _start_histories(self, request: _Request) -> dict[tuple[str, str], Callable[[], list]]:
        """One history read per user and interaction type, however many sequences use it,
        sent before the feature reads: its round trip overlaps theirs."""
        wanted: dict[tuple[str, str], int] = {}
        for s in request.graph.sequences:
            key = (request.context[s.user.partition(".")[2]][0], s.type)
            wanted[key] = max(wanted.get(key, 0), s.length)
        return {key: self._start_history(key[0], key[1], length, request) for key, length in wanted.items()}

    def _start_history(self, user: str, type_: str, length: int, request: _Request) -> Callable[[], list]:
        if self._histories is None:
            why = f"{type_} history of {user}: this server has no interaction store"
            return partial(self._no_history, request, why)
        finish = self._histories.start_history(HistoryQuery(user, (type_,), length), timeout_s=request.time_left())
        return partial(self._history_or_none, finish, user, type_, request)

    def _read_sequences(self, request: _Request, histories: dict[tuple[str, str], Callable[[], list]]) -> None:
        taken = {key: finish() for key, finish in histories.items()}
        for s in request.graph.sequences:
            history = taken[(request.context[s.user.partition(".")[2]][0], s.type)]
            request.sequences[s.name] = last_ids(history, s.field, s.length, "")  # read of s.type only

    @staticmethod
    def _history_or_none(finish: Callable, user: str, type_: str, request: _Request) -> list:
        try:
            return finish().interactions
        except StoreUnavailable as exc:
            return ModelExecutor._no_history(request, f"{type_} history of {user}: {exc}")

    @staticmethod
    def _no_history(request: _Request, why: str) -> list:
        if request.graph.on_outage != "defaults":
            raise StoreUnavailable(why)
        request.outages.append(why)
        return []

    # -- assembling ------------------------------------------------------------------------------
    def _assemble(self, request: _Request) -> FeatureMatrix:
        graph, plan, n = request.graph, request.plan, len(request.rows)
        values = np.empty((n, len(plan.columns)), np.float32)
        counts = {}
        now_ms = request.now_ms
        for c, (start, width, names), as_is in zip(graph.columns, plan.spans, plan.as_is):
            if as_is:  # most columns: the value itself, cast into its slot
                block, status, index = _distinct(request, c.source)
            else:
                block, status, index = self._block(request, c, now_ms)
            take_rows_into(values, start, block, index)
            if status is not None:
                tally = np.bincount(status[index], minlength=len(STATUS_COUNTED) + 1)
                if tally[PRESENT] < n:
                    counted = {label: int(tally[code]) for code, label in STATUS_COUNTED.items()}
                    counts.update((name, counted) for name in names)
        return FeatureMatrix(graph.name, graph.version, plan.columns, plan.dtypes, request.rows, values, counts)

    def _plan(self, graph: ModelGraph, registry: Registry) -> _Plan:
        """The graph's plan, worked out once per published graph."""
        return self._plans.get(graph, lambda: plan_of(graph, registry))

    def _block(self, request: _Request, c: Column, now_ms: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The column's block, the status of its source values (None for a sequence, or when
        all are present), and per row the position of its values in both."""
        n = len(request.rows)
        if c.source in request.sequences:
            block = transforms.sequence(c, request.sequences[c.source], _match_values(request, c), n)
            return block, None, request.row_positions() if len(block) == n else np.zeros(n, np.int64)
        if c.transform == "ratio":  # two sources, maybe of two lookups: row by row
            values, status = _source(request, c.source)
            over_values, over_status = _source(request, c.args[0])
            extra = {"over": (over_values, _present(over_status))}
            return transforms.scalar(c, values, _present(status), **extra), status, request.row_positions()
        # Once per distinct key, then spread over the rows: a user's features are on every row.
        values, status, index = _distinct(request, c.source)
        return transforms.scalar(c, values, _present(status), now_ms=now_ms), status, index


def _present(status: np.ndarray | None) -> np.ndarray | None:
    """Rows whose value is present (a new array: transforms may narrow it); None: all."""
    return None if status is None else status == PRESENT


def _graph(registry: Registry, model: str, version: int) -> ModelGraph:
    graph = registry.model(model, version)
    if graph is not None:
        return graph
    if model not in registry.models:
        raise NotFound(f"unknown model '{model}'")
    published = sorted([v for (m, v) in registry.model_history if m == model] + [registry.models[model].version])
    raise NotFound(f"model '{model}' has no version {version} (published: {', '.join(map(str, published))})")


def _check_context(graph: ModelGraph, context: Mapping[str, Sequence[str]]) -> list[str]:
    for name in graph.context:
        ids = context.get(name)
        if not ids:
            raise InvalidEvent(Reason.MISSING_KEY, f"context.{name}: required by model '{graph.name}'")
        if name != graph.rows and len(ids) != 1:
            raise InvalidEvent(Reason.INVALID_KEY, f"context.{name}: one id expected, got {len(ids)}")
        if not all(ids) or KEY_SEPARATOR in "\0".join(ids):  # one scan of C, not a Python step per id
            i, value = next((i, v) for i, v in enumerate(ids) if not v or KEY_SEPARATOR in v)
            raise InvalidEvent(Reason.INVALID_KEY, f"context.{name}[{i}]: empty or contains "
                                                   f"'{KEY_SEPARATOR}': {value!r}")
    unknown = sorted(set(context) - set(graph.context))
    if unknown:
        raise InvalidEvent(Reason.UNKNOWN_KEY, f"context.{unknown[0]}: model '{graph.name}' takes "
                                               f"{list(graph.context)}")
    return list(context.get(graph.rows, ()))


def _match_values(request: _Request, c: Column) -> list[str | None] | None:
    """For count_matching: the value each row's ids are matched against."""
    if c.transform != "count_matching":
        return None
    if c.args[0] == "row":
        return request.rows
    return _ids(request, c.args[0])


def _keys(lookup: Lookup, request: _Request) -> tuple[list[str], np.ndarray, bool]:
    """The unique storage keys of `lookup`, for each row the position of its key among
    them (-1 where a part of the key is unavailable), and whether every row has a key.
    Parts are checked (context ids by _check_context, feature values by _key_part), so
    the keys are well-formed."""
    n = len(request.rows)
    parts: list = []  # per key column: one value for every row (a context id), or a list, one per row
    for source in request.plan.key_sources[lookup.name]:
        if source == "row":
            parts.append(request.rows)
        elif source.startswith("context."):
            parts.append(request.context[source[len("context."):]][0])
        else:
            parts.append(_key_part(request, source))
    if all(isinstance(p, str) for p in parts):  # keyed by context ids alone: one key, broadcast
        return [KEY_SEPARATOR.join(parts)], np.zeros(n, np.int64), True
    if parts == [request.rows] and request.distinct_rows:  # keyed by the row id: every row its own key
        return request.rows, request.row_positions(), True
    keys = _joined(parts, n)  # a key, or None where a part is missing
    distinct = dict.fromkeys(keys)
    unkeyed = distinct.pop(None, False) is None
    position = dict(zip(distinct, range(len(distinct))))
    return list(distinct), looked_up(keys, position, -1), not unkeyed  # a None key: -1


def _key_part(request: _Request, source: str) -> list[str | None]:
    """A feature of an earlier lookup as a key part, per row: None where it has no
    value, or one no stored key can hold (empty, or with the key separator in it)."""
    parts = _ids(request, source)
    if KEY_SEPARATOR in "\0".join(filter(None, parts)):  # one scan, not one call per row
        parts = [None if v and KEY_SEPARATOR in v else v for v in parts]
    return parts


def _ids(request: _Request, source: str) -> list[str | None]:
    """A feature of an earlier lookup as an id, per row: None where it has no value."""
    values, status = _source(request, source)
    ids = transforms.as_strings(values)
    if status is not None and (status != PRESENT).any():
        ids = [v if s == PRESENT else None for v, s in zip(ids, status.tolist())]
    return ids


def _joined(parts: list, n: int) -> list[str | None]:
    """Per row, the key parts (a context id, or one value per row) joined; None where a part is missing."""
    per_row = [p for p in parts if not isinstance(p, str)]
    if len(per_row) == 1:  # the usual chained key, e.g. user_id (context) | category_id (per row)
        at = parts.index(per_row[0])
        before = "".join(p + KEY_SEPARATOR for p in parts[:at])
        after = "".join(KEY_SEPARATOR + p for p in parts[at + 1:])
        return [f"{before}{v}{after}" if v else None for v in per_row[0]]
    columns = [repeat(p, n) if isinstance(p, str) else p for p in parts]
    return [None if None in combo or "" in combo else KEY_SEPARATOR.join(combo) for combo in zip(*columns)]


def _merged(lookups: list[tuple[Lookup, list[str], np.ndarray, bool]]) -> tuple[list[str], list[np.ndarray]]:
    """One group's lookups of a level read together: their keys de-duplicated, and each
    lookup's row positions re-pointed into them (-1 stays -1)."""
    first = lookups[0][1]
    if all(keys == first for _, keys, _, _ in lookups[1:]):  # e.g. two lookups of the group, both keyed by the row id
        return first, [index for _, _, index, _ in lookups]
    position = {k: i for i, k in enumerate(dict.fromkeys(k for _, keys, _, _ in lookups for k in keys))}
    # The extra -1 at the end makes index -1 map to -1.
    return list(position), [np.array([position[k] for k in keys] + [-1], np.int64)[index]
                            for _, keys, index, _ in lookups]


def _source(request: _Request, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(value for each row, status for each row) of `<lookup>.<feature>`: the feature's
    default (status MISSING) where the row has no value; status None when every row's
    value is present. Callers must not change the arrays: they are shared by every
    column of the same source."""
    if source not in request.sources:
        values, status, index = _distinct(request, source)
        request.sources[source] = values[index], None if status is None else status[index]
    return request.sources[source]


def _distinct(request: _Request, source: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The values of `<lookup>.<feature>` once per distinct key of the lookup (and a
    default where a row has no key or the store could not be read), their status
    (None: all present), and per row the position of its value."""
    name, _, feature_name = source.partition(".")
    f = request.fetched[name]
    if f.complete:  # the common case: the decoded values as they are
        return f.result.values[feature_name], None, f.index
    feature = request.registry.groups[f.group].feature(feature_name)
    if f.result is None:
        return empty_column(feature, 1), np.full(1, MISSING, np.int8), np.zeros(len(request.rows), np.int64)
    values = f.result.values[feature_name]
    status = f.result.status[:, f.result.features.index(feature_name)]
    if f.index.size and f.index.min() < 0:  # rows without a key: index -1 picks an appended default
        values = np.concatenate([values, empty_column(feature, 1)])
        status = np.append(status, np.int8(MISSING))
    return values, status, f.index
