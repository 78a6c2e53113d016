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
from serving import metrics
from serving.lru import TtlLru

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
    for key in keys:
        parts = key.split(KEY_SEPARATOR)
        if len(parts) != n or not all(parts):
            problem = f"has {len(parts)} part(s)" if len(parts) != n else "has an empty part"
            raise InvalidEvent(Reason.INVALID_KEY, (
                f"key {key!r} of entity '{entity.name}' {problem}; it needs {n}: "
                f"{KEY_SEPARATOR.join(entity.keys)}, in that order, joined by '{KEY_SEPARATOR}'"))


Triple = tuple[str, str, str]  # (entity, key, group name)


@dataclass(frozen=True)
class Read:
    """Keys of one entity, and the groups (optionally only some features) to read for them."""

    entity: str
    keys: Sequence[str]
    groups: Sequence[str]
    features: dict[str, Sequence[str]] | None = None


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


def _empty_column(f: Feature, n: int) -> np.ndarray:
    if f.type == "vector":
        return np.tile(np.asarray(f.default, dtype=np.float32), (n, 1))
    if f.type == "string":
        return np.full(n, f.default, dtype=object)
    return np.full(n, f.default, dtype=SCALAR_DTYPES[f.type])


class FeatureReader:
    def __init__(self, store: FeatureStore, cache: FeatureCache | None, registry: Callable[[], Registry],
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._cache = cache
        self._registry = registry
        self._clock = clock
        self._lrus: dict[tuple[str, int], TtlLru] = {}

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
        started = time.perf_counter()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        registry = registry or self._registry()
        resolved = [self._check(registry, read) for read in reads]
        wanted = {(r.entity, k, g.name): g for r, groups in zip(reads, resolved) for g in groups for k in r.keys}
        # Whether any group keeps an in-process copy: decided per group, not per key.
        with_lru = any(g.cache.lru_size > 0 for groups in resolved for g in groups)
        blobs = self._fetch(wanted, deadline, with_lru)
        now_ms = int(self._clock() * 1000)
        results = [[self._assemble(registry, r.entity, g, r.keys, blobs, now_ms, (r.features or {}).get(g.name))
                    for g in groups] for r, groups in zip(reads, resolved)]
        for r in reads:
            metrics.RETRIEVE_KEYS.observe(len(r.keys))
        metrics.RETRIEVE_SECONDS.observe(time.perf_counter() - started)
        return results

    def _check(self, registry: Registry, read: Read) -> list[FeatureGroup]:
        if read.entity not in registry.entities:
            raise NotFound(f"unknown entity '{read.entity}'")
        check_keys(registry.entities[read.entity], read.keys)
        resolved = [self._group(registry, read.entity, g) for g in read.groups]
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
    # `wanted` maps (entity, key, group name) to the group; `found` holds the blobs.
    def _fetch(self, wanted: dict[Triple, FeatureGroup], deadline: float | None,
               with_lru: bool) -> dict[Triple, bytes]:
        found: dict[Triple, bytes] = {}
        if with_lru:
            wanted = self._from_lru(wanted, found)
        wanted = self._from_cache(wanted, found)
        if wanted:
            self._from_store(wanted, found, deadline)
        return {k: v for k, v in found.items() if v != _NO_ROW}

    def _from_lru(self, wanted: dict[Triple, FeatureGroup], found) -> dict[Triple, FeatureGroup]:
        left, hits, misses = {}, 0, 0
        for triple, g in wanted.items():
            lru = self._lru(g)
            entity, k, _ = triple
            hit = lru.get(lru_key(entity, g.name, k)) if lru else None
            if hit is None:
                left[triple] = g
                misses += lru is not None
            else:
                found[triple] = hit
                hits += 1
        metrics.CACHE_LOOKUPS.labels("lru", "hit").inc(hits)
        metrics.CACHE_LOOKUPS.labels("lru", "miss").inc(misses)
        return left

    def _lru(self, g: FeatureGroup) -> TtlLru | None:
        if g.cache.lru_size <= 0:
            return None
        lru = self._lrus.get((g.name, g.version))
        if lru is None:
            lru = self._lrus[(g.name, g.version)] = TtlLru(g.cache.lru_size, g.cache.lru_ttl_s)
        return lru

    def _from_cache(self, wanted: dict[Triple, FeatureGroup], found) -> dict[Triple, FeatureGroup]:
        cacheable = [t for t, g in wanted.items() if g.cache.redis_ttl_s > 0]
        if not cacheable or self._cache is None:
            return wanted
        try:
            cached = self._cache.lookup(cacheable)
        except StoreUnavailable as exc:  # a cache outage slows reads down; it must not fail them
            log.debug("cache_read_skipped", error=str(exc))
            return wanted
        misses = {}
        for triple, g in wanted.items():
            value = cached.get(triple)
            if value is None:
                misses[triple] = g
            else:
                found[triple] = value
                self._remember_in_lru(triple, g, value)
        metrics.CACHE_LOOKUPS.labels("redis", "hit").inc(len(cached))
        metrics.CACHE_LOOKUPS.labels("redis", "miss").inc(len(cacheable) - len(cached))
        return misses

    def _from_store(self, wanted: dict[Triple, FeatureGroup], found, deadline: float | None) -> None:
        read_started = time.monotonic()
        to_cache = []
        for entity in dict.fromkeys(e for e, _, _ in wanted):
            mine = {t: g for t, g in wanted.items() if t[0] == entity}
            rows = self._store.read(entity, list(dict.fromkeys(k for _, k, _ in mine)),
                                    list(dict.fromkeys(g for _, _, g in mine)), timeout_s=_left(deadline))
            to_cache += self._take_rows(mine, rows, found)
        if to_cache and self._cache is not None:
            self._cache.fill(to_cache, read_started)

    def _take_rows(self, wanted: dict[Triple, FeatureGroup], rows, found) -> list:
        """Record a store read's rows (and its misses); return what to cache."""
        now_ms, to_cache = self._clock() * 1000, []
        for triple, g in wanted.items():
            entity, k, _ = triple
            row = rows.get((k, g.name))
            found[triple] = row.blob if row is not None else _NO_ROW
            if g.cache.redis_ttl_s > 0:
                ttl = g.cache.redis_ttl_s if row is not None else g.cache.negative_ttl_s
                if row is not None and g.ttl_s:  # a cached copy never outlives the stored row
                    ttl = min(ttl, (row.event_time_ms + g.ttl_s * 1000 - now_ms) / 1000)
                if ttl > 0:
                    to_cache.append((entity, k, g.name, row, ttl))
            if row is not None:
                self._remember_in_lru(triple, g, row.blob)
        return to_cache

    def _remember_in_lru(self, triple: Triple, g: FeatureGroup, blob: bytes) -> None:
        lru = self._lru(g)
        if lru is not None and blob != _NO_ROW:
            entity, k, _ = triple
            lru.put(lru_key(entity, g.name, k), blob)

    # -- decoding ---------------------------------------------------------------------
    def _assemble(self, registry: Registry, entity: str, g: FeatureGroup, keys: Sequence[str], blobs,
                  now_ms: int, only: Sequence[str] | None) -> GroupResult:
        wanted = list(only) if only else [f.name for f in g.features]
        n = len(keys)
        result = GroupResult(g.name, wanted, {name: _empty_column(g.feature(name), n) for name in wanted},
                             np.full((n, len(wanted)), MISSING, dtype=np.int8), np.zeros(n, dtype=np.int64), g)
        for version, items in self._by_version(entity, g, keys, blobs, result).items():
            features = registry.features_of(g.name, version)
            if features is None:
                self._unreadable(result, [i for i, _ in items], "unknown_version")
            else:
                self._fill_version(result, g, features, items, now_ms)
        return result

    def _by_version(self, entity: str, g: FeatureGroup, keys: Sequence[str], blobs, result: GroupResult):
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for i, key in enumerate(keys):
            blob = blobs.get((entity, key, g.name))
            if blob is None:
                continue
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
            self._fill(result, g, features, items, feature_blob.decode_many([b for _, b in items], features), now_ms)
        except InvalidEvent:
            for item in items:
                try:
                    decoded = feature_blob.decode_many([item[1]], features)
                except InvalidEvent:
                    self._unreadable(result, [item[0]], "corrupt")
                    continue
                self._fill(result, g, features, [item], decoded, now_ms)

    @staticmethod
    def _unreadable(result: GroupResult, rows: list[int], reason: str, column: int | None = None) -> None:
        if column is None:
            result.status[rows, :] = UNREADABLE
        else:
            result.status[rows, column] = UNREADABLE
        core_metrics.UNREADABLE_VALUES.labels(result.group, reason).inc(len(rows))
        log.error("unreadable_feature_values", group=result.group, reason=reason, values=len(rows))

    def _fill(self, result: GroupResult, g: FeatureGroup, features, items, decoded, now_ms: int) -> None:
        """Copy one schema version's decoded columns into the result, all keys at once."""
        rows = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
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


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline exceeded before the store was read")
    return left
