"""Windowed interaction counts (`clicks_1h`, `orders_24h`, ...) as feature rows.

Feature groups with `source: interactions` declare the counts; the interaction
worker keeps them. A user's counts are recomputed from the user's history (each
event id once) whenever the user acts, and again when an event leaves a window,
so a count also falls when nothing happens. Recomputing from the history, rather
than adding to a running count, makes every write idempotent: replays, restarts
and rebalances cannot count an event twice. Rows carry the time they were
computed as their event time, so the newest computation wins in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from vahini.feature_rows import row_of
from vahini.ports.feature_store import FeatureRow
from vahini.ports.interaction_store import StoredInteraction
from vahini.registry.model import KEY_SEPARATOR, FeatureGroup, Registry, window_of
from vahini.validation import ValidUpdate


@dataclass(frozen=True)
class WindowPlan:
    """The source=interactions groups of a registry, and how far back they look."""

    groups: tuple[FeatureGroup, ...]
    longest_ms: int

    @classmethod
    def of(cls, registry: Registry) -> "WindowPlan":
        groups = tuple(g for g in registry.groups.values() if g.source == "interactions")
        longest = max((window_of(f.name)[1] for g in groups for f in g.features), default=0)
        return cls(groups, longest)

    @property
    def lookback_ms(self) -> int:
        """Twice the longest window: a category whose last event just left the window
        still gets its count written back to zero."""
        return 2 * self.longest_ms


def window_rows(plan: WindowPlan, registry: Registry, histories: Mapping[str, list[StoredInteraction]],
                now_ms: int) -> list[FeatureRow]:
    rows = []
    for group in plan.groups:
        per_category = registry.entities[group.entity].keys == ("user_id", "category_id")
        for user, history in histories.items():
            for key, items in _keyed(user, history, per_category):
                values = {f.name: _count(items, *window_of(f.name), now_ms) for f in group.features}
                rows.append(row_of(ValidUpdate(group.entity, key, group, now_ms, values)))
    return rows


def _keyed(user: str, history: list[StoredInteraction], per_category: bool) -> Iterable[tuple[str, list]]:
    if not per_category:
        yield user, history
        return
    by_category: dict[str, list[StoredInteraction]] = {}
    for item in history:
        if item.category_id and KEY_SEPARATOR not in item.category_id:
            by_category.setdefault(item.category_id, []).append(item)
    for category, items in by_category.items():
        yield f"{user}{KEY_SEPARATOR}{category}", items


def _count(items: list[StoredInteraction], type_: str, window_ms: int, now_ms: int) -> int:
    return sum(1 for i in items if i.type == type_ and i.event_time_ms > now_ms - window_ms)


def next_change_ms(plan: WindowPlan, history: list[StoredInteraction], now_ms: int) -> int | None:
    """When the first event of `history` leaves one of the plan's windows, if ever."""
    windows = {window_of(f.name) for group in plan.groups for f in group.features}
    leaving = [i.event_time_ms + w for (t, w) in windows for i in history
               if i.type == t and i.event_time_ms + w > now_ms]
    return min(leaving, default=None)


class WindowWriter:
    """Writes window rows to the feature store and fences their cache entries, as the
    feature worker does for its rows."""

    def __init__(self, store, cache, registry):
        self.store = store
        self.cache = cache
        self.registry = registry

    def write(self, rows: list[FeatureRow]) -> None:
        if rows:
            self.store.write(rows)
            self.cache.fence(rows)
