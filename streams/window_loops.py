"""The window step's per-event loops: counting a user's new events into their time
buckets, summing a scope's windows from them, and dropping the buckets that left.

Compiled (streams._window_loops, built from its .pyx by the install) where a C
compiler was at hand, and these Python loops otherwise. The Python loops are the
reference: tests/streams/test_window_loops.py checks the compiled ones give the
same states and values, and that CI runs them. `use_compiled(False)` switches a
process back to the Python loops.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

from vahini import fast_paths
from vahini.registry.model import KEY_SEPARATOR

NEVER_MS = 2**62  # a next change that never comes
USER_SCOPE = ""  # the user's own counts; any other scope is a category id

try:
    from vahini.streams import _window_loops as compiled
except ImportError:  # installed without a C compiler: the Python loops serve alone
    compiled = None


def count_new_py(state, suffixes: dict[str, tuple[tuple[int, str], ...]],
                 spans: dict[str, tuple[tuple[int, int], ...]], by_category: bool,
                 events: Iterable[tuple], now_ms: int) -> tuple[set[str], int]:
    """Count each of `events` (partition, offset, type, category, event time ms) not
    counted in `state` yet into its buckets: `suffixes[type]` are (bucket ms, key
    suffix) and a count's key is its scope then the suffix. An event at or below the
    state's offset in its partition is a replay and skipped. Returns the scopes
    touched, and when the first new event leaves one of its windows (`spans[type]`:
    bucket ms, buckets), after `now_ms`; NEVER_MS if none does."""
    touched: set[str] = set()
    soonest = NEVER_MS
    counts = state.counts
    partition, offset = state.partition, state.offset
    for p, o, type_, category, event_ms in events:
        if p == partition and o <= offset:
            continue
        partition, offset = p, o
        scoped = by_category and category and "|" not in category
        for size, suffix in suffixes.get(type_, ()):
            bucket = event_ms // size
            _add(counts, suffix, bucket)
            if scoped:
                _add(counts, category + suffix, bucket)
        touched.add(USER_SCOPE)
        if scoped:
            touched.add(category)
        for size, buckets in spans.get(type_, ()):
            leaves = (event_ms // size + buckets) * size
            if now_ms < leaves < soonest:
                soonest = leaves
    state.partition, state.offset = partition, offset
    return touched, soonest


def _add(counts: dict[str, dict[int, int]], key: str, bucket: int) -> None:
    of_key = counts.get(key)
    if of_key is None:
        counts[key] = {bucket: 1}
    else:
        of_key[bucket] = of_key.get(bucket, 0) + 1


def scope_values_py(counts: dict[str, dict[int, int]], scope: str,
                    windows: Sequence[tuple[str, int, int]], now_ms: int) -> list[int]:
    """Each window's count for `scope`, now: windows are (key suffix, bucket ms,
    buckets), and a window sums its last `buckets` buckets up to now's."""
    out = []
    for suffix, size, buckets in windows:
        of_key = counts.get(scope + suffix)
        if not of_key:
            out.append(0)
            continue
        first = now_ms // size - buckets + 1
        out.append(sum(n for bucket, n in of_key.items() if bucket >= first))
    return out


def settle_py(counts: dict[str, dict[int, int]], suffix_plans: Mapping[str, tuple[int, int, tuple[int, ...]]],
              now_ms: int) -> tuple[set[str], int]:
    """Drop the buckets no window covers any more, and return the scopes left with counts
    and when a counted bucket next leaves one of its windows (NEVER_MS if none does).
    `suffix_plans[suffix]` is (bucket ms, buckets kept, the bucket counts of the windows
    of that type and bucket size). A bucket b is in a window of n buckets while
    now // size - n + 1 <= b, so it leaves at (b + n) * size."""
    scopes: set[str] = set()
    soonest = NEVER_MS
    for key in list(counts):
        sep = key.rfind("\x1f", 0, key.rfind("\x1f"))
        size, keep, windows = suffix_plans[key[sep:]]
        of_key = counts[key]
        first_kept = now_ms // size - keep + 1
        stale = [b for b in of_key if b < first_kept]
        if len(stale) == len(of_key):
            del counts[key]
            continue
        for bucket in stale:
            del of_key[bucket]
        scopes.add(key[:sep])
        for buckets in windows:
            first = now_ms // size - buckets + 1
            low = min((b for b in of_key if b >= first), default=None)
            if low is not None and (low + buckets) * size < soonest:
                soonest = (low + buckets) * size
    return scopes, soonest


def step_users_py(plan, users: Iterable[str], states: dict, events: Mapping[str, Sequence[tuple]],
                  due: set[str], now_ms: int, unsaved: dict[str, tuple[int, int]],
                  make_row: Callable) -> tuple[list, dict[str, int]]:
    """The window step for a batch: each user's new events counted (streams.windows'
    CountedEvent tuples), and a row made (`make_row(entity, key, group, now_ms, blob,
    ttl_s)`) for each of the user's groups whose values differ from those last written,
    in scope order. Returns the rows and, per user, when a count next falls. Marks in
    `unsaved` each user whose state changed: (partition, offset of the first event
    counted since the last save; -1 when only the written values changed). `plan` is a
    streams.window_buckets.WindowPlan."""
    rows: list = []
    timers: dict[str, int] = {}
    by_category = bool(plan.category_groups)
    for user in users:
        state = states[user]
        new = events.get(user, ())
        first = first_new(state, new)
        touched, soonest = count_new(state, plan.suffixes, plan.spans, by_category, new, now_ms)
        if now_ms >= state.next_change_ms:  # buckets may have left: prune, and every scope may differ
            with_counts, state.next_change_ms = settle(state.counts, plan.suffix_plans, now_ms)
            touched = with_counts | set(state.written)
        for scope in sorted(touched):
            _changed_rows(state, plan, user, scope, now_ms, rows, make_row)
        if soonest < state.next_change_ms:  # a new event may leave sooner
            state.next_change_ms = soonest
        if state.next_change_ms < NEVER_MS:
            timers[user] = state.next_change_ms
        if (first >= 0 or user in due) and (user not in unsaved or unsaved[user][1] < 0 <= first):
            unsaved[user] = (state.partition, first)
    return rows, timers


def _changed_rows(state, plan, user: str, scope: str, now_ms: int, rows: list, make_row: Callable) -> None:
    """The rows of `scope` if its values differ from those last written; marks them written.
    A category all of whose values are zero is forgotten after its row."""
    category = scope != USER_SCOPE
    current = scope_values(state.counts, scope, plan.scope_windows[category], now_ms)
    if state.written.get(scope) == current:
        return
    key = user + KEY_SEPARATOR + scope if category else user
    start = 0
    for entity, group, ttl_s, width, pack in plan.scope_rows[category]:
        rows.append(make_row(entity, key, group, now_ms, pack(now_ms, current[start:start + width]), ttl_s))
        start += width
    if category and not any(current):
        state.written.pop(scope, None)
    else:
        state.written[scope] = current


def first_new(state, events: Iterable[tuple]) -> int:
    """The offset of the first of `events` not counted in `state` yet, or -1."""
    for partition, offset, *_ in events:
        if not (partition == state.partition and offset <= state.offset):
            return offset
    return -1


count_new = count_new_py
scope_values = scope_values_py
settle = settle_py
step_users = step_users_py


def use_compiled(on: bool = True) -> bool:
    """Run the compiled loops (when built) or the Python ones; returns whether compiled ones run."""
    global count_new, scope_values, settle, step_users
    fast = on and compiled is not None
    count_new = compiled.count_new if fast else count_new_py
    scope_values = compiled.scope_values if fast else scope_values_py
    settle = compiled.settle if fast else settle_py
    step_users = compiled.step_users if fast else step_users_py
    return fast


fast_paths.register(__name__, use_compiled)
