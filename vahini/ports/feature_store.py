"""Durable storage of feature rows: one blob per (entity, key, group).

Which of two rows of one (entity, key, group) wins is a function of the rows
alone, never of arrival order: the greater `write_timestamp_us` wins, and on an
equal timestamp the greater blob. The timestamp is the event time in
microseconds plus a tie-break in [0, 999] taken from the blob, so two different
events at the same millisecond almost always differ in timestamp. That matters
on Cassandra/Scylla: from Cassandra 4 on, cells with a TTL and an equal write
timestamp are reconciled by expiry before value, which made the later arrival
win. Expiry runs from event time (`expires_at_ms`), so equal event times also
expire alike (to the second). What is left: two different blobs of one key
with the same event time and the same tie-break (1 pair in 1000) are resolved
by the engine's own rule.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple, Protocol, Sequence


def write_timestamp_us(event_time_ms: int, blob: bytes) -> int:
    """The store's ordering timestamp: event time in µs, ties broken by the blob's CRC-32."""
    return event_time_ms * 1000 + zlib.crc32(blob) % 1000


class FeatureRow(NamedTuple):
    """One stored row. A named tuple, not a frozen dataclass: the ingest worker makes
    one per event, and a tuple costs a fraction of a frozen dataclass to build."""

    entity: str
    key: str
    group: str
    event_time_ms: int
    blob: bytes
    ttl_s: int = 0  # the row expires ttl_s after its event time; 0 = keep forever

    def precedence(self) -> tuple[int, bytes]:
        """Of two rows of one (entity, key, group), the greater precedence wins."""
        return write_timestamp_us(self.event_time_ms, self.blob), self.blob

    def expires_at_ms(self) -> int | None:
        return self.event_time_ms + self.ttl_s * 1000 if self.ttl_s else None

    def ttl_left_s(self, now_ms: int) -> int | None:
        """None without a TTL; else whole seconds of life left, rounded up (<= 0: expired)."""
        expires = self.expires_at_ms()
        return None if expires is None else -(-(expires - now_ms) // 1000)


class FeatureStore(Protocol):
    def write(self, rows: Sequence[FeatureRow], timeout_s: float | None = None) -> None:
        """Make every row durable before returning. A row replaces the stored one only
        if its precedence is greater, so writes commute and replays are idempotent.
        Rows already expired (by event time) are not written. Raises StoreUnavailable,
        or DeadlineExceeded when `timeout_s` runs out first."""

    def read(self, entity: str, keys: Sequence[str], groups: Sequence[str],
             timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        """Stored rows by (key, group); absent or expired rows are left out. Raises
        StoreUnavailable, or DeadlineExceeded when `timeout_s` runs out first."""

    def read_in_bulk(self, entity: str, keys: Sequence[str], groups: Sequence[str],
                     timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        """`read`'s answer, for a worker loading many keys at once: several keys per
        request where the engine allows. Cheaper per key, but a slow replica holds up
        every key of its request, so serving keeps to `read`."""

    def close(self) -> None: ...
