"""The window step's loops (streams.window_loops): the compiled ones against the
Python ones they stand in for, on the same random events, replays among them; the
Python ones against a brute-force count of the events in each window; and the
rows' packed blobs against feature_blob.encode. No services."""

import copy
import random
import shutil
from pathlib import Path

import pytest

from vahini.streams import window_buckets as wb
from vahini.streams import window_loops
from vahini.streams.windows import CountedEvent
from vahini.codecs import feature_blob
from vahini.ports.feature_store import FeatureRow
from vahini.registry.loader import load_registry
from vahini.registry.model import Feature

SAMPLES = Path(__file__).resolve().parents[2] / "vahini" / "samples" / "registry"
# Beside the sample's windows: two fine windows on one bucket size, and a coarse one of days.
EXTRA_GROUP = """
  - name: user_long_windows
    entity: user
    version: 3
    source: interactions
    ttl_s: 0
    features:
      - {name: clicks_10m, type: int, default: 0}
      - {name: clicks_6h, type: int32, default: 0}
      - {name: orders_7d, type: int, default: 0}
"""
CATEGORIES = [None, "", "shoes", "books", "toys|games", "東京", "odd\x1fid"]
TYPES = ["CLICK", "ORDER", "WISHLIST"]
NOW_MS = 1_780_000_000_000
needs_compiled = pytest.mark.skipif(window_loops.compiled is None, reason="streams._window_loops was not built")


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> wb.WindowPlan:
    directory = tmp_path_factory.mktemp("registry")
    shutil.copytree(SAMPLES, directory, dirs_exist_ok=True)
    groups = directory / "feature_groups.yaml"
    groups.write_text(groups.read_text() + EXTRA_GROUP)
    return wb.WindowPlan.of(load_registry(directory), fine_bucket_s=60, coarse_bucket_s=3600)


def _events(rng: random.Random, n: int, moves: bool = True) -> list[CountedEvent]:
    """In offset order, as a user's events arrive, with replays of earlier ones mixed in and,
    with `moves`, a move to another partition now and then (the state keeps one)."""
    events, offset = [], rng.randrange(100)
    for _ in range(n):
        if events and rng.random() < 0.15:
            events.append(rng.choice(events))  # a replay: at or below the state's offset
            continue
        offset += rng.randrange(1, 4)
        partition = 4 if moves and rng.random() < 0.1 else 3
        age_ms = rng.choice([rng.randrange(0, 600_000), rng.randrange(0, 8 * 86_400_000)])
        events.append(CountedEvent(partition, offset, rng.choice(TYPES), rng.choice(CATEGORIES), NOW_MS - age_ms))
    return events


def _count(plan: wb.WindowPlan, count_new, state: wb.UserWindows, events, now_ms: int):
    return count_new(state, plan.suffixes, plan.spans, bool(plan.category_groups), events, now_ms)


def test_the_compiled_window_loops_are_built():
    # `make test` installs with a C compiler at hand: a missing module means the build failed quietly.
    assert window_loops.compiled is not None, "streams._window_loops was not built: see the pip install output"


@needs_compiled
@pytest.mark.parametrize("seed", range(20))
def test_the_compiled_loops_count_and_sum_as_the_python_loops_do(plan, seed):
    rng = random.Random(seed)
    python_state, compiled_state = wb.UserWindows(), wb.UserWindows()
    for batch in range(5):
        events = _events(rng, rng.randrange(0, 60))
        now_ms = NOW_MS + batch * 40_000
        expected = _count(plan, window_loops.count_new_py, python_state, events, now_ms)
        got = _count(plan, window_loops.compiled.count_new, compiled_state, events, now_ms)
        assert got == expected
        assert wb.encode(compiled_state) == wb.encode(python_state)
        for scope in [wb.USER_SCOPE, *filter(None, CATEGORIES)]:
            for later_ms in (now_ms, now_ms + 3_599_999, now_ms + 86_400_000, now_ms + 30 * 86_400_000):
                windows = plan.windows_of(scope)
                assert (window_loops.compiled.scope_values(compiled_state.counts, scope, windows, later_ms)
                        == window_loops.scope_values_py(python_state.counts, scope, windows, later_ms))


@pytest.mark.parametrize("count_new", ["python", "compiled"])
def test_a_window_counts_each_new_event_in_its_buckets_once(plan, count_new):
    if count_new == "compiled" and window_loops.compiled is None:
        pytest.skip("streams._window_loops was not built")
    loop = window_loops.count_new_py if count_new == "python" else window_loops.compiled.count_new
    values = window_loops.scope_values_py if count_new == "python" else window_loops.compiled.scope_values
    rng = random.Random(7)
    events = _events(rng, 400)
    state = wb.UserWindows()
    touched, soonest = _count(plan, loop, state, events, NOW_MS)
    # Brute force: the events a window counts are the new ones (each offset past the last
    # counted, in its partition) whose bucket is among the window's last `buckets` up to now's.
    counted, last = [], (-1, -1)
    for e in events:
        if not (e.partition == last[0] and e.offset <= last[1]):
            counted.append(e)
            last = (e.partition, e.offset)
    assert (state.partition, state.offset) == last
    for scope in ["", "shoes", "東京", "toys|games"]:
        in_scope = [e for e in counted if scope == "" or e.category_id == scope]
        expected = []
        for group in plan.groups_of(scope):
            for feature in group.features:
                w = plan.windows[feature.name]
                size = w.bucket_s * 1000
                first = NOW_MS // size - w.buckets + 1
                expected.append(sum(1 for e in in_scope if e.type == w.type and e.event_time_ms // size >= first))
        got = values(state.counts, scope, plan.windows_of(scope), NOW_MS)
        assert got == (expected if scope != "toys|games" else [0] * len(expected))  # a multi-category id has no scope
    assert touched == {"", *(e.category_id for e in counted if e.category_id and "|" not in e.category_id)}
    leaving = [(e.event_time_ms // size + buckets) * size for e in counted
               for size, buckets in plan.spans[e.type]]
    assert soonest == min(t for t in leaving if t > NOW_MS)


def _settled_by_definition(counts: dict, plan: wb.WindowPlan, now_ms: int) -> tuple[dict, set, int]:
    """Brute force: a bucket of size S stays while the longest window of size S (any type)
    covers it, at least one bucket; the next change is the soonest time after now when a
    counted bucket leaves a window of its key's type and size."""
    kept, soonest = {}, window_loops.NEVER_MS
    for key, of_key in counts.items():
        scope, type_, bucket_s = key.rsplit("\x1f", 2)
        size = int(bucket_s) * 1000
        longest = max((w.length_ms for w in plan.windows.values() if w.bucket_s * 1000 == size), default=0)
        keep = max(1, longest // size)
        left = {b: n for b, n in of_key.items() if b >= now_ms // size - keep + 1}
        if left:
            kept[key] = left
        for w in plan.windows.values():
            if w.type == type_ and w.bucket_s * 1000 == size:
                soonest = min([soonest, *((b + w.buckets) * size for b in left if (b + w.buckets) * size > now_ms)])
    return kept, {k.rsplit("\x1f", 2)[0] for k in kept}, soonest


@pytest.mark.parametrize("seed", range(12))
def test_settling_drops_the_buckets_that_left_and_finds_the_next_change(plan, seed):
    rng = random.Random(seed)
    state = wb.UserWindows()
    _count(plan, window_loops.count_new_py, state, _events(rng, 300), NOW_MS)
    state.counts["\x1fCLICK\x1f7"] = {NOW_MS // 7000: 2, 5: 1}  # a bucket size no window has (any more)
    for later_ms in (NOW_MS, NOW_MS + 61_000, NOW_MS + 3_600_000, NOW_MS + 86_400_000, NOW_MS + 9 * 86_400_000):
        expected_counts, expected_scopes, expected_next = _settled_by_definition(state.counts, plan, later_ms)
        loops = [window_loops.settle_py] + ([window_loops.compiled.settle] if window_loops.compiled else [])
        for settle in loops:
            counts = copy.deepcopy(state.counts)
            assert settle(counts, plan.suffix_plans, later_ms) == (expected_scopes, expected_next)
            assert counts == expected_counts
            assert list(counts) == [k for k in state.counts if k in expected_counts]  # order kept: same state bytes


@needs_compiled
@pytest.mark.parametrize("seed", range(8))
def test_the_compiled_window_step_makes_the_python_steps_rows_timers_and_states(plan, seed):
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(30)]
    states = {"python": {u: wb.UserWindows() for u in users}, "compiled": {u: wb.UserWindows() for u in users}}
    unsaved: dict = {"python": {}, "compiled": {}}
    steps = {"python": window_loops.step_users_py, "compiled": window_loops.compiled.step_users}
    rows = 0
    for batch in range(8):
        now_ms = NOW_MS + batch * 1_900_000  # about half an hour apart: buckets leave their windows
        events = {u: _events(rng, rng.randrange(0, 8), moves=False) for u in rng.sample(users, 12)}
        due = set(rng.sample(users, 4))
        active = sorted(set(events) | due)
        made = {k: step(plan, active, states[k], events, due, now_ms, unsaved[k], FeatureRow)
                for k, step in steps.items()}
        assert made["compiled"] == made["python"]
        assert {type(row) for k in made for row in made[k][0]} <= {FeatureRow}
        assert unsaved["compiled"] == unsaved["python"]
        assert {u: wb.encode(s) for u, s in states["compiled"].items()} == \
            {u: wb.encode(s) for u, s in states["python"].items()}
        rows += len(made["python"][0])
    assert rows > 50


def test_replaying_counted_events_changes_nothing(plan):
    state = wb.UserWindows()
    events = _events(random.Random(3), 100, moves=False)
    _count(plan, window_loops.count_new, state, events, NOW_MS)
    before = copy.deepcopy(state)
    assert _count(plan, window_loops.count_new, state, events, NOW_MS) == (set(), window_loops.NEVER_MS)
    assert wb.encode(state) == wb.encode(before)


def test_use_compiled_switches_the_loops_the_window_step_calls():
    try:
        assert window_loops.use_compiled(False) is False
        assert window_loops.count_new is window_loops.count_new_py
        assert window_loops.scope_values is window_loops.scope_values_py
    finally:
        fast = window_loops.use_compiled(True)
    assert fast == (window_loops.compiled is not None)
    assert (window_loops.count_new is window_loops.compiled.count_new) == fast


@pytest.mark.parametrize("features", [
    (Feature("clicks_1h", "int32", 0), Feature("clicks_24h", "int32", 0)),
    (Feature("a", "int32", 0), Feature("b", "int", 0), Feature("c", "float32", 0.0), Feature("d", "int", 0),
     Feature("e", "bool", False), Feature("f", "float", 0.0), *[Feature(f"n{i}", "int32", 0) for i in range(9)]),
])
def test_a_packed_row_is_byte_for_byte_what_feature_blob_encodes(features):
    feature_blob.layout_of(copy.deepcopy(features))  # layouts are cached by equality: an equal registry's first
    pack = feature_blob.scalar_packer(features, 4)
    values = list(range(3, 3 + len(features)))
    assert pack(NOW_MS, values) == feature_blob.encode(features, 4, NOW_MS, {f.name: v for f, v in zip(features, values)})


def test_the_packer_takes_scalar_features_only():
    with pytest.raises(ValueError, match="scalar"):
        feature_blob.scalar_packer((Feature("name", "string", ""),), 1)
