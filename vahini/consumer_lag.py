"""Consumer lag of the worker groups, read from the event log itself: each partition's
end offset minus the offset its group committed. `vahini lag` prints it and the
console's Live page shows it; both call `worker_lag`, so they agree by construction."""

from __future__ import annotations

from dataclasses import dataclass

from vahini.ports.event_log import EventLog
from vahini.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    worker: str  # features, interactions or archive
    group: str
    topic: str
    partition: int
    end: int
    committed: int | None  # None: the group has committed nothing on this partition

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.end - self.committed)


def worker_groups(settings: Settings) -> list[tuple[str, str, list[str]]]:
    """(worker, consumer group, its topics) of each kind of worker, as the workers take them from settings."""
    t = settings.topics
    return [("features", settings.ingest.group, [t.feature_updates]),
            ("interactions", settings.interactions.group, list(dict.fromkeys([t.interactions, t.sessions]))),
            ("archive", settings.archive.group, list(dict.fromkeys([t.feature_updates, t.interactions])))]


def worker_lag(log: EventLog, settings: Settings, include_idle: bool = False) -> list[PartitionLag]:
    """Every partition of every worker group's topics. Groups that have never committed
    on a topic are left out unless `include_idle` (that kind of worker is not deployed)."""
    found: list[PartitionLag] = []
    for worker, group, topics in worker_groups(settings):
        for topic in topics:
            if not log.exists(topic):
                continue
            committed = log.committed(group, topic)
            if not committed and not include_idle:
                continue
            found += [PartitionLag(worker, group, topic, p, end, committed.get(p))
                      for p, end in sorted(log.end_offsets(topic).items())]
    return found


def total(lags: list[PartitionLag]) -> int:
    return sum(p.lag or 0 for p in lags)
