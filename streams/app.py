"""Assembling ingestion workers from settings (the CLI and tests use these)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

from prometheus_client import start_http_server

from vahini import wiring
from vahini.adapters import compiled_cql
from vahini.codecs import interaction_reader, loops
from vahini.codecs.avro import AvroCodec, SchemaCatalog
from vahini.errors import VahiniError
from vahini.logs import get_logger
from vahini.runtime import tune_gc_for_throughput
from vahini.ports.event_log import EventLog, TopicPartition
from vahini.indexed_store import IndexedFeatureStore
from vahini.ports.feature_store import FeatureStore
from vahini.feature_cache import FeatureCache
from vahini.registry.publish import RegistryFollower
from vahini.settings import Settings
from vahini.validation import EventLimits
from vahini.streams import window_loops
from vahini.streams.archive import ArchiveStats, ArchiveWorker
from vahini.streams.interactions import InteractionStats, InteractionWorker
from vahini.streams.windows import WindowWriter, window_writer
from vahini.streams.worker import FeatureIngestWorker, IngestStats, stop_on_signals

log = get_logger(__name__)


@dataclass
class Backends:
    """Everything a worker talks to, opened once per process."""

    event_log: EventLog
    store: FeatureStore
    cache: FeatureCache
    registry: RegistryFollower

    @classmethod
    def open(cls, settings: Settings) -> "Backends":
        follower = RegistryFollower(wiring.config_store(settings))
        store = IndexedFeatureStore(wiring.feature_store(settings), lambda: wiring.vector_index(settings),
                                    lambda: follower.current)
        return cls(wiring.event_log(settings), store, wiring.feature_cache(settings, store), follower)

    def close(self) -> None:
        self.registry.close()
        for closable in (self.cache, self.store, self.event_log):
            closable.close()


def build_worker(settings: Settings, backends: Backends, group: str | None = None, topics: list[str] | None = None,
                 start_offsets: Mapping[TopicPartition, int] | None = None,
                 stop_offsets: Mapping[TopicPartition, int] | None = None) -> FeatureIngestWorker:
    topics = topics or [settings.topics.feature_updates]
    log_ = backends.event_log
    log_.create_topic(settings.topics.dead_letter, settings.topics.partitions)
    consumer = log_.consumer(group or settings.ingest.group, topics, start_offsets)
    wiring.use_fast_paths(settings)
    return FeatureIngestWorker(consumer, log_.producer(), backends.store, backends.cache,
                               lambda: backends.registry.current, AvroCodec(SchemaCatalog.default()),
                               settings.ingest, settings.topics.dead_letter, stop_offsets)


def warn_if_not_compiled() -> list[str]:
    """Log `compiled_modules_missing` when the install built none of the write side's
    compiled modules (no C compiler): the workers are correct without them, at several
    times the CPU per event. Returns the missing modules."""
    missing = [name for name, built in (("vahini.codecs._loops", loops.built),
                                        ("vahini.codecs._interaction_reader", interaction_reader.compiled),
                                        ("vahini.adapters._cql_rows", compiled_cql.built),
                                        ("vahini.streams._window_loops", window_loops.compiled)) if built is None]
    if missing:
        log.warning("compiled_modules_missing", modules=missing, detail="not built (no C compiler when Vahini was "
                    "installed): the same work runs in Python, at several times the CPU per event")
    return missing


def run_ingest(settings: Settings, topics: list[str] | None = None, stop_at_end: bool = False) -> IngestStats:
    """`vahini ingest features`: run one worker until SIGTERM/SIGINT, then drain and commit.
    With `stop_at_end`, also stop once the group has committed the log end seen at start."""
    stop = stop_on_signals()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    backends = Backends.open(settings)
    topics = topics or [settings.topics.feature_updates]
    for topic in topics:
        backends.event_log.create_topic(topic, settings.topics.partitions)
    if stop_at_end:
        _stop_when_committed(backends.event_log, settings.ingest.group, topics, stop)
    worker = build_worker(settings, backends, topics=topics)
    tune_gc_for_throughput()
    warn_if_not_compiled()
    log.info("ingest_started", topics=topics or [settings.topics.feature_updates], group=settings.ingest.group,
             batch_size=settings.ingest.batch_size, metrics_port=settings.metrics_port)
    try:
        stats = worker.run(stop)
    finally:
        worker.close()
        backends.close()
    log.info("ingest_stopped", events=stats.events, rows_written=stats.rows_written,
             dead_lettered=stats.dead_lettered, seconds=round(stats.seconds, 1))
    return stats


def _stop_when_committed(event_log: EventLog, group: str, topics: list[str], stop: threading.Event) -> None:
    """Set `stop` once `group` has committed, on every partition, the end offsets of now.
    Group-wide, so it also ends when other workers of the group did part of the work."""
    ends = {t: event_log.end_offsets(t) for t in topics}

    def caught_up() -> bool:
        return all(event_log.committed(group, t).get(p, 0) >= end for t in topics for p, end in ends[t].items())

    def watch() -> None:
        while not stop.wait(0.5):
            try:
                if caught_up():
                    stop.set()
            except VahiniError as exc:  # a log that is down: the worker retries; so does this
                log.warning("stop_at_end_check_failed", error=str(exc))
    threading.Thread(target=watch, name="stop-at-end", daemon=True).start()


def interaction_topics(settings: Settings) -> list[str]:
    return list(dict.fromkeys([settings.topics.interactions, settings.topics.sessions]))


def build_interaction_worker(settings: Settings, event_log: EventLog, cold, hot,
                             windows: WindowWriter | None = None) -> InteractionWorker:
    topics = interaction_topics(settings)
    for topic in [*topics, settings.topics.dead_letter]:
        event_log.create_topic(topic, settings.topics.partitions)
    wiring.use_fast_paths(settings)
    return InteractionWorker(
        lambda: event_log.consumer(settings.interactions.group, topics, co_partitioned=True), event_log.producer(),
        cold, hot, AvroCodec(SchemaCatalog.default()), settings.interactions, settings.topics.dead_letter,
        EventLimits.of(settings.ingest), settings.ingest.retry_backoff_max_s, windows=windows)


def run_interaction_ingest(settings: Settings, stop_at_end: bool = False) -> InteractionStats:
    """`vahini ingest interactions`: run one interaction worker until SIGTERM/SIGINT. With
    `stop_at_end`, also stop once the group has committed the log end seen at start."""
    stop = stop_on_signals()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    event_log = wiring.event_log(settings)
    if stop_at_end:
        topics = interaction_topics(settings)
        for topic in topics:
            event_log.create_topic(topic, settings.topics.partitions)
        _stop_when_committed(event_log, settings.interactions.group, topics, stop)
    cold, hot = wiring.cold_interactions(settings), wiring.interaction_hot_tier(settings)
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    follower = RegistryFollower(wiring.config_store(settings))
    windows = window_writer(settings, store, cache, lambda: follower.current)
    worker = build_interaction_worker(settings, event_log, cold, hot, windows)
    tune_gc_for_throughput()
    warn_if_not_compiled()
    log.info("interaction_ingest_started", topics=interaction_topics(settings), group=settings.interactions.group,
             inactivity_timeout_s=settings.interactions.inactivity_timeout_s)
    try:
        stats = worker.run(stop)
    finally:
        worker.close()
        for closable in (follower, cache, store, hot, cold, event_log):
            closable.close()
    log.info("interaction_ingest_stopped", events=stats.events, to_hot=stats.to_hot, to_cold=stats.to_cold,
             cold_writes=stats.cold_writes, dead_lettered=stats.dead_lettered)
    return stats


def archive_topics(settings: Settings) -> list[str]:
    return list(dict.fromkeys([settings.topics.feature_updates, settings.topics.interactions]))


def build_archive_worker(settings: Settings, event_log: EventLog, archive, registry: RegistryFollower,
                         group: str | None = None, topics: list[str] | None = None,
                         start_offsets: Mapping[TopicPartition, int] | None = None,
                         stop_offsets: Mapping[TopicPartition, int] | None = None) -> ArchiveWorker:
    topics = topics or archive_topics(settings)
    consumer = event_log.consumer(group or settings.archive.group, topics, start_offsets)
    return ArchiveWorker(consumer, archive, AvroCodec(SchemaCatalog.default()), lambda: registry.current,
                         settings.archive, EventLimits.of(settings.ingest), settings.ingest.retry_backoff_max_s,
                         stop_offsets)


def run_archive_ingest(settings: Settings, stop_at_end: bool = False) -> ArchiveStats:
    """`vahini ingest archive`: archive FeatureUpdates and interactions until SIGTERM/SIGINT.
    With `stop_at_end`, also stop once the group has committed the log end seen at start."""
    stop = stop_on_signals()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    event_log, archive = wiring.event_log(settings), wiring.archive(settings)
    registry = RegistryFollower(wiring.config_store(settings))
    topics = archive_topics(settings)
    for topic in topics:
        event_log.create_topic(topic, settings.topics.partitions)
    if stop_at_end:
        _stop_when_committed(event_log, settings.archive.group, topics, stop)
    worker = build_archive_worker(settings, event_log, archive, registry)
    log.info("archive_started", topics=topics, group=settings.archive.group, archive=settings.archive.url,
             flush_rows=settings.archive.flush_rows, flush_interval_s=settings.archive.flush_interval_s)
    try:
        stats = worker.run(stop)
    finally:
        worker.close()
        registry.close()
        event_log.close()
    log.info("archive_stopped", records=stats.records, rows=stats.rows, interactions=stats.interactions,
             skipped=stats.skipped, files=stats.files)
    return stats
