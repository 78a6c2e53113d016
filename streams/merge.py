"""Merging a batch: one row per (entity, key, group), the newest by event time.

Every update is a snapshot of its group, so the newest one alone is the truth;
ties go to the greater blob, the same rule the stores apply, so the result is
independent of batch boundaries and arrival order."""

from __future__ import annotations

from typing import Iterable

from vahini.ports.feature_store import FeatureRow


def newest_per_key(rows: Iterable[FeatureRow]) -> list[FeatureRow]:
    best: dict[tuple[str, str, str], FeatureRow] = {}
    for row in rows:
        k = (row.entity, row.key, row.group)
        cur = best.get(k)
        if cur is None or row.event_time_ms > cur.event_time_ms or (
                row.event_time_ms == cur.event_time_ms and row.blob > cur.blob):
            best[k] = row
    return list(best.values())
