"""Windowed interaction counts (`clicks_1h`, `orders_24h`, ...) as feature rows.

Feature groups with `source: interactions` declare the counts, and the interaction
worker keeps them incrementally: each event adds to its user's time buckets
(streams.window_buckets), and the rows whose values changed are written. When no
event comes, a timer per user brings the rows down as buckets leave their
windows. Each user's state is durable in the window state store, with the offset
of the last event it counted, so replays, restarts, rebalances and a hot tier that
loses its memory cannot count an event twice. Rows carry the time they were
computed as their event time, so the newest computation wins in the store.

The state is a row of the feature store too, of the reserved group
`__interaction_windows` (registry names cannot start with `_`). It lives in the
user's partition, beside the user's window row. The rows are written with every
batch; a user's state is saved less often (`interactions.window_state_interval_s`),
and until it is, the worker holds its commit at the user's oldest event not in a
saved state (`unsaved_offsets`): a crash replays those events onto the last saved
state, which counts each of them once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, NamedTuple

from vahini.streams import window_buckets as wb
from vahini.streams import window_loops
from vahini.ports.feature_store import FeatureRow
from vahini.registry.model import Registry

DAY_MS = 86_400_000
STATE_GROUP = "__interaction_windows"  # each user's window state, as a feature row of entity "user"


class CountedEvent(NamedTuple):
    """What a window needs of an interaction, and where it is in the log. The worker makes
    one per event as a plain tuple in this order, which costs a fifth of this class's
    constructor; the window step reads them by position."""

    partition: int
    offset: int
    type: str
    category_id: str | None
    event_time_ms: int


@dataclass
class WindowBatch:
    """A batch's effect on the windows: the rows that changed, the users' states, the timers."""

    rows: list[FeatureRow] = field(default_factory=list)
    states: list[FeatureRow] = field(default_factory=list)
    timers: dict[str, int] = field(default_factory=dict)  # user -> when a count of theirs next falls


class WindowWriter:
    """Keeps the counts: applies events to the users' states, writes the rows that
    changed (fencing their cache entries, as the feature worker does) and the states."""

    CACHE_USERS = 200_000  # states kept in memory between batches, most recent first

    def __init__(self, store, cache, registry: Callable[[], Registry], fine_bucket_s: int = 60,
                 coarse_bucket_s: int = 3600):
        self.store = store
        self.cache = cache
        self.registry = registry
        self._buckets = (fine_bucket_s, coarse_bucket_s)
        self._plan: tuple[Registry, wb.WindowPlan] | None = None
        self._known: OrderedDict[str, wb.UserWindows] = OrderedDict()
        # Users whose state changed since it was last saved: user -> (partition, offset of the
        # first event counted since; -1 when only its written values changed, which no replay needs).
        self._unsaved: dict[str, tuple[int, int]] = {}
        self._oldest: dict[int, int] = {}  # partition -> the least first offset in _unsaved (unsaved_offsets)

    def plan(self) -> wb.WindowPlan:
        registry = self.registry()
        if self._plan is None or self._plan[0] is not registry:
            self._plan = (registry, wb.WindowPlan.of(registry, *self._buckets))
        return self._plan[1]

    def compute(self, events: Mapping[str, list[CountedEvent]], due: Iterable[str], now_ms: int,
                save: bool = True) -> WindowBatch:
        """Apply each user's new events (and bring down the counts of users whose timer is
        due). With `save`, the batch also holds the state of every user changed since the
        last save; else those users are left in `unsaved_offsets`."""
        plan = self.plan()
        due = set(due)
        users = set(events) | due
        states = self._states_of(users)
        out = WindowBatch()
        out.rows, out.timers = window_loops.step_users(plan, users, states, events, due, now_ms, self._unsaved,
                                                       FeatureRow)
        for user in users:  # an entry's offset never falls until the save clears them: keep the least
            partition, first = self._unsaved.get(user, (0, -1))
            if 0 <= first < self._oldest.get(partition, first + 1):
                self._oldest[partition] = first
        if save:
            out.states = self._saved(plan, now_ms)
        return out

    def _saved(self, plan: wb.WindowPlan, now_ms: int) -> list[FeatureRow]:
        """The state rows of every user changed since the last save, and none unsaved after."""
        # A user idle this long has every count at zero: the state may expire.
        ttl_s = max((w.length_ms for w in plan.windows.values()), default=0) // 1000 + 86_400
        rows = []
        for user in self._unsaved:
            state = self._known[user]
            # Strictly later than the state's last write: the newest state always wins.
            state.stamp_ms = max(now_ms, state.stamp_ms + 1)
            rows.append(FeatureRow("user", user, STATE_GROUP, state.stamp_ms, wb.encode(state), ttl_s))
        self._unsaved, self._oldest = {}, {}
        return rows

    def unsaved_offsets(self) -> dict[int, int]:
        """Per partition, the offset of the oldest event counted into a state not saved yet:
        the worker commits no further."""
        return dict(self._oldest)

    def has_unsaved(self) -> bool:
        return bool(self._unsaved)

    def write(self, batch: WindowBatch) -> None:
        """Rows and states in one write: a user's state shares its partition (and batch) with
        the user's window row. A crash before it replays the events into the same rows."""
        if batch.rows or batch.states:
            self.store.write([*batch.rows, *batch.states])
        if batch.rows:
            self.cache.fence(batch.rows)

    def forget(self, partitions: set[int]) -> None:
        """Drop the states of users of partitions this worker no longer owns, saved or not:
        its new owner replays from the commit, which no unsaved event has passed."""
        for user in [u for u, s in self._known.items() if s.partition in partitions]:
            del self._known[user]
            self._unsaved.pop(user, None)
        for partition in partitions:
            self._oldest.pop(partition, None)

    def _states_of(self, users: set[str]) -> dict[str, wb.UserWindows]:
        missing = [u for u in users if u not in self._known]
        stored = self.store.read_in_bulk("user", missing, [STATE_GROUP]) if missing else {}
        for user in missing:
            row = stored.get((user, STATE_GROUP))
            self._known[user] = wb.decode(row.blob if row else None)
        for user in users:
            self._known.move_to_end(user)
        while len(self._known) > self.CACHE_USERS:  # the least recently used; never an unsaved one
            oldest = next(iter(self._known))
            if oldest in self._unsaved:
                self._known.move_to_end(oldest)
                if next(iter(self._known)) in self._unsaved:
                    break  # all unsaved: kept until the next save
                continue
            del self._known[oldest]
        return {u: self._known[u] for u in users}


def window_writer(settings, store, cache, registry: Callable[[], Registry]) -> WindowWriter:
    """The worker's WindowWriter, with the buckets of `settings`."""
    s = settings.interactions
    return WindowWriter(store, cache, registry, s.window_fine_bucket_s, s.window_coarse_bucket_s)
