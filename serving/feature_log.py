"""Feature logging: a sampled share of a model's responses, as served, published to
the event log (`topics.feature_log`, FeatureLog Avro) for training.

A request only samples and queues: `offer` is a random draw and a put_nowait. One
thread encodes the queued records and hands them to the producer; when the queue is
full the record is dropped and counted, so logging never blocks or fails a request.
A record that the producer cannot deliver (a log outage) is counted as dropped too:
the feature log is a sample, not a ledger."""

from __future__ import annotations

import queue
import random
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from prometheus_client import Counter

from vahini.codecs.avro import FEATURE_LOG, AvroCodec, SchemaCatalog
from vahini.errors import VahiniError
from vahini.logs import get_logger
from vahini.ports.event_log import EventLog, LogProducer
from vahini.serving.model_proxy import FeatureMatrix

log = get_logger(__name__)

LOGGED = Counter("vahini_feature_log_records_total", "Responses published to the feature log", ["model"])
DROPPED = Counter("vahini_feature_log_dropped_total",
                  "Sampled responses not logged: the queue was full, or the event log refused them", ["model", "reason"])


@dataclass(frozen=True)
class Served:
    """One response to log, as the servicer saw it."""

    request_id: str
    context: Mapping[str, Sequence[str]]
    matrix: FeatureMatrix


def new_request_id() -> str:
    return uuid.uuid4().hex


def record_of(served: Served) -> dict:
    """The FeatureLog record of a response (schemas/avro/vahini.events.FeatureLog.avsc)."""
    m = served.matrix
    return {"request_id": served.request_id, "model": m.model, "version": m.version, "served_at_ms": m.served_at_ms,
            "context": {name: list(ids) for name, ids in served.context.items()}, "rows_field": m.rows_field,
            "row_ids": list(m.row_ids), "columns": list(m.columns), "dtypes": list(m.dtypes),
            "matrix": m.values.astype("<f4", copy=False).tobytes(),
            "scores": [{"node": node, "endpoint": s.endpoint, "values": s.values.astype("<f4").tobytes()}
                       for node, s in m.scores.items()],
            "degraded": m.degraded}


class FeatureLogger:
    """`draw`: the sampling's random numbers in [0, 1) (a test may fix them). The topic is
    created and the producer opened by the publishing thread, on the first record: a
    server starts whether or not the event log is up."""

    def __init__(self, event_log: EventLog, topic: str, partitions: int, capacity: int,
                 draw: Callable[[], float] = random.random, flush_every: int = 256):
        self._event_log, self._topic, self._partitions = event_log, topic, partitions
        self._draw, self._flush_every = draw, flush_every
        self._producer: LogProducer | None = None
        self._codec = AvroCodec(SchemaCatalog.default())
        self._queue: queue.Queue[Served | None] = queue.Queue(capacity)
        self._closing = threading.Event()
        self._given_up = threading.Event()  # close() stopped waiting: what is left is dropped
        self._thread = threading.Thread(target=self._publish, name="feature-log", daemon=True)
        self._thread.start()

    def offer(self, served: Served) -> bool:
        """Queue the response if its model's sample draws it; never blocks. True if queued."""
        sample = served.matrix.log_sample
        if sample <= 0 or (sample < 1 and self._draw() >= sample):
            return False
        try:
            self._queue.put_nowait(served)
        except queue.Full:
            DROPPED.labels(served.matrix.model, "queue_full").inc()
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Publish what is queued and flush, for up to `timeout_s`; then stop. With the event
        log hung, what is left is given up (a server stops on time) and logged."""
        self._closing.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # the thread sees `_closing` once the queue is drained
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._given_up.set()
            log.warning("feature_log_not_flushed", queued=self._queue.qsize(), waited_s=timeout_s)

    def _publish(self) -> None:
        try:
            self._publish_until_closed()
        finally:  # the thread's own producer: closed by it, even when close() stopped waiting
            if self._producer is not None:
                self._producer.close()

    def _publish_until_closed(self) -> None:
        unflushed: list[str] = []  # the model of each record sent and not yet acknowledged
        while True:
            try:
                served = self._queue.get(timeout=0.2)
            except queue.Empty:  # a quiet moment: make what was sent durable
                self._flush(unflushed)
                if self._closing.is_set():
                    return
                continue
            if served is None:
                self._flush(unflushed)
                return
            self._send(served, unflushed)
            if len(unflushed) >= self._flush_every:
                self._flush(unflushed)

    def _send(self, served: Served, unflushed: list[str]) -> None:
        model = served.matrix.model
        if self._given_up.is_set():  # the server stopped waiting for the log: stop trying
            DROPPED.labels(model, "shutdown").inc()
            return
        try:
            producer = self._producer or self._open()
            value = self._codec.encode(FEATURE_LOG, record_of(served))
            producer.send(self._topic, value, key=served.request_id.encode(), timestamp_ms=served.matrix.served_at_ms)
        except (VahiniError, ValueError, TypeError) as exc:
            DROPPED.labels(model, "not_sent").inc()
            log.warning("feature_log_not_sent", model=model, error=str(exc))
            return
        unflushed.append(model)

    def _open(self) -> LogProducer:
        self._event_log.create_topic(self._topic, self._partitions)
        self._producer = self._event_log.producer()
        return self._producer

    def _flush(self, unflushed: list[str]) -> None:
        if not unflushed or self._producer is None:
            return
        try:
            self._producer.flush()
        except VahiniError as exc:
            for model in unflushed:
                DROPPED.labels(model, "not_acknowledged").inc()
            log.warning("feature_log_not_acknowledged", records=len(unflushed), error=str(exc))
        else:
            for model in unflushed:
                LOGGED.labels(model).inc()
        unflushed.clear()
