"""Running the interaction worker in tests, and reading what it stored."""

from __future__ import annotations


from vahini import wiring
from vahini.ports.interaction_store import HistoryQuery
from vahini.producer import EventProducer
from vahini.settings import InteractionSettings, Settings
from vahini.serving.interactions import History, InteractionReader
from vahini.streams.app import build_interaction_worker
from vahini.streams.windows import window_writer
from vahini.registry.publish import RegistryFollower
from tests.conftest_backends import stack_settings, with_sample_registry
from tests.processes_helpers import WorkerThread


def interaction_settings(kind: str, request, tmp_path, unique: str, **overrides) -> Settings:
    """The stack of `kind`, with one topic for both event kinds and a short inactivity timeout."""
    base = stack_settings(kind, request, tmp_path, unique)
    topics = base.topics.model_copy(update={"sessions": base.topics.interactions})
    hot = f"sqlite:///{tmp_path}/ihot.db" if kind == "embedded" else request.getfixturevalue("redis_url")
    interactions = InteractionSettings(**{"hot_tier": hot, "namespace": f"ih-{unique}", "group": f"ia-{unique}",
                                          "inactivity_timeout_s": 2.0, "checkpoint_interval_s": 3600.0,
                                          "batch_size": 200, **overrides})
    return with_sample_registry(base.model_copy(update={"topics": topics, "interactions": interactions}))


def RunningInteractionWorker(settings: Settings) -> WorkerThread:  # named as the class it builds
    """An interaction worker (with windowed counts) in a thread, on backends of its own."""
    log, cold, hot = wiring.event_log(settings), wiring.cold_interactions(settings), wiring.interaction_hot_tier(settings)
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    follower = RegistryFollower(wiring.config_store(settings))
    windows = window_writer(settings, store, cache, lambda: follower.current)
    worker = build_interaction_worker(settings, log, cold, hot, windows)
    return WorkerThread(worker, follower, cache, store, hot, cold, log)


class Reader:
    def __init__(self, settings: Settings):
        self.hot = wiring.interaction_hot_tier(settings, timeout_s=0.1)
        self.cold = wiring.cold_interactions(settings)
        self.reader = InteractionReader(self.hot, self.cold, settings)

    def history(self, user: str, limit: int = 1000, **query) -> History:
        return self.reader.history(HistoryQuery(user, limit=limit, **query))

    def ids(self, user: str) -> list[str]:
        return [i.event_id for i in self.history(user).interactions]

    def close(self) -> None:
        self.reader.close()


def producer(settings: Settings) -> EventProducer:
    return EventProducer.from_settings(settings, "test")
