"""From validated updates to stored rows, shared by the stream worker and the
synchronous Persist call so both write exactly alike.

Merging a batch: one row per (entity, key, group), the newest by event time.

Every update is a snapshot of its group, so the newest one alone is the truth;
ties go to the greater blob, the same rule the stores apply, so the result is
independent of batch boundaries and arrival order."""

from __future__ import annotations

from typing import Iterable

from vahini.cache_keys import feature_cache_key
from vahini.codecs import feature_blob
from vahini.errors import StoreUnavailable
from vahini.logs import get_logger
from vahini.ports.feature_store import FeatureRow
from vahini.ports.hot_tier import HotTier
from vahini.validation import ValidUpdate


def row_of(update: ValidUpdate) -> FeatureRow:
    group = update.group
    blob = feature_blob.encode(group.features, group.version, update.event_time_ms, update.values)
    return FeatureRow(update.entity, update.key, group.name, update.event_time_ms, blob, group.ttl_s)


def newest_per_key(rows: Iterable[FeatureRow]) -> list[FeatureRow]:
    best: dict[tuple[str, str, str], FeatureRow] = {}
    for row in rows:
        k = (row.entity, row.key, row.group)
        cur = best.get(k)
        if cur is None or row.event_time_ms > cur.event_time_ms or (
                row.event_time_ms == cur.event_time_ms and row.blob > cur.blob):
            best[k] = row
    return list(best.values())


def invalidate_cached(cache: HotTier, rows: list[FeatureRow]) -> bool:
    """Drop the cached copies of rows just written (negative entries too); False if the cache was unreachable.

    Invalidate rather than overwrite: the store decided which value won, and the
    next read fetches exactly that. An unreachable cache only delays freshness
    until the entries' TTL, so it is logged, not raised."""
    try:
        cache.delete_many([feature_cache_key(r.entity, r.group, r.key) for r in rows])
        return True
    except StoreUnavailable as exc:
        get_logger(__name__).warning("cache_invalidation_failed", error=str(exc), keys=len(rows))
        return False
