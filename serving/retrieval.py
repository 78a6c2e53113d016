"""Batch feature retrieval: many keys of one entity, several groups.

Lookup order per (key, group): in-process LRU (optional, per group) -> hot tier
(Redis) -> feature store. Store misses are cached as empty values for a short
time (negative caching) so absent keys do not hammer the store; cache TTLs get
±10% jitter so entries filled together do not expire together.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from vahini.cache_keys import feature_cache_key
from vahini.codecs import feature_blob
from vahini.errors import InvalidEvent, NotFound, StoreUnavailable
from vahini.logs import get_logger
from vahini.ports.feature_store import FeatureStore
from vahini.ports.hot_tier import HotTier
from vahini.registry.model import SCALAR_DTYPES, Feature, FeatureGroup, Registry
from serving import metrics
from serving.lru import TtlLru

log = get_logger(__name__)

PRESENT, MISSING, EXPIRED = 0, 1, 2
STATUS_NAMES = ("present", "missing", "expired")
_NEGATIVE = b""


@dataclass
class GroupResult:
    """Values of one group for every requested key, column by column.

    `values[f]` is an array with one row per key: shape (n,) for scalars, (n, dim)
    float32 for vectors, an object array of str for strings. `status[i, j]` is
    PRESENT, MISSING (default used) or EXPIRED (default used) for key i, feature j.
    """

    group: str
    features: list[str]
    values: dict[str, np.ndarray]
    status: np.ndarray
    event_time_ms: np.ndarray  # 0 where no row was found


def _empty_column(f: Feature, n: int) -> np.ndarray:
    if f.type == "vector":
        return np.tile(np.asarray(f.default, dtype=np.float32), (n, 1))
    if f.type == "string":
        return np.full(n, f.default, dtype=object)
    return np.full(n, f.default, dtype=SCALAR_DTYPES[f.type])


class FeatureReader:
    def __init__(self, store: FeatureStore, cache: HotTier, registry: Callable[[], Registry],
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._cache = cache
        self._registry = registry
        self._clock = clock
        self._lrus: dict[tuple[str, int], TtlLru] = {}

    def retrieve(self, entity: str, keys: Sequence[str], groups: Sequence[str],
                 features: dict[str, Sequence[str]] | None = None) -> list[GroupResult]:
        """Raise NotFound for an unknown entity/group/feature, StoreUnavailable if the store is down."""
        started = time.perf_counter()
        registry = self._registry()
        if entity not in registry.entities:
            raise NotFound(f"unknown entity '{entity}'")
        resolved = [self._group(registry, entity, g) for g in groups]
        blobs = self._fetch(entity, list(keys), resolved)
        now_ms = int(self._clock() * 1000)
        results = [self._assemble(registry, g, keys, blobs, now_ms, (features or {}).get(g.name)) for g in resolved]
        metrics.RETRIEVE_KEYS.observe(len(keys))
        metrics.RETRIEVE_SECONDS.observe(time.perf_counter() - started)
        return results

    @staticmethod
    def _group(registry: Registry, entity: str, name: str) -> FeatureGroup:
        group = registry.groups.get(name)
        if group is None:
            raise NotFound(f"unknown feature group '{name}'")
        if group.entity != entity:
            raise NotFound(f"feature group '{name}' belongs to entity '{group.entity}', not '{entity}'")
        return group

    # -- tiers ---------------------------------------------------------------------
    def _fetch(self, entity: str, keys: list[str], groups: list[FeatureGroup]) -> dict[tuple[str, str], bytes]:
        found: dict[tuple[str, str], bytes] = {}
        wanted: list[tuple[str, FeatureGroup]] = []
        lru_misses = 0
        for g in groups:
            lru = self._lru(g)
            for k in dict.fromkeys(keys):
                hit = lru.get(feature_cache_key(entity, g.name, k)) if lru else None
                if hit is None:
                    wanted.append((k, g))
                    lru_misses += lru is not None
                else:
                    found[(k, g.name)] = hit
        metrics.CACHE_LOOKUPS.labels("lru", "hit").inc(len(found))
        metrics.CACHE_LOOKUPS.labels("lru", "miss").inc(lru_misses)
        wanted = self._from_cache(entity, wanted, found)
        if wanted:
            self._from_store(entity, wanted, found)
        return {k: v for k, v in found.items() if v != _NEGATIVE}

    def _lru(self, g: FeatureGroup) -> TtlLru | None:
        if g.cache.lru_size <= 0:
            return None
        lru = self._lrus.get((g.name, g.version))
        if lru is None:
            lru = self._lrus[(g.name, g.version)] = TtlLru(g.cache.lru_size, g.cache.lru_ttl_s)
        return lru

    def _from_cache(self, entity: str, wanted, found) -> list[tuple[str, FeatureGroup]]:
        cacheable = [(k, g) for k, g in wanted if g.cache.redis_ttl_s > 0]
        if not cacheable:
            return wanted
        try:
            values = self._cache.get_many([feature_cache_key(entity, g.name, k) for k, g in cacheable])
        except StoreUnavailable as exc:  # a cache outage slows reads down; it must not fail them
            log.warning("cache_read_failed", error=str(exc))
            return wanted
        uncached = [(k, g) for k, g in wanted if g.cache.redis_ttl_s <= 0]
        misses = []
        for (k, g), value in zip(cacheable, values):
            if value is None:
                misses.append((k, g))
            else:
                found[(k, g.name)] = value
                self._remember_in_lru(entity, g, k, value)
        metrics.CACHE_LOOKUPS.labels("redis", "hit").inc(len(cacheable) - len(misses))
        metrics.CACHE_LOOKUPS.labels("redis", "miss").inc(len(misses))
        return uncached + misses

    def _from_store(self, entity: str, wanted, found) -> None:
        keys = list(dict.fromkeys(k for k, _ in wanted))
        groups = list({g.name: g for _, g in wanted}.values())
        rows = self._store.read(entity, keys, [g.name for g in groups])
        to_cache: dict[float, dict[str, bytes]] = {}
        for k, g in wanted:
            row = rows.get((k, g.name))
            blob = row.blob if row is not None else _NEGATIVE
            found[(k, g.name)] = blob
            ttl = g.cache.redis_ttl_s if row is not None else g.cache.negative_ttl_s
            if g.cache.redis_ttl_s > 0 and ttl > 0:
                to_cache.setdefault(ttl, {})[feature_cache_key(entity, g.name, k)] = blob
            if row is not None:
                self._remember_in_lru(entity, g, k, blob)
        for ttl, items in to_cache.items():
            try:
                self._cache.set_many(items, ttl * random.uniform(0.9, 1.1))
            except StoreUnavailable as exc:
                log.warning("cache_fill_failed", error=str(exc))

    def _remember_in_lru(self, entity: str, g: FeatureGroup, k: str, blob: bytes) -> None:
        lru = self._lru(g)
        if lru is not None and blob != _NEGATIVE:
            lru.put(feature_cache_key(entity, g.name, k), blob)

    # -- decoding ---------------------------------------------------------------------
    def _assemble(self, registry: Registry, g: FeatureGroup, keys: Sequence[str], blobs, now_ms: int,
                  only: Sequence[str] | None) -> GroupResult:
        wanted = list(only) if only else [f.name for f in g.features]
        for name in wanted:
            if g.feature(name) is None:
                raise NotFound(f"feature group '{g.name}' has no feature '{name}'")
        n = len(keys)
        result = GroupResult(g.name, wanted, {name: _empty_column(g.feature(name), n) for name in wanted},
                             np.full((n, len(wanted)), MISSING, dtype=np.int8), np.zeros(n, dtype=np.int64))
        for version, items in self._by_version(g, keys, blobs).items():
            features = registry.features_of(g.name, version)
            if features is not None:  # else written under a version no longer known: defaults
                self._fill(result, g, features, items, now_ms)
        return result

    @staticmethod
    def _by_version(g: FeatureGroup, keys: Sequence[str], blobs) -> dict[int, list[tuple[int, bytes]]]:
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for i, key in enumerate(keys):
            blob = blobs.get((key, g.name))
            if blob is None:
                continue
            try:
                version, _ = feature_blob.read_header(blob)
            except InvalidEvent as exc:
                log.error("corrupt_feature_blob", group=g.name, key=key, error=str(exc))
                continue
            groups.setdefault(version, []).append((i, blob))
        return groups

    @staticmethod
    def _fill(result: GroupResult, g: FeatureGroup, features, items, now_ms: int) -> None:
        """Copy one schema version's decoded columns into the result, all keys at once."""
        try:
            decoded = feature_blob.decode_many([b for _, b in items], features)
        except InvalidEvent as exc:
            log.error("corrupt_feature_blob", group=g.name, error=str(exc))
            return
        rows = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
        result.event_time_ms[rows] = decoded.event_time_ms
        live = (now_ms - decoded.event_time_ms <= g.ttl_s * 1000) if g.ttl_s else np.ones(len(rows), dtype=bool)
        result.status[rows[~live], :] = EXPIRED
        position = {f.name: j for j, f in enumerate(features)}
        for j, name in enumerate(result.features):
            if name in position:  # a feature added in a later version stays at its default
                result.values[name][rows[live]] = decoded.columns[name][live]
                result.status[rows[live], j] = np.where(decoded.present[live, position[name]], PRESENT, MISSING)
