"""Running the interaction worker in tests, and reading what it stored."""

from __future__ import annotations

import threading

from vahini import wiring
from vahini.ports.interaction_store import HistoryQuery
from vahini.producer import EventProducer
from vahini.settings import InteractionSettings, Settings
from serving.interactions import History, InteractionReader
from streams.app import build_interaction_worker
from streams.windows import WindowWriter
from vahini.registry.publish import RegistryFollower
from tests.conftest_backends import stack_settings, with_sample_registry


def interaction_settings(kind: str, request, tmp_path, unique: str, **overrides) -> Settings:
    """The stack of `kind`, with one topic for both event kinds and a short inactivity timeout."""
    base = stack_settings(kind, request, tmp_path, unique)
    topics = base.topics.model_copy(update={"sessions": base.topics.interactions})
    hot = f"sqlite:///{tmp_path}/ihot.db" if kind == "embedded" else request.getfixturevalue("redis_url")
    interactions = InteractionSettings(**{"hot_tier": hot, "namespace": f"ih-{unique}", "group": f"ia-{unique}",
                                          "inactivity_timeout_s": 2.0, "checkpoint_interval_s": 3600.0,
                                          "batch_size": 200, **overrides})
    return with_sample_registry(base.model_copy(update={"topics": topics, "interactions": interactions}))


class RunningInteractionWorker:
    def __init__(self, settings: Settings):
        self.log = wiring.event_log(settings)
        self.cold = wiring.cold_interactions(settings)
        self.hot = wiring.interaction_hot_tier(settings)
        self.store = wiring.feature_store(settings)
        self.cache = wiring.feature_cache(settings, self.store)
        self.follower = RegistryFollower(wiring.config_store(settings))
        self.worker = build_interaction_worker(settings, self.log, self.cold, self.hot,
                                               WindowWriter(self.store, self.cache, lambda: self.follower.current))
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as exc:  # noqa: BLE001 - the test asserts there was none
            self.failure = exc
            raise

    @property
    def stats(self):
        return self.worker.stats

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        self.worker.close()
        for closable in (self.follower, self.cache, self.store, self.hot, self.cold, self.log):
            closable.close()
        assert self.failure is None, f"worker died: {self.failure!r}"


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
