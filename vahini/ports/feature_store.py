"""Durable storage of feature rows: one blob per (entity, key, group)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True, slots=True)
class FeatureRow:
    entity: str
    key: str
    group: str
    event_time_ms: int
    blob: bytes
    ttl_s: int = 0  # storage expiry from write time; 0 = keep forever


class FeatureStore(Protocol):
    def write(self, rows: Sequence[FeatureRow]) -> None:
        """Make every row durable before returning. A row replaces the stored one
        only if its event time is newer (ties: the greater blob wins), so writes
        commute and replays are idempotent. Raises StoreUnavailable."""

    def read(self, entity: str, keys: Sequence[str], groups: Sequence[str]) -> dict[tuple[str, str], FeatureRow]:
        """Stored rows by (key, group); absent or storage-expired rows are left out."""

    def close(self) -> None: ...
