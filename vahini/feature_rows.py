"""From validated updates to stored rows, shared by the stream worker and the
synchronous Persist call so both write exactly alike.

Merging a batch: one row per (entity, key, group), the one of greatest
precedence (event time, then the store's tie-break), the same rule the stores
apply, so the result is independent of batch boundaries and arrival order."""

from __future__ import annotations

from typing import Iterable

from vahini import metrics
from vahini.codecs import feature_blob
from vahini.ports.feature_store import FeatureRow
from vahini.validation import ValidUpdate


def row_of(update: ValidUpdate) -> FeatureRow:
    group = update.group
    blob = feature_blob.encode(group.features, group.version, update.event_time_ms, update.values)
    return FeatureRow(update.entity, update.key, group.name, update.event_time_ms, blob, group.ttl_s)


def newest_per_key(rows: Iterable[FeatureRow]) -> list[FeatureRow]:
    best: dict[tuple[str, str, str], FeatureRow] = {}
    for row in rows:
        k = row[:3]  # (entity, key, group)
        cur = best.get(k)
        if cur is None or row.event_time_ms > cur.event_time_ms or (
                row.event_time_ms == cur.event_time_ms and row.precedence() > cur.precedence()):
            best[k] = row
    return list(best.values())


def unexpired(rows: list[FeatureRow], now_ms: int) -> list[FeatureRow]:
    """Rows whose event time plus their group's ttl_s is still ahead. The others are
    valid but would read as expired at once: they are counted and not written."""
    live = []
    for row in rows:
        expires = row.expires_at_ms()
        if expires is None or expires > now_ms:
            live.append(row)
        else:
            metrics.ROWS_EXPIRED_ON_ARRIVAL.labels(row.group).inc()
    return live
