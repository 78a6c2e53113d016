# cython: language_level=3, boundscheck=False, wraparound=False
"""streams.window_loops' loops, compiled: the same states and values as the Python
loops (the reference), without a Python step per event, bucket or window. Floor
division keeps Python's semantics (cdivision is off)."""

from vahini.registry.model import KEY_SEPARATOR

cdef long long NEVER_MS = 2**62  # streams.window_loops.NEVER_MS


cdef inline void _add(dict counts, str key, object bucket):
    cdef dict of_key = counts.get(key)
    if of_key is None:
        counts[key] = {bucket: 1}
    else:
        of_key[bucket] = of_key.get(bucket, 0) + 1


def count_new(state, dict suffixes, dict spans, bint by_category, events, long long now_ms):
    cdef set touched = set()
    cdef long long soonest = NEVER_MS, leaves, size, event_ms, buckets
    cdef dict counts = state.counts
    cdef long long partition = state.partition, offset = state.offset, p, o
    cdef tuple event, pair
    cdef bint scoped
    cdef str suffix
    for item in events:
        if not isinstance(item, tuple):  # a CountedEvent, a tuple subclass
            raise TypeError(f"an event is a tuple (partition, offset, type, category, event time ms), not {item!r}")
        event = <tuple>item
        p = event[0]
        o = event[1]
        if p == partition and o <= offset:
            continue
        partition = p
        offset = o
        type_ = event[2]
        category = event[3]
        event_ms = event[4]
        scoped = by_category and category and "|" not in category
        for pair in suffixes.get(type_, ()):
            size = pair[0]
            suffix = pair[1]
            bucket = event_ms // size
            _add(counts, suffix, bucket)
            if scoped:
                _add(counts, category + suffix, bucket)
        touched.add("")
        if scoped:
            touched.add(category)
        for pair in spans.get(type_, ()):
            size = pair[0]
            buckets = pair[1]
            leaves = (event_ms // size + buckets) * size
            if now_ms < leaves < soonest:
                soonest = leaves
    state.partition = partition
    state.offset = offset
    return touched, soonest


def scope_values(dict counts, str scope, windows, long long now_ms):
    cdef list out = []
    cdef tuple window
    cdef dict of_key
    cdef long long first, total, size
    for window in windows:
        of_key = counts.get(scope + window[0])
        if not of_key:
            out.append(0)
            continue
        size = window[1]
        first = now_ms // size - <long long>window[2] + 1
        total = 0
        for bucket, n in of_key.items():
            if <long long>bucket >= first:
                total += <long long>n
        out.append(total)
    return out


def settle(dict counts, suffix_plans, long long now_ms):
    cdef set scopes = set()
    cdef long long soonest = NEVER_MS, size, first_kept, first, low, leaves, buckets
    cdef Py_ssize_t sep
    cdef dict of_key
    cdef list stale
    cdef tuple plan
    cdef str key
    for key in list(counts):
        sep = key.rfind("\x1f", 0, key.rfind("\x1f"))
        plan = suffix_plans[key[sep:]]
        size = plan[0]
        of_key = counts[key]
        first_kept = now_ms // size - <long long>plan[1] + 1
        stale = [b for b in of_key if <long long>b < first_kept]
        if len(stale) == len(of_key):
            del counts[key]
            continue
        for bucket in stale:
            del of_key[bucket]
        scopes.add(key[:sep])
        for window_buckets in plan[2]:
            buckets = window_buckets
            first = now_ms // size - buckets + 1
            low = NEVER_MS
            for b in of_key:
                if first <= <long long>b < low:
                    low = b
            if low != NEVER_MS:
                leaves = (low + buckets) * size
                if leaves < soonest:
                    soonest = leaves
    return scopes, soonest


def step_users(plan, users, dict states, events, set due, long long now_ms, dict unsaved, make_row):
    cdef list rows = []
    cdef dict timers = {}
    cdef bint by_category = bool(plan.category_groups)
    cdef dict suffixes = plan.suffixes, spans = plan.spans
    cdef tuple scope_windows = plan.scope_windows, scope_rows = plan.scope_rows
    cdef object suffix_plans = plan.suffix_plans
    cdef long long first, soonest, next_change
    cdef tuple pending
    # make_row(...) without a named tuple's Python-level __new__, when it is one (FeatureRow)
    cdef bint tuple_rows = isinstance(make_row, type) and issubclass(make_row, tuple)
    for user in users:
        state = states[user]
        new = events.get(user, ())
        first = _first_new(state, new)
        touched, soonest = count_new(state, suffixes, spans, by_category, new, now_ms)
        if now_ms >= <long long>state.next_change_ms:
            with_counts, state.next_change_ms = settle(state.counts, suffix_plans, now_ms)
            touched = with_counts | set(state.written)
        for scope in sorted(touched):
            _changed_rows(state, scope_windows, scope_rows, user, scope, now_ms, rows, make_row, tuple_rows)
        next_change = state.next_change_ms
        if soonest < next_change:
            next_change = soonest
            state.next_change_ms = soonest
        if next_change < NEVER_MS:
            timers[user] = next_change
        if first >= 0 or user in due:
            pending = unsaved.get(user)
            if pending is None or (<long long>pending[1] < 0 <= first):
                unsaved[user] = (state.partition, first)
    return rows, timers


cdef long long _first_new(state, events) except? -2:
    cdef long long partition = state.partition, offset = state.offset
    for event in events:
        if not (<long long>event[0] == partition and <long long>event[1] <= offset):
            return event[1]
    return -1


cdef void _changed_rows(state, tuple scope_windows, tuple scope_rows, str user, str scope, long long now_ms,
                        list rows, make_row, bint tuple_rows) except *:
    cdef bint category = len(scope) > 0
    cdef list current = scope_values(state.counts, scope, scope_windows[category], now_ms)
    cdef dict written = state.written
    if written.get(scope) == current:
        return
    cdef str key = user + KEY_SEPARATOR + scope if category else user
    cdef Py_ssize_t start = 0, width
    for entity, group, ttl_s, group_width, pack in scope_rows[category]:
        width = group_width
        row = (entity, key, group, now_ms, pack(now_ms, current[start:start + width]), ttl_s)
        rows.append(tuple.__new__(make_row, row) if tuple_rows else make_row(*row))
        start += width
    if category and not any(current):
        written.pop(scope, None)
    else:
        written[scope] = current
