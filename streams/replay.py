"""Replays and backfills: re-ingest a range of a topic through the same worker
logic, under a consumer group of its own. Safe beside live ingestion: the store
keeps the newest value by event time whichever writer comes last."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone

from tqdm import tqdm

from vahini.ports.event_log import EventLog, TopicPartition
from vahini.runtime import tune_gc_for_throughput
from vahini.settings import Settings
from vahini import wiring
from vahini.registry.publish import RegistryFollower
from vahini.streams.app import Backends, build_archive_worker, build_worker
from vahini.streams.archive import ArchiveStats
from vahini.streams.worker import IngestStats


class PositionError(ValueError):
    pass


def parse_position(text: str) -> tuple[str, int]:
    """'earliest' | 'latest' | an offset (123) | a time: ISO-8601 (2026-11-26T10:00:00Z) or @<epoch ms>."""
    text = text.strip()
    if text in ("earliest", "latest"):
        return text, 0
    if re.fullmatch(r"\d+", text):
        return "offset", int(text)
    if re.fullmatch(r"@\d+", text):
        return "time", int(text[1:])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PositionError(f"{text!r} is not earliest, latest, an offset, @<epoch ms> or an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return "time", int(moment.timestamp() * 1000)


def resolve(log: EventLog, topic: str, position: tuple[str, int]) -> dict[TopicPartition, int]:
    kind, value = position
    ends = log.end_offsets(topic)
    if kind == "earliest":
        per_partition = {p: 0 for p in ends}
    elif kind == "latest":
        per_partition = ends
    elif kind == "offset":
        per_partition = {p: min(value, end) for p, end in ends.items()}
    else:
        per_partition = log.offsets_for_time(topic, value)
    return {(topic, p): o for p, o in per_partition.items()}


def offset_range(log: EventLog, topic: str, start: str, end: str | None
                 ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int], int]:
    """The start and stop offsets of a replay of `topic` from `start` to `end` (default: the
    end now), leaving out partitions with nothing in range (a replay would wait on them
    forever), and how many records that is."""
    first, last = parse_position(start), parse_position(end or "latest")
    if not log.exists(topic):
        raise PositionError(f"topic {topic!r} does not exist")
    start_offsets, stop_offsets = resolve(log, topic, first), resolve(log, topic, last)
    start_offsets = {tp: o for tp, o in start_offsets.items() if o < stop_offsets[tp]}
    stop_offsets = {tp: stop_offsets[tp] for tp in start_offsets}
    return start_offsets, stop_offsets, sum(stop_offsets[tp] - o for tp, o in start_offsets.items())


def replay(settings: Settings, topic: str, start: str, end: str | None, group: str,
           progress: bool = True, stop: threading.Event | None = None) -> IngestStats:
    backends = Backends.open(settings)
    log = backends.event_log
    try:
        start_offsets, stop_offsets, total = offset_range(log, topic, start, end)
    except PositionError:
        backends.close()
        raise
    worker = build_worker(settings, backends, group=group, topics=[topic],
                          start_offsets=start_offsets, stop_offsets=stop_offsets)
    stop = stop or threading.Event()
    tune_gc_for_throughput()
    bar = tqdm(total=total, unit="ev", unit_scale=True, desc=f"replay {topic}", disable=not progress, smoothing=0.1)

    def advance(n: int) -> None:
        bar.update(n)
        bar.set_postfix(remaining=worker.remaining(), dead=worker.stats.dead_lettered, refresh=False)
    try:
        return worker.run(stop, on_batch=advance)
    finally:
        bar.close()
        worker.close()
        backends.close()


def replay_into_archive(settings: Settings, topic: str, start: str, end: str | None, group: str,
                        progress: bool = True, stop: threading.Event | None = None) -> ArchiveStats:
    """A backfill of the offline archive: `topic` (FeatureUpdates or interactions) from
    `start` to `end`, through the archive worker, under its own consumer group."""
    log, archive = wiring.event_log(settings), wiring.archive(settings)
    registry = RegistryFollower(wiring.config_store(settings))
    try:
        start_offsets, stop_offsets, total = offset_range(log, topic, start, end)
        worker = build_archive_worker(settings, log, archive, registry, group=group, topics=[topic],
                                      start_offsets=start_offsets, stop_offsets=stop_offsets)
        bar = tqdm(total=total, unit="ev", unit_scale=True, desc=f"archive {topic}", disable=not progress,
                   smoothing=0.1)
        try:
            return worker.run(stop or threading.Event(), on_batch=bar.update)
        finally:
            bar.close()
            worker.close()
    finally:
        registry.close()
        log.close()
