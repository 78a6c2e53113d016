"""The feature ingestion worker.

One loop per process: poll a batch -> decode/validate -> merge -> write durably
-> dead-letter the invalid -> invalidate the cache -> commit offsets. Offsets are
committed only after the rows and dead letters are durable, so a crash (even
kill -9) replays the batch instead of losing it, and the store's event-time
last-write-wins makes the replay harmless. Scale out by starting more processes
in the same consumer group.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

from vahini.codecs.avro import AvroCodec
from vahini.feature_cache import FeatureCache
from vahini.feature_rows import newest_per_key, unexpired
from vahini.errors import InvalidEvent, VahiniError
from vahini.logs import get_logger
from vahini.ports.event_log import LogConsumer, LogProducer, Record, TopicPartition
from vahini.ports.feature_store import FeatureRow, FeatureStore
from vahini.registry.model import Registry
from vahini.settings import IngestSettings
from vahini.streams import metrics
from vahini.streams.dead_letter import DeadLetterSink
from vahini.streams.pipeline import decode_batch
from vahini.streams.retry import retry
from vahini.validation import EventLimits

log = get_logger(__name__)
# A failed commit is most often a group coordinator moving to another broker: cheap to
# retry, and every second of backoff after the move is a second of stalled ingest.
_COMMIT_BACKOFF_MAX_S = 1.0


@dataclass
class IngestStats:
    events: int = 0
    rows_written: int = 0
    dead_lettered: int = 0
    # Re-drives of the dead-letter topic: events still invalid, by reason. They stay
    # where they are and are not dead-lettered a second time.
    still_bad: Counter = field(default_factory=Counter)
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


@dataclass
class _Prepared:
    """A decoded and merged batch, not yet written."""

    records: list[Record]
    invalid: list[tuple[Record, InvalidEvent]]
    rows: list[FeatureRow]
    now_ms: int

    def submit(self, writer: ThreadPoolExecutor, write: Callable, stop: threading.Event) -> "_InFlight":
        return _InFlight(self, writer.submit(write, self.rows, stop))


@dataclass
class _InFlight:
    prepared: _Prepared
    written: Future  # of bool: False when stopped before the write succeeded


class FeatureIngestWorker:
    def __init__(self, consumer: LogConsumer, dead_letters: LogProducer, store: FeatureStore, cache: FeatureCache,
                 registry: Callable[[], Registry], codec: AvroCodec, settings: IngestSettings, dead_letter_topic: str,
                 stop_offsets: Mapping[TopicPartition, int] | None = None):
        self._consumer = consumer
        self._dead = DeadLetterSink(dead_letters, dead_letter_topic)
        self._store = store
        self._cache = cache
        self._registry = registry
        self._codec = codec
        self._settings = settings
        self._limits = EventLimits.of(settings)
        # Replays stop at these offsets (exclusive); live ingestion has none.
        self._stop_offsets = dict(stop_offsets) if stop_offsets is not None else None
        self.stats = IngestStats()
        self._next_lag_report = 0.0
        self._newest_event_ms: dict[str, int] = {}  # per group, for its freshness gauge
        # Set when a batch could not be written: no later batch may commit, since a
        # commit covers every earlier offset of its partitions.
        self._halted = False
        self._stop = threading.Event()

    # -- loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event, on_batch: Callable[[int], None] | None = None) -> IngestStats:
        """Process batches until `stop` is set (finishing the batch in hand) or a replay reaches its end.

        Two batches overlap: batch N+1 is decoded while batch N is being written,
        so the worker's CPU and the store's work run side by side. Completion
        (dead letters, cache, commit) stays strictly in batch order.
        """
        linger_s = max(self._settings.batch_linger_ms / 1000, 0.05)
        self._stop = stop
        in_flight: _InFlight | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="store-write") as writer:
            try:
                while not stop.is_set() and not self._halted and not self.finished():
                    records = self._within_bounds(self._poll(linger_s))
                    if records:
                        prepared = self._prepare(records)
                        if in_flight is not None:
                            done, in_flight = in_flight, None  # completed once, even if completing raises
                            self._complete(done, on_batch)
                        in_flight = prepared.submit(writer, self._write_with_retry, stop)
                    elif in_flight is not None:
                        done, in_flight = in_flight, None
                        self._complete(done, on_batch)
                    self._report_lag()
            finally:
                if in_flight is not None:
                    self._complete(in_flight, on_batch)
        return self.stats

    def _poll(self, linger_s: float) -> list[Record]:
        """The next batch; an event log that is down or locked is retried like any store."""
        got: list[Record] = []

        def poll() -> None:
            got.extend(self._consumer.poll_batch(self._settings.batch_size, linger_s))
        self._retry("poll", poll)
        return got

    def finished(self) -> bool:
        if self._stop_offsets is None:
            return False
        return all((self._consumer.position(tp) or 0) >= end for tp, end in self._stop_offsets.items())

    def remaining(self) -> int:
        """Records left before a replay's end offsets (0 for live ingestion)."""
        if self._stop_offsets is None:
            return 0
        return sum(max(0, end - (self._consumer.position(tp) or 0)) for tp, end in self._stop_offsets.items())

    def _within_bounds(self, records: list[Record]) -> list[Record]:
        if self._stop_offsets is None:
            return records
        return [r for r in records if r.offset < self._stop_offsets.get((r.topic, r.partition), 0)]

    # -- one batch ------------------------------------------------------------------
    def process(self, records: list[Record], stop: threading.Event | None = None) -> None:
        """Decode, write, dead-letter, invalidate and commit one batch, synchronously."""
        self._stop = stop or threading.Event()
        prepared = self._prepare(records)
        written = self._write_with_retry(prepared.rows, self._stop)
        self._finish(prepared, written)

    def _prepare(self, records: list[Record]) -> "_Prepared":
        now_ms = int(time.time() * 1000)
        batch = decode_batch(records, self._codec, self._registry(), now_ms, self._limits)
        return _Prepared(records, batch.invalid, unexpired(newest_per_key(batch.rows), now_ms), now_ms)

    def _complete(self, in_flight: "_InFlight", on_batch: Callable[[int], None] | None) -> None:
        self._finish(in_flight.prepared, in_flight.written.result())
        if on_batch:
            on_batch(len(in_flight.prepared.records))

    def _finish(self, prepared: "_Prepared", written: bool) -> None:
        """Dead letters, then fences, then the commit: each durable before the next,
        each retried while its service is down. Stopping mid-retry commits nothing."""
        done = written and not self._halted
        done = done and self._retry("dead_letter", lambda: self._dead_letter(prepared.invalid))
        done = done and self._retry("cache_fence", lambda: self._fence(prepared.rows))
        done = done and self._retry("commit", lambda: self._consumer.commit(self._next_offsets(prepared.records)),
                                    backoff_max_s=_COMMIT_BACKOFF_MAX_S)
        if not done:
            self._halted = True  # nothing more is committed; a restart replays from the last commit
            return
        self._account(prepared.records, prepared.rows, prepared.invalid, prepared.now_ms)

    def _write_with_retry(self, rows, stop: threading.Event) -> bool:
        def write() -> None:
            with metrics.WRITE_SECONDS.time():
                self._store.write(rows)
        return self._retry("store_write", write, stop)

    def _retry(self, what: str, action: Callable[[], None], stop: threading.Event | None = None,
               backoff_max_s: float | None = None) -> bool:
        limit = self._settings.retry_backoff_max_s
        return retry(what, action, stop or self._stop, limit if backoff_max_s is None else min(backoff_max_s, limit))

    def _dead_letter(self, invalid: list[tuple[Record, InvalidEvent]]) -> None:
        """Send and flush every dead letter of the batch; a failed flush resends them all
        (a dead letter may then appear twice, never zero times). Events re-driven from
        the dead-letter topic that are still invalid are already held there: not resent."""
        invalid = [(r, e) for r, e in invalid if r.topic != self._dead.topic]
        if not invalid:
            return
        for record, error in invalid:
            self._dead.send(record, error)
        self._dead.flush()
        for _, error in invalid:
            metrics.DEAD_LETTERS.labels(error.reason).inc()

    def _fence(self, rows: list[FeatureRow]) -> None:
        if rows and not self._cache.fence(rows):
            metrics.CACHE_INVALIDATION_ERRORS.inc()

    @staticmethod
    def _next_offsets(records: list[Record]) -> dict[TopicPartition, int]:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            if r.offset + 1 > offsets.get(tp, -1):
                offsets[tp] = r.offset + 1
        return offsets

    def _account(self, records, rows, invalid, now_ms: int) -> None:
        self.stats.events += len(records)
        self.stats.rows_written += len(rows)
        held = [e.reason for r, e in invalid if r.topic == self._dead.topic]
        self.stats.still_bad.update(held)
        self.stats.dead_lettered += len(invalid) - len(held)
        self.stats.batches += 1
        metrics.EVENTS.labels(records[0].topic).inc(len(records))
        metrics.ROWS_WRITTEN.inc(len(rows))
        metrics.BATCH_SIZE.observe(len(records))
        newest = self._newest_event_ms
        for row in rows[:: max(1, len(rows) // 64)]:  # a sample keeps this off the hot path
            metrics.FRESHNESS_SECONDS.observe(max(0.0, (now_ms - row.event_time_ms) / 1000))
            if row.event_time_ms > newest.get(row.group, 0):
                newest[row.group] = row.event_time_ms
                metrics.NEWEST_EVENT.labels(row.group).set(row.event_time_ms / 1000)

    def _report_lag(self) -> None:
        if time.monotonic() < self._next_lag_report:
            return
        self._next_lag_report = time.monotonic() + 5.0
        try:
            lags = self._consumer.lag()
        except VahiniError as exc:  # lag is a report: it never stops ingestion
            log.warning("lag_report_failed", error=str(exc))
            return
        for (topic, partition), lag in lags.items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(lag)

    def close(self) -> None:
        self._consumer.close()


def stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT set the returned event: the worker drains and commits, then exits."""
    stop = threading.Event()

    def handle(signum, _frame):
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
