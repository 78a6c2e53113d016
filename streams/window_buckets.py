"""Windowed counts kept incrementally: per user, counts of each interaction type in
time buckets, per user and per (user, category).

A window sums the buckets it covers: `clicks_1h` with one-minute buckets is the
current minute and the 59 before it. So an event leaves a window at a bucket's
edge, up to one bucket early, never late. Windows up to 6 h use fine buckets
(`interactions.window_fine_bucket_s`, 60 s), longer ones coarse buckets
(`window_coarse_bucket_s`, 1 h); a window that is not a whole number of buckets
is rounded down to one.

Exactly once, whatever is replayed: a user's events come from one partition, in
offset order, and the state keeps the offset of the last event it counted. An
event at or below it was counted already (a replay after a crash, a rebalance, a
replay from the earliest offset) and is skipped. The state is durable (the window
state store) and written before the offsets are committed. No count depends on
how many events a user has: there is no cap. The state is durable: a row of the
feature store (streams.windows).

The state also keeps the values last written for each scope, so a row is written
only when a value changed, and a category whose counts all fell to zero gets one
last row of zeros and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import msgspec

from vahini.streams.window_loops import USER_SCOPE
from vahini.codecs import feature_blob
from vahini.ports.interaction_store import TYPES
from vahini.registry.model import FeatureGroup, Registry, window_of

FINE_LIMIT_MS = 6 * 3_600_000  # windows up to this long use fine buckets


class UserWindows(msgspec.Struct, array_like=True, omit_defaults=True):
    """One user's window state, as the feature store keeps it (msgspec, compact)."""

    offset: int = -1  # of the last event counted (in the user's partition)
    partition: int = -1
    stamp_ms: int = 0  # when the state was last written, strictly increasing
    next_change_ms: int = 0  # until then, only new events change a value (0: unknown)
    # "scope\x1ftype\x1fbucket_s" -> {bucket index: count}
    counts: dict[str, dict[int, int]] = {}
    # scope -> the values last written for it, in the order of `WindowPlan.features(scope)`
    written: dict[str, list[int]] = {}


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(UserWindows).decode


def encode(state: UserWindows) -> bytes:
    return _ENCODE(state)


def decode(blob: bytes | None) -> UserWindows:
    return UserWindows() if not blob else _DECODE(blob)


@dataclass(frozen=True)
class Window:
    type: str  # CLICK, ORDER, WISHLIST
    length_ms: int
    bucket_s: int

    @property
    def buckets(self) -> int:
        return max(1, self.length_ms // (self.bucket_s * 1000))


@dataclass(frozen=True)
class WindowPlan:
    """The source=interactions groups of a registry, their windows and buckets."""

    groups: tuple[FeatureGroup, ...]
    user_groups: tuple[FeatureGroup, ...]
    category_groups: tuple[FeatureGroup, ...]
    windows: dict[str, Window]  # feature name -> its window
    fine_bucket_s: int
    coarse_bucket_s: int
    # Derived from `windows` once, for the per-event loops (streams.window_loops):
    suffixes: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)  # type -> (bucket ms, key suffix)
    spans: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)  # type -> (bucket ms, buckets)
    # USER_SCOPE's and a category's features, their groups' in order: (key suffix, bucket ms, buckets)
    scope_windows: tuple[tuple[tuple[str, int, int], ...], ...] = ((), ())
    # The same scopes' rows, a group each: (entity, group, ttl_s, features, packer of its blobs)
    scope_rows: tuple[tuple[tuple[str, str, int, int, Callable[[int, Sequence[int]], bytes]], ...], ...] = ((), ())
    suffix_plans: "SuffixPlans" = field(default_factory=lambda: SuffixPlans(()))

    @classmethod
    def of(cls, registry: Registry, fine_bucket_s: int = 60, coarse_bucket_s: int = 3600) -> "WindowPlan":
        groups = tuple(g for g in registry.groups.values() if g.source == "interactions")
        per_category = tuple(g for g in groups if registry.entities[g.entity].keys == ("user_id", "category_id"))
        per_user = tuple(g for g in groups if g not in per_category)
        windows = {}
        for group in groups:
            for feature in group.features:
                type_, length_ms = window_of(feature.name)
                fine = length_ms <= FINE_LIMIT_MS
                windows[feature.name] = Window(type_, length_ms, fine_bucket_s if fine else coarse_bucket_s)
        found = windows.values()

        def scope_windows(of: tuple[FeatureGroup, ...]) -> tuple[tuple[str, int, int], ...]:
            return tuple((_suffix(w.type, w.bucket_s), w.bucket_s * 1000, w.buckets)
                         for w in (windows[f.name] for g in of for f in g.features))

        def scope_rows(of: tuple[FeatureGroup, ...]) -> tuple:
            return tuple((g.entity, g.name, g.ttl_s, len(g.features), feature_blob.scalar_packer(g.features, g.version))
                         for g in of)

        return cls(groups, per_user, per_category, windows, fine_bucket_s, coarse_bucket_s,
                   suffixes={t: tuple((s * 1000, _suffix(t, s)) for s in sorted({w.bucket_s for w in found
                                                                                 if w.type == t}))
                             for t in TYPES},
                   spans={t: tuple(sorted({(w.bucket_s * 1000, w.buckets) for w in found if w.type == t}))
                          for t in TYPES},
                   scope_windows=(scope_windows(per_user), scope_windows(per_category)),
                   scope_rows=(scope_rows(per_user), scope_rows(per_category)),
                   suffix_plans=SuffixPlans(tuple(found)))

    def groups_of(self, scope: str) -> tuple[FeatureGroup, ...]:
        return self.user_groups if scope == USER_SCOPE else self.category_groups

    def windows_of(self, scope: str) -> tuple[tuple[str, int, int], ...]:
        return self.scope_windows[scope != USER_SCOPE]


class SuffixPlans(dict):
    """A count key's suffix -> (bucket ms, buckets kept, the bucket counts of the windows of
    its type and bucket size), made when first asked (streams.window_loops.settle). A
    bucket is kept while the longest window of its bucket size, of any type, covers it;
    counts of a suffix no window has any more (a window taken out of the registry) keep
    one bucket."""

    def __init__(self, windows: tuple["Window", ...]):
        super().__init__()
        self._windows = windows

    def __missing__(self, suffix: str) -> tuple[int, int, tuple[int, ...]]:
        _, type_, bucket_s = suffix.split("\x1f")
        size = int(bucket_s) * 1000
        longest = max((w.length_ms for w in self._windows if w.bucket_s * 1000 == size), default=0)
        windows = tuple(sorted({w.buckets for w in self._windows if w.type == type_ and w.bucket_s * 1000 == size}))
        plan = self[suffix] = (size, max(1, longest // size), windows)
        return plan


def _suffix(type_: str, bucket_s: int) -> str:
    """A count's key is its scope then this suffix: scope, type and bucket size, each after a unit separator."""
    return f"\x1f{type_}\x1f{bucket_s}"
