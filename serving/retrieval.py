"""Batch feature retrieval: many keys of one entity, several groups.

Lookup order per (key, group): in-process LRU (optional, per group, at most
`lru_ttl_s` old) -> the feature cache (Redis; see vahini.feature_cache) -> the
feature store. What the store returns is filled into the cache, misses as
short-lived "no row" entries, so absent keys do not hammer the store.

One call reads one registry snapshot from start to end, and is bounded by the
caller's deadline: the store read gets what is left of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np

from vahini import metrics as core_metrics
from vahini.codecs import feature_blob
from vahini.errors import DeadlineExceeded, InvalidEvent, NotFound, Reason, StoreUnavailable
from vahini.feature_cache import FeatureCache, lru_key
from vahini.logs import get_logger
from vahini.ports.feature_store import FeatureRow, FeatureStore
from vahini.registry.model import KEY_SEPARATOR, SCALAR_DTYPES, Entity, Feature, FeatureGroup, Registry
from vahini.registry.compat import readable_as
from vahini.serving import metrics
from vahini.serving.lru import TtlLru

log = get_logger(__name__)

PRESENT, MISSING, EXPIRED, UNREADABLE = 0, 1, 2, 3
STATUS_NAMES = ("present", "missing", "expired", "unreadable")
_NO_ROW = b""
# A stored value of the first type reads correctly as the second: widening only.
def check_keys(entity: Entity, keys: Sequence[str]) -> None:
    """A key is the entity's key parts in registry order joined by '|'. A key with the
    wrong number of parts, or an empty part, can never have been written: reading it
    as a missing row would hide the caller's bug behind defaults."""
    n = len(entity.keys)
    # String methods rather than split(): this runs for every key a server reads.
    bad = [k for k in keys if k.count(KEY_SEPARATOR) != n - 1 or not k or (
        n > 1 and (k[0] == KEY_SEPARATOR or k[-1] == KEY_SEPARATOR or _EMPTY_PART in k))]
    if bad:
        parts = bad[0].split(KEY_SEPARATOR)
        problem = f"has {len(parts)} part(s)" if len(parts) != n else "has an empty part"
        raise InvalidEvent(Reason.INVALID_KEY, (
            f"key {bad[0]!r} of entity '{entity.name}' {problem}; it needs {n}: "
            f"{KEY_SEPARATOR.join(entity.keys)}, in that order, joined by '{KEY_SEPARATOR}'"))


_EMPTY_PART = KEY_SEPARATOR * 2


@dataclass(frozen=True)
class Read:
    """Keys of one entity, and the groups (optionally only some features) to read for them."""

    entity: str
    keys: Sequence[str]
    groups: Sequence[str]
    features: dict[str, Sequence[str]] | None = None
    # Built from a graph validated against the same registry snapshot (the Model Proxy), of
    # parts it checked: the keys are well-formed and the features exist, so neither is checked.
    checked: bool = False


@dataclass
class GroupResult:
    """Values of one group for every requested key, column by column.

    `values[f]` is an array with one row per key: shape (n,) for scalars, (n, dim)
    float32 for vectors, an object array of str for strings. `status[i, j]` is
    PRESENT, MISSING, EXPIRED or UNREADABLE (the last three: default used) for key
    i, feature j. `definition` is the group as the registry snapshot of the call had it.
    """

    group: str
    features: list[str]
    values: dict[str, np.ndarray]
    status: np.ndarray
    event_time_ms: np.ndarray  # 0 where no row was found
    definition: FeatureGroup
    complete: bool = False  # True: every status is PRESENT (known from the decoding: readers may skip counting)


def empty_column(f: Feature, n: int) -> np.ndarray:
    """n copies of the feature's default, in its stored dtype."""
    if f.type == "vector":
        return np.tile(np.asarray(f.default, dtype=np.float32), (n, 1))
    if f.type == "string":
        return np.full(n, f.default, dtype=object)
    return np.full(n, f.default, dtype=SCALAR_DTYPES[f.type])


@dataclass
class _Slot:
    """One group of one read while it is fetched: `blobs[i]` is the blob of `keys[i]`,
    None until a tier has it, b"" once the store is known to have no row."""

    entity: str
    group: FeatureGroup
    keys: Sequence[str]
    blobs: list[bytes | None]

    def unfound(self) -> Sequence[int]:
        if self.blobs.count(None) == len(self.blobs):  # no tier has had any yet: no loop in Python
            return range(len(self.blobs))
        return [i for i, b in enumerate(self.blobs) if b is None]


class FeatureReader:
    def __init__(self, store: FeatureStore, cache: FeatureCache | None, registry: Callable[[], Registry],
                 clock: Callable[[], float] = time.time, lru_clock: Callable[[], float] = time.monotonic,
                 lru: bool = True):
        """`lru`: keep the groups' in-process LRUs (cache.lru_size); off for a reader whose
        reads are of different moments (a training set's), where a key's entry is not reusable."""
        self._store = store
        self._cache = cache
        self._registry = registry
        self._clock = clock
        self._lru_clock = lru_clock  # how the LRUs tell an entry's age: a test may run it
        self._lrus: dict[tuple[str, int], TtlLru] = {}
        self._use_lrus = lru

    def retrieve(self, entity: str, keys: Sequence[str], groups: Sequence[str],
                 features: dict[str, Sequence[str]] | None = None, timeout_s: float | None = None,
                 registry: Registry | None = None) -> list[GroupResult]:
        """Raise NotFound for an unknown entity/group/feature, StoreUnavailable if the store
        is down, DeadlineExceeded if `timeout_s` runs out first."""
        return self.retrieve_many([Read(entity, keys, groups, features)], timeout_s, registry)[0]

    def retrieve_many(self, reads: Sequence[Read], timeout_s: float | None = None,
                      registry: Registry | None = None) -> list[list[GroupResult]]:
        """Several reads, of any entities, together: one cache round trip for all of
        them, then one store read per entity for what the cache did not have."""
        pending = self.start_many(reads, timeout_s, registry)
        return [pending.results(i) for i in range(len(reads))]

    def start_many(self, reads: Sequence[Read], timeout_s: float | None = None,
                   registry: Registry | None = None, now_ms: int | None = None) -> PendingReads:
        """`retrieve_many` in steps: the cache lookup is sent now, and each read's results
        are taken from the returned PendingReads, in any order, so a caller can use one
        read's results (start a read keyed by them) before the others are decoded.
        `now_ms`: the moment TTLs are measured from (default: the clock when the store
        answers), so a request reads all its levels as of one moment."""
        started = time.perf_counter()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        registry = registry or self._registry()
        slots = [[_Slot(r.entity, g, r.keys, [None] * len(r.keys)) for g in self._check(registry, r)] for r in reads]
        every_slot = [s for of_read in slots for s in of_read]
        if self._use_lrus and any(s.group.cache.lru_size > 0 for s in every_slot):  # decided per group, not per key
            self._from_lru(every_slot)
        from_cache = self._start_cache(every_slot)
        metrics.RETRIEVE_KEYS.observe(sum(len(r.keys) for r in reads))
        return PendingReads(self, registry, reads, slots, partial(self._fetched, every_slot, from_cache, deadline),
                            started, now_ms)

    def decode(self, registry: Registry, group: FeatureGroup, blobs: Sequence[bytes | None],
               features: Sequence[str] | None = None) -> GroupResult:
        """Stored rows' blobs (None: no row) decoded as a read of them decodes them, but
        with no TTL applied: a caller reading as of many moments applies it per moment
        (a training set). Measured from the epoch, no row has expired."""
        slot = _Slot(group.entity, group, range(len(blobs)), [_NO_ROW if b is None else b for b in blobs])
        return self._assemble(registry, slot, 0, features)

    def _check(self, registry: Registry, read: Read) -> list[FeatureGroup]:
        if read.entity not in registry.entities:
            raise NotFound(f"unknown entity '{read.entity}'")
        if not read.checked:
            check_keys(registry.entities[read.entity], read.keys)
        resolved = [self._group(registry, read.entity, g) for g in read.groups]
        if read.checked:
            return resolved
        for g in resolved:
            for name in (read.features or {}).get(g.name) or ():
                if g.feature(name) is None:
                    raise NotFound(f"feature group '{g.name}' has no feature '{name}'")
        return resolved

    def forget(self, rows: Sequence[FeatureRow]) -> None:
        """Drop this process's LRU copies of rows it has just written (Persist)."""
        for (name, _), lru in self._lrus.items():
            lru.discard(lru_key(r.entity, r.group, r.key) for r in rows if r.group == name)

    @staticmethod
    def _group(registry: Registry, entity: str, name: str) -> FeatureGroup:
        group = registry.groups.get(name)
        if group is None:
            raise NotFound(f"unknown feature group '{name}'")
        if group.entity != entity:
            raise NotFound(f"feature group '{name}' belongs to entity '{group.entity}', not '{entity}'")
        return group

    # -- tiers ---------------------------------------------------------------------
    def _fetched(self, slots: list[_Slot], from_cache: Callable[[], None], deadline: float | None) -> None:
        """The slots filled: the cache's answer taken, the store read for what it lacked."""
        from_cache()
        unfound = [s for s in slots if None in s.blobs]
        if unfound:
            self._from_store(unfound, deadline)

    def _from_lru(self, slots: list[_Slot]) -> None:
        hits = misses = 0
        for s in slots:
            lru = self._lru(s.group)
            if lru is None:
                continue
            for i, key in enumerate(s.keys):
                s.blobs[i] = lru.get(lru_key(s.entity, s.group.name, key))
                hits += s.blobs[i] is not None
            misses += len(s.keys)
        metrics.CACHE_LOOKUPS.labels("lru", "hit").inc(hits)
        metrics.CACHE_LOOKUPS.labels("lru", "miss").inc(misses - hits)

    def _lru(self, g: FeatureGroup) -> TtlLru | None:
        if g.cache.lru_size <= 0 or not self._use_lrus:
            return None
        lru = self._lrus.get((g.name, g.version))
        if lru is None:
            lru = self._lrus[(g.name, g.version)] = TtlLru(g.cache.lru_size, g.cache.lru_ttl_s, self._lru_clock)
        return lru

    def _start_cache(self, slots: list[_Slot]) -> Callable[[], None]:
        """The cache lookup of what no earlier tier had, sent; the function returned takes
        its answer into the slots. A cache outage slows reads down; it must not fail them."""
        if self._cache is None:
            return _nothing
        asked = [(s, s.unfound()) for s in slots if s.group.cache.redis_ttl_s > 0]
        asked = [(s, at) for s, at in asked if at]
        if not asked:
            return _nothing
        try:
            found = self._cache.start_lookup_many([(s.entity, s.group.name, s.keys if len(at) == len(s.keys)
                                                    else [s.keys[i] for i in at]) for s, at in asked])
        except StoreUnavailable as exc:
            log.debug("cache_read_skipped", error=str(exc))
            return _nothing
        return partial(self._from_cache, asked, found)

    def _from_cache(self, asked: list[tuple[_Slot, Sequence[int]]], found: Callable[[], list]) -> None:
        try:
            answer = found()
        except StoreUnavailable as exc:
            log.debug("cache_read_skipped", error=str(exc))
            return
        hits = misses = 0
        for (s, at), values in zip(asked, answer):
            if len(at) == len(s.keys):
                s.blobs = values
            else:
                for i, value in zip(at, values):
                    s.blobs[i] = value
            missed = values.count(None)
            hits, misses = hits + len(values) - missed, misses + missed
            if self._lru(s.group) is not None:
                for i, value in zip(at, values):
                    self._remember_in_lru(s, i, value)
        _REDIS_HITS.inc(hits)
        _REDIS_MISSES.inc(misses)

    def _from_store(self, slots: list[_Slot], deadline: float | None) -> None:
        read_started = time.monotonic()
        to_cache = []
        by_entity: dict[str, list[_Slot]] = {}
        for s in slots:
            by_entity.setdefault(s.entity, []).append(s)
        for entity, mine in by_entity.items():
            keys = list(dict.fromkeys(s.keys[i] for s in mine for i in s.unfound()))
            rows = self._store.read(entity, keys, list(dict.fromkeys(s.group.name for s in mine)),
                                    timeout_s=_left(deadline))
            for s in mine:
                to_cache += self._take_rows(s, rows)
        if to_cache and self._cache is not None:
            self._cache.fill(to_cache, read_started)

    def _take_rows(self, s: _Slot, rows) -> list:
        """Record a store read's rows (and its misses) in the slot; return what to cache."""
        g = s.group
        caching, lru = self._cache is not None and g.cache.redis_ttl_s > 0, self._lru(g)  # once per slot
        now_ms, to_cache = self._clock() * 1000, []
        for i in s.unfound():
            row = rows.get((s.keys[i], g.name))
            s.blobs[i] = blob = row.blob if row is not None else _NO_ROW
            if caching:
                ttl = g.cache.redis_ttl_s if row is not None else g.cache.negative_ttl_s
                if row is not None and g.ttl_s:  # a cached copy never outlives the stored row
                    ttl = min(ttl, (row.event_time_ms + g.ttl_s * 1000 - now_ms) / 1000)
                if ttl > 0:
                    to_cache.append((s.entity, s.keys[i], g.name, row, ttl))
            if lru is not None and blob:
                lru.put(lru_key(s.entity, g.name, s.keys[i]), blob)
        return to_cache

    def _remember_in_lru(self, s: _Slot, i: int, blob: bytes | None) -> None:
        lru = self._lru(s.group)
        if lru is not None and blob:
            lru.put(lru_key(s.entity, s.group.name, s.keys[i]), blob)

    # -- decoding ---------------------------------------------------------------------
    def _assemble(self, registry: Registry, s: _Slot, now_ms: int, only: Sequence[str] | None) -> GroupResult:
        g = s.group
        wanted = list(only) if only else [f.name for f in g.features]
        n = len(s.keys)
        everything = all(s.blobs)  # the common case, checked without a Python loop
        rows = range(n) if everything else [i for i, b in enumerate(s.blobs) if b]  # b"" (no row), None: missing
        blobs = s.blobs if everything else [s.blobs[i] for i in rows]
        decoded = _decode_current(blobs, g, wanted) if rows else None
        if decoded is not None and len(rows) == n:
            complete = _complete(g, wanted, decoded, now_ms)
            if complete is not None:
                return complete
        status = np.full((n, len(wanted)), MISSING, dtype=np.int8)
        result = GroupResult(g.name, wanted, {name: empty_column(g.feature(name), n) for name in wanted}, status,
                             np.zeros(n, dtype=np.int64), g)
        if decoded is not None:  # every value written under the current version, some missing or expired
            self._fill(result, g, g.features, np.asarray(rows, dtype=np.int64), decoded, now_ms)
            return result
        for version, items in self._by_version(zip(rows, blobs), result).items():
            features = registry.features_of(g.name, version)
            if features is None:
                self._unreadable(result, [i for i, _ in items], "unknown_version")
            else:
                self._fill_version(result, g, features, items, now_ms)
        return result

    def _by_version(self, items, result: GroupResult) -> dict[int, list[tuple[int, bytes]]]:
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for i, blob in items:
            try:
                version, _ = feature_blob.read_header(blob)
            except InvalidEvent:
                self._unreadable(result, [i], "corrupt")
                continue
            groups.setdefault(version, []).append((i, blob))
        return groups

    def _fill_version(self, result: GroupResult, g: FeatureGroup, features, items, now_ms: int) -> None:
        """Decode one schema version's blobs column-wise; a blob that fails alone is unreadable."""
        try:
            rows = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
            self._fill(result, g, features, rows, feature_blob.decode_many([b for _, b in items], features), now_ms)
        except InvalidEvent:
            for item in items:
                try:
                    decoded = feature_blob.decode_many([item[1]], features)
                except InvalidEvent:
                    self._unreadable(result, [item[0]], "corrupt")
                    continue
                self._fill(result, g, features, np.array([item[0]], dtype=np.int64), decoded, now_ms)

    @staticmethod
    def _unreadable(result: GroupResult, rows: list[int], reason: str, column: int | None = None) -> None:
        if column is None:
            result.status[rows, :] = UNREADABLE
        else:
            result.status[rows, column] = UNREADABLE
        core_metrics.UNREADABLE_VALUES.labels(result.group, reason).inc(len(rows))
        log.error("unreadable_feature_values", group=result.group, reason=reason, values=len(rows))

    def _fill(self, result: GroupResult, g: FeatureGroup, features, rows: np.ndarray, decoded, now_ms: int) -> None:
        """Copy one schema version's decoded columns into the result rows `rows`, all keys at once."""
        result.event_time_ms[rows] = decoded.event_time_ms
        live = (now_ms - decoded.event_time_ms <= g.ttl_s * 1000) if g.ttl_s else np.ones(len(rows), dtype=bool)
        result.status[rows[~live], :] = EXPIRED
        stored = {f.name: (j, f) for j, f in enumerate(features)}
        for j, name in enumerate(result.features):
            if name not in stored:  # a feature added in a later version stays at its default
                continue
            position, old = stored[name]
            if not readable_as(old, g.feature(name)):
                self._unreadable(result, rows[live].tolist(), "type_changed", column=j)
                continue
            result.values[name][rows[live]] = decoded.columns[name][live]
            result.status[rows[live], j] = np.where(decoded.present[live, position], PRESENT, MISSING)


def _complete(g: FeatureGroup, wanted: list[str], decoded, now_ms: int) -> GroupResult | None:
    """The result when every key has a live row with every wanted feature sent (the
    common case): the decoded columns as they are; None otherwise."""
    if g.ttl_s and (now_ms - decoded.event_time_ms > g.ttl_s * 1000).any():
        return None
    if not decoded.all_sent(_positions(g, tuple(wanted))):
        return None
    n = len(decoded.event_time_ms)
    return GroupResult(g.name, wanted, {name: decoded.columns[name] for name in wanted},
                       np.zeros((n, len(wanted)), dtype=np.int8), decoded.event_time_ms, g, complete=True)  # PRESENT is 0


_POSITIONS: dict[tuple[int, tuple[str, ...]], tuple[FeatureGroup, tuple[int, ...]]] = {}


def _positions(g: FeatureGroup, names: tuple[str, ...]) -> tuple[int, ...]:
    """The declared positions of `names` in `g`, worked out once per group and names
    (by the group's identity: a registry's groups live until it is replaced)."""
    entry = _POSITIONS.get((id(g), names))
    if entry is not None and entry[0] is g:
        return entry[1]
    if len(_POSITIONS) > 4096:
        _POSITIONS.clear()
    positions = tuple(g.position(name) for name in names)
    _POSITIONS[(id(g), names)] = (g, positions)  # holding `g` keeps its id from being reused
    return positions


def _decode_current(blobs: list[bytes], g: FeatureGroup, wanted: Sequence[str]):
    """Blobs decoded at once when all are well-formed blobs of the group's current version; else None."""
    try:
        return feature_blob.decode_version(blobs, g.features, g.version, wanted)
    except InvalidEvent:  # a broken string section: the blobs are sorted out one by one
        return None


class PendingReads:
    """Reads whose cache lookup is in flight. The first `results` call waits for it and
    reads from the store what no tier had, for every read; each call then decodes
    its own read. A failure of that fetch is raised by every call."""

    def __init__(self, reader: FeatureReader, registry: Registry, reads: Sequence[Read], slots: list[list[_Slot]],
                 fetch: Callable[[], None], started: float, now_ms: int | None = None):
        self._reader, self._registry, self._reads, self._slots = reader, registry, reads, slots
        self._fetch: Callable[[], None] | None = fetch
        self._failure: Exception | None = None
        self._given_now_ms, self._now_ms = now_ms, 0
        self._started, self._left = started, len(reads)

    def results(self, i: int) -> list[GroupResult]:
        """Read i's results, one per group, in the read's group order."""
        if self._fetch is not None:
            fetch, self._fetch = self._fetch, None
            try:
                fetch()
            except Exception as exc:
                self._failure = exc
                raise
            self._now_ms = int(self._reader._clock() * 1000) if self._given_now_ms is None else self._given_now_ms
        if self._failure is not None:
            raise self._failure
        read = self._reads[i]
        results = [self._reader._assemble(self._registry, s, self._now_ms, (read.features or {}).get(s.group.name))
                   for s in self._slots[i]]
        self._left -= 1
        if self._left == 0:
            metrics.RETRIEVE_SECONDS.observe(time.perf_counter() - self._started)
        return results


def _nothing() -> None:
    pass


_REDIS_HITS = metrics.CACHE_LOOKUPS.labels("redis", "hit")
_REDIS_MISSES = metrics.CACHE_LOOKUPS.labels("redis", "miss")


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline exceeded before the store was read")
    return left
