"""The feature cache in front of the store, shared by the readers that fill it
and the writers that fence it.

Every entry carries the version of what it holds (`FeatureRow.precedence`'s
write timestamp), and every write to the cache is `set_if_newer`:

- a reader fills a value (tag V) or a "no row" (tag N, version 0) it read from the store;
- a writer, once rows are durable, writes a fence (tag F) with each row's version.

A reader that read the store before a write and fills after it loses against
the writer's fence, so an older value is never put back. A fence reads as a
miss, and the next reader fills the new value over it (V > F at equal versions).
A fill is skipped when the store read took longer than half a fence's life.

When a writer cannot reach the cache, the entries of the keys it wrote may be
stale. It then starts a new cache epoch: a row in the feature store that every
process polls (`epoch_poll_s`) and re-reads before it uses the cache again
after an outage. Keys embed the epoch, so entries of older epochs are never
read again and expire by their TTL.

All cache calls go through a circuit breaker: a hung cache costs one short
timeout, then is bypassed until a probe gets an answer.
"""

from __future__ import annotations

import random
import threading
import time
from functools import partial
from typing import Callable, Iterable, Sequence

from vahini import metrics
from vahini.circuit import CircuitBreaker
from vahini import fast_paths
from vahini.codecs import loops
from vahini.errors import StoreUnavailable, VahiniError
from vahini.logs import get_logger
from vahini.ports.feature_store import FeatureRow, FeatureStore, write_timestamp_us
from vahini.ports.hot_tier import HEADER_LEN, VERSION_DIGITS, HotTier, version_header
from vahini.settings import CacheSettings

compiled = fast_paths.bind(__name__, "compiled", loops.built)  # None while fast paths are off

log = get_logger(__name__)

VALUE, NO_ROW, FENCE = b"V", b"N", b"F"
EPOCH_ROW = ("__vahini", "cache", "epoch")  # (entity, key, group) of the epoch row in the feature store
_PROBE_KEY = "vf:probe"


_VALUE_TAG, _NO_ROW_TAG = VALUE[0], NO_ROW[0]
_FENCE_ENTRY = b"%0" + str(VERSION_DIGITS).encode() + b"d" + FENCE  # version_header(version, FENCE), formatted once per row


def _unwrapped(values: list[bytes | None]) -> list[bytes | None]:
    """Cache entries as lookups return them: the blob of a value, b"" for "no row", None
    for a miss or a fence. Runs once per key on the read path: compiled where it can be."""
    if compiled is not None:
        return compiled.unwrap_entries(values, HEADER_LEN, VERSION_DIGITS, _VALUE_TAG, _NO_ROW_TAG)
    return _unwrapped_in_python(values)


def _unwrapped_in_python(values: Sequence[bytes | None]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for v in values:
        if v is None or len(v) < HEADER_LEN:
            out.append(None)
            continue
        tag = v[VERSION_DIGITS]
        out.append(v[HEADER_LEN:] if tag == _VALUE_TAG else b"" if tag == _NO_ROW_TAG else None)
    return out


def _by_batch(values: Callable[[], list[bytes | None]], sizes: list[int]) -> list[list[bytes | None]]:
    """A lookup's entries, unwrapped, cut back into the batches they were asked in."""
    found, out, start = values(), [], 0
    for size in sizes:
        out.append(_unwrapped(found[start:start + size]))
        start += size
    return out


def lru_key(entity: str, group: str, key: str) -> str:
    return f"{entity}:{group}:{key}"


class FeatureCache:
    def __init__(self, tier: HotTier, store: FeatureStore, settings: CacheSettings):
        self._tier = tier
        self._store = store
        self._settings = settings
        self._breaker = CircuitBreaker("feature cache", lambda: tier.get_many([_PROBE_KEY]),
                                       settings.probe_interval_s, on_recover=self.refresh_epoch)
        self._epoch = 0
        self._stop = threading.Event()
        try:
            self.refresh_epoch()
        except VahiniError as exc:
            log.warning("cache_epoch_unknown", error=str(exc))
        threading.Thread(target=self._poll_epoch, name="cache-epoch", daemon=True).start()

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def bypassed(self) -> bool:
        return self._breaker.is_open

    def key(self, entity: str, group: str, key: str) -> str:
        return self._keys([(entity, group, key)])[0]

    def _keys(self, triples: Iterable[tuple[str, str, str]]) -> list[str]:
        """Cache keys of (entity, group, key) triples, all under one epoch; the prefix is
        taken once per call, not per key, on the ingest and read paths."""
        prefix = f"{self._settings.namespace}:{self._epoch}:"
        return [f"{prefix}{entity}:{group}:{key}" for entity, group, key in triples]

    # -- readers -----------------------------------------------------------------
    def lookup(self, wanted: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], bytes]:
        """Cached blobs of (entity, key, group) triples in one round trip, b"" where the store
        is known to have no row; misses and fences left out. Raises StoreUnavailable (at
        once while bypassed)."""
        found = self.lookup_many([(entity, group, [key]) for entity, key, group in wanted])
        return {triple: value[0] for triple, value in zip(wanted, found) if value[0] is not None}

    def lookup_many(self, batches: Sequence[tuple[str, str, Sequence[str]]]) -> list[list[bytes | None]]:
        """For each (entity, group, keys): the cached blob of each key, b"" where the store
        is known to have no row, None for a miss or a fence; all in one round trip.
        Raises StoreUnavailable (at once while bypassed)."""
        return self.start_lookup_many(batches)()

    def start_lookup_many(self, batches: Sequence[tuple[str, str, Sequence[str]]]
                          ) -> Callable[[], list[list[bytes | None]]]:
        """`lookup_many` in two steps: the lookup is sent now, and its answer taken when the
        returned function is called (once). Either step raises StoreUnavailable."""
        keys: list[str] = []
        # Each group's key prefix from _keys, where the key format lives: one epoch for the call.
        for group_prefix, (_, _, of_group) in zip(self._keys((e, g, "") for e, g, _ in batches), batches):
            keys += [group_prefix + k for k in of_group]
        values = self._breaker.call_in_two_steps("get", self._tier.start_get_many, keys)
        return partial(_by_batch, values, [len(of_group) for _, _, of_group in batches])

    def fill(self, items: Iterable[tuple[str, str, str, FeatureRow | None, float]], read_started: float) -> None:
        """Cache what store reads returned: (entity, key, group, row or None, TTL s). Never fails the caller."""
        if time.monotonic() - read_started > self._settings.fence_ttl_s / 2:
            return  # a writer's fence may have expired meanwhile: this value may be older than the store's
        by_ttl: dict[float, dict[str, bytes]] = {}
        items = list(items)
        keys = self._keys((entity, group, key) for entity, key, group, _, _ in items)
        for cache_key, (_, _, _, row, ttl_s) in zip(keys, items):
            entry = (version_header(write_timestamp_us(row.event_time_ms, row.blob), VALUE) + row.blob
                     if row is not None else version_header(0, NO_ROW))
            by_ttl.setdefault(ttl_s, {})[cache_key] = entry
        for ttl_s, entries in by_ttl.items():
            try:  # ±10% jitter: entries filled together do not expire together
                self._breaker.call("fill", self._tier.set_if_newer, entries, ttl_s * random.uniform(0.9, 1.1))
            except StoreUnavailable as exc:
                log.debug("cache_fill_skipped", error=str(exc))
                return

    # -- writers -----------------------------------------------------------------
    def fence(self, rows: Sequence[FeatureRow]) -> bool:
        """After `rows` are durable: fence their entries so no older value can be filled.
        If the cache cannot be reached, start a new epoch and return False. Raises
        StoreUnavailable only when the epoch cannot be recorded either."""
        # One formatting per row: the ingest workers fence every row they write.
        if compiled is not None:
            entries = compiled.fence_entries(rows, f"{self._settings.namespace}:{self._epoch}:", FENCE)
        else:
            entries = dict(zip(self._keys((r.entity, r.group, r.key) for r in rows),
                               [_FENCE_ENTRY % write_timestamp_us(r.event_time_ms, r.blob) for r in rows]))
        try:
            self._breaker.call("fence", self._tier.set_if_newer, entries, self._settings.fence_ttl_s)
            return True
        except StoreUnavailable as exc:
            self.start_new_epoch(f"fence of {len(rows)} row(s) failed: {exc}")
            return False

    def start_new_epoch(self, reason: str) -> None:
        now_ms = max(int(time.time() * 1000), self._epoch + 1)
        entity, key, group = EPOCH_ROW
        self._store.write([FeatureRow(entity, key, group, now_ms, b"")])
        self._epoch = max(self._epoch, now_ms)
        metrics.CACHE_EPOCH_BUMPS.inc()
        log.warning("cache_epoch_started", epoch=self._epoch, reason=reason)

    def refresh_epoch(self) -> None:
        entity, key, group = EPOCH_ROW
        row = self._store.read(entity, [key], [group], timeout_s=2.0).get((key, group))
        if row is not None and row.event_time_ms > self._epoch:
            self._epoch = row.event_time_ms

    def _poll_epoch(self) -> None:
        while not self._stop.wait(self._settings.epoch_poll_s):
            try:
                self.refresh_epoch()
            except VahiniError as exc:
                log.debug("cache_epoch_poll_failed", error=str(exc))

    def close(self) -> None:
        self._stop.set()
        self._breaker.close()
        self._tier.close()
