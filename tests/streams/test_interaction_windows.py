"""Windowed interaction counts (feature groups with `source: interactions`), kept by
the interaction worker and served by Retrieve, on both stacks."""

from __future__ import annotations

import time

import pytest

from vahini.serving.retrieval import FeatureReader
from tests.conftest_backends import STACKS
from tests.processes_helpers import wait_for
from tests.streams.interaction_helpers import RunningInteractionWorker, interaction_settings, producer
from vahini import fast_paths, wiring
from vahini.registry.publish import RegistryFollower
from vahini.streams import window_loops

HOUR_MS = 3_600_000


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    # One-second buckets: the click that leaves its hour in ~4 s does so within a second of it.
    return interaction_settings(request.param, request, tmp_path, unique, window_fine_bucket_s=1)


class Features:
    def __init__(self, settings):
        self.store = wiring.feature_store(settings)
        self.follower = RegistryFollower(wiring.config_store(settings))
        self.reader = FeatureReader(self.store, None, lambda: self.follower.current)

    def of(self, entity: str, key: str, group: str) -> dict:
        (result,) = self.reader.retrieve(entity, [key], [group])
        return {f: int(result.values[f][0]) for f in result.features}

    def close(self) -> None:
        self.follower.close()
        self.store.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-paths", "public-paths"])
def test_counts_per_user_and_category_follow_interactions_and_fall_when_events_age_out(settings, unique, fast):
    settings = settings.model_copy(update={"fast_paths": fast})
    try:
        _counts_follow_interactions_and_fall_when_events_age_out(settings, unique)
    finally:
        fast_paths.use(True)


def _counts_follow_interactions_and_fall_when_events_age_out(settings, unique):
    u = f"w-{unique}"
    now = int(time.time() * 1000)
    p = producer(settings)
    p.interaction(f"{u}-1", u, "p1", "CLICK", now - 2 * HOUR_MS, category_id="shoes")    # 24h only
    p.interaction(f"{u}-2", u, "p2", "CLICK", now - HOUR_MS + 4000, category_id="shoes")  # leaves 1h in ~4 s
    p.interaction(f"{u}-3", u, "p3", "ORDER", now - 60_000, category_id="bags")
    p.session_event(u, "s", "START", now)
    p.interaction(f"{u}-4", u, "p4", "CLICK", now, category_id="bags")                    # while open: hot
    p.flush()
    worker, features = RunningInteractionWorker(settings), Features(settings)
    assert (window_loops.step_users is window_loops.step_users_py) == (not settings.fast_paths)
    user_counts = lambda: features.of("user", u, "user_interaction_windows")  # noqa: E731
    wait_for(lambda: user_counts() == {"clicks_1h": 2, "clicks_24h": 3, "orders_24h": 1, "wishlists_24h": 0},
             30, "the user's counts")
    assert features.of("user_category", f"{u}|shoes", "user_category_interaction_windows") == \
        {"clicks_1h": 1, "clicks_24h": 2, "orders_24h": 0}
    assert features.of("user_category", f"{u}|bags", "user_category_interaction_windows") == \
        {"clicks_1h": 1, "clicks_24h": 1, "orders_24h": 1}
    # No new event: the 1h counts fall when the click leaves the window.
    wait_for(lambda: user_counts()["clicks_1h"] == 1, 30, "clicks_1h to fall as the click ages out")
    assert user_counts()["clicks_24h"] == 3
    assert features.of("user_category", f"{u}|shoes", "user_category_interaction_windows")["clicks_1h"] == 0
    worker.close()

    # A replay from the start of the log (a new group) counts every event once.
    replay = settings.model_copy(update={"interactions": settings.interactions.model_copy(
        update={"group": f"replay-{unique}"})})
    again = RunningInteractionWorker(replay)
    log = wiring.event_log(settings)
    wait_for(lambda: sum(log.committed(f"replay-{unique}", settings.topics.interactions).values()) >= 5, 30,
             "the replay to commit every event")
    log.close()
    assert user_counts() == {"clicks_1h": 1, "clicks_24h": 3, "orders_24h": 1, "wishlists_24h": 0}
    assert again.stats.window_rows == 0  # each event was counted already: no row changed
    again.close()
    features.close()


def test_unsaved_states_hold_the_commit_until_saved_and_a_replay_counts_each_event_once(settings):
    """Window states are saved every window_state_interval_s, not with every batch. Until a
    user's state is saved, the oldest event counted into it bounds the commit; after a
    save nothing does. A writer that lost its memory (a crash) and is given the events
    again from that offset counts each once, from the last saved state."""
    from vahini.streams.windows import STATE_GROUP, CountedEvent, window_writer

    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    follower = RegistryFollower(wiring.config_store(settings))
    now = int(time.time() * 1000)

    def writer():
        return window_writer(settings, store, cache, lambda: follower.current)

    def clicks(first: int, n: int) -> list[CountedEvent]:
        return [CountedEvent(3, offset, "CLICK", "c1", now - 1000) for offset in range(first, first + n)]

    def apply(w, events, save: bool) -> None:
        nonlocal now
        now += 1  # rows carry the time they were computed: the newest wins
        w.write(w.compute({"u-held": events}, (), now, save))

    try:
        w = writer()
        apply(w, clicks(10, 5), save=True)  # offsets 10-14: saved
        apply(w, clicks(15, 3), save=False)
        apply(w, clicks(18, 2), save=False)
        assert w.unsaved_offsets() == {3: 15}  # the commit stays at 15 for partition 3
        saved = store.read("user", ["u-held"], [STATE_GROUP])
        crashed = writer()  # what a restarted worker replays from the commit: 15 onwards, and some before
        apply(crashed, clicks(12, 8), save=True)
        assert crashed.unsaved_offsets() == {}
        assert store.read("user", ["u-held"], [STATE_GROUP]) != saved
        features = Features(settings)
        try:
            assert features.of("user", "u-held", "user_interaction_windows")["clicks_1h"] == 10
        finally:
            features.close()
    finally:
        follower.close()
        cache.close()
        store.close()
