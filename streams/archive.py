"""`vahini ingest archive`: every valid FeatureUpdate and interaction into the offline
archive (vahini.ports.archive), each with its event time.

The same discipline as the other workers: records are buffered, written as files that
are durable when `Archive.append` returns, and only then are their offsets committed.
A kill -9 loses nothing acknowledged; what was written but not committed is written
again after the restart, and the readers keep one copy. Invalid events are counted
and skipped: the online workers already dead-letter them, and a second dead letter
would be a duplicate."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from prometheus_client import Counter

from vahini.codecs.avro import FEATURE_UPDATE, INTERACTION, AvroCodec
from vahini.errors import InvalidEvent
from vahini.logs import get_logger
from vahini.ports.archive import Archive
from vahini.ports.event_log import LogConsumer, Record, TopicPartition
from vahini.ports.feature_store import FeatureRow
from vahini.ports.interaction_store import StoredInteraction
from vahini.registry.model import Registry
from vahini.settings import ArchiveSettings
from vahini.row_plan import feature_row
from vahini.streams.retry import retry
from vahini.validation import EventLimits, check_interaction_ids

log = get_logger(__name__)

ARCHIVED = Counter("vahini_archive_records_total", "Records written to the offline archive", ["kind"])
SKIPPED = Counter("vahini_archive_skipped_total", "Records the archive skipped: invalid, or of a kind it does not keep",
                  ["reason"])
FILES = Counter("vahini_archive_files_total", "Files written to the offline archive")


@dataclass
class ArchiveStats:
    records: int = 0
    rows: int = 0
    interactions: int = 0
    skipped: int = 0
    files: int = 0


class ArchiveWorker:
    def __init__(self, consumer: LogConsumer, archive: Archive, codec: AvroCodec, registry: Callable[[], Registry],
                 settings: ArchiveSettings, limits: EventLimits, backoff_max_s: float,
                 stop_offsets: Mapping[TopicPartition, int] | None = None):
        self._consumer, self._archive, self._codec, self._registry = consumer, archive, codec, registry
        self._settings, self._limits, self._backoff_max_s = settings, limits, backoff_max_s
        self._stop_offsets = dict(stop_offsets) if stop_offsets is not None else None
        self._rows: list[FeatureRow] = []
        self._interactions: list[StoredInteraction] = []
        self._offsets: dict[TopicPartition, int] = {}  # next offset per partition, once flushed
        self._first_buffered_at: float | None = None
        self.stats = ArchiveStats()

    def run(self, stop: threading.Event, on_batch: Callable[[int], None] | None = None) -> ArchiveStats:
        """Archive until `stop` is set or a replay reaches its end; what is buffered then
        is written and committed before returning."""
        while not stop.is_set() and not self.finished():
            records = self._within_bounds(self._poll(stop))
            for record in records:
                self._take(record)
            if records and self._first_buffered_at is None:
                self._first_buffered_at = time.monotonic()
            if self._due():
                self._flush(stop)
            if on_batch is not None and records:
                on_batch(len(records))
        self._flush(stop)
        return self.stats

    def finished(self) -> bool:
        if self._stop_offsets is None:
            return False
        return all((self._consumer.position(tp) or 0) >= end for tp, end in self._stop_offsets.items())

    def close(self) -> None:
        self._consumer.close()

    def _poll(self, stop: threading.Event) -> list[Record]:
        got: list[Record] = []
        retry("poll", lambda: got.extend(self._consumer.poll_batch(self._settings.batch_size, 0.2)), stop,
              self._backoff_max_s)
        return got

    def _within_bounds(self, records: list[Record]) -> list[Record]:
        if self._stop_offsets is None:
            return records
        return [r for r in records if r.offset < self._stop_offsets.get((r.topic, r.partition), 0)]

    def _take(self, record: Record) -> None:
        self.stats.records += 1
        self._offsets[(record.topic, record.partition)] = record.offset + 1
        try:
            name, event = self._codec.decode(record.value)
            if name == FEATURE_UPDATE:
                self._rows.append(feature_row(event, self._registry(), int(time.time() * 1000), self._limits))
            elif name == INTERACTION:
                check_interaction_ids(event, self._limits)
                self._interactions.append(StoredInteraction.of_event(event))
            else:
                self._skip("not_archived")
        except InvalidEvent as exc:
            self._skip(exc.reason)

    def _skip(self, reason: str) -> None:
        self.stats.skipped += 1
        SKIPPED.labels(reason).inc()

    def _due(self) -> bool:
        buffered = len(self._rows) + len(self._interactions)
        if buffered >= self._settings.flush_rows:
            return True
        waited = self._first_buffered_at is not None and \
            time.monotonic() - self._first_buffered_at >= self._settings.flush_interval_s
        return waited or (bool(self._offsets) and self.finished())

    def _flush(self, stop: threading.Event) -> None:
        """Write the buffer durably, then commit its offsets: never the other way round."""
        if not self._offsets:
            return
        rows, interactions = self._rows, self._interactions
        files: list[int] = []
        if (rows or interactions) and not retry("archive_write", lambda: files.append(self._archive.append(
                rows, interactions)), stop, self._backoff_max_s):
            return  # stopped while the archive was down: nothing committed, all of it comes again
        if not retry("commit", lambda: self._consumer.commit(self._offsets), stop, self._backoff_max_s):
            return
        self.stats.rows += len(rows)
        self.stats.interactions += len(interactions)
        self.stats.files += sum(files)
        ARCHIVED.labels("feature_row").inc(len(rows))
        ARCHIVED.labels("interaction").inc(len(interactions))
        FILES.inc(sum(files))
        self._rows, self._interactions, self._offsets, self._first_buffered_at = [], [], {}, None
