"""The window step's per-event loops: counting a user's new events into their time
buckets, and summing a scope's windows from them.

Compiled (streams._window_loops, built from its .pyx by the install) where a C
compiler was at hand, and these Python loops otherwise. The Python loops are the
reference: tests/streams/test_window_loops.py checks the compiled ones give the
same states and values, and that CI runs them. `use_compiled(False)` switches a
process back to the Python loops.
"""

from __future__ import annotations

from typing import Iterable, Sequence

NEVER_MS = 2**62  # a next change that never comes
USER_SCOPE = ""  # the user's own counts; any other scope is a category id

try:
    from streams import _window_loops as compiled
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


count_new = count_new_py
scope_values = scope_values_py


def use_compiled(on: bool = True) -> bool:
    """Run the compiled loops (when built) or the Python ones; returns whether compiled ones run."""
    global count_new, scope_values
    fast = on and compiled is not None
    count_new = compiled.count_new if fast else count_new_py
    scope_values = compiled.scope_values if fast else scope_values_py
    return fast


use_compiled()
