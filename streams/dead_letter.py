"""Dead-letter topic: the original bytes, untouched, with why and where in headers."""

from __future__ import annotations

import heapq
import time
from collections import Counter

from vahini.errors import InvalidEvent
from vahini.ports.event_log import EventLog, LogProducer, Record

REASON = "vahini.reason"
DETAIL = "vahini.detail"
SOURCE_TOPIC = "vahini.source.topic"
SOURCE_PARTITION = "vahini.source.partition"
SOURCE_OFFSET = "vahini.source.offset"
FAILED_AT_MS = "vahini.failed_at_ms"
ENTITY_KEY = "vahini.entity_key"


class DeadLetterSink:
    def __init__(self, producer: LogProducer, topic: str):
        self._producer = producer
        self.topic = topic

    def send(self, record: Record, error: InvalidEvent) -> None:
        headers = [
            (REASON, error.reason.encode()),
            (DETAIL, error.detail.encode()[:4096]),
            (SOURCE_TOPIC, record.topic.encode()),
            (SOURCE_PARTITION, str(record.partition).encode()),
            (SOURCE_OFFSET, str(record.offset).encode()),
            (FAILED_AT_MS, str(int(time.time() * 1000)).encode()),
        ]
        if error.entity_key:
            headers.append((ENTITY_KEY, error.entity_key.encode()[:1024]))
        self._producer.send(self.topic, record.value, key=record.key, headers=headers)

    def flush(self) -> None:
        """Dead letters must be durable before the offsets that skip them are committed."""
        self._producer.flush()


def reason_of(record: Record) -> dict[str, str]:
    """The headers of a dead-lettered record, decoded (for tools and tests)."""
    return {k: v.decode() for k, v in record.headers}


def summarize(log: EventLog, topic: str, latest: int) -> dict:
    """Counts by reason and the `latest` dead letters, read without joining any group."""
    by_reason, newest_first = scan(log, topic, latest)
    return {"total": sum(by_reason.values()), "by_reason": dict(by_reason.most_common()),
            "latest": [_describe(r) for r in reversed(newest_first)]}


def scan(log: EventLog, topic: str, latest: int) -> tuple[Counter[str], list[Record]]:
    """One read of the whole topic, without joining any group: the count of every reason,
    and the `latest` newest dead letters, newest first."""
    ends = log.end_offsets(topic)
    consumer = log.consumer(f"{topic}-inspect", [topic], {(topic, p): 0 for p in ends})
    by_reason: Counter[str] = Counter()
    tail: list[tuple[int, int, int, Record]] = []  # a min-heap of the `latest` newest seen so far
    try:
        remaining = sum(ends.values())
        while remaining > 0:
            batch = consumer.poll_batch(min(5000, remaining), 1.0)  # returns once it has them all
            if not batch:
                break
            remaining -= len(batch)
            for r in batch:
                headers = reason_of(r)
                by_reason[headers.get(REASON, "?")] += 1
                if latest:
                    keep_newest(tail, r, headers, latest)
    finally:
        consumer.close()
    return by_reason, newest_first(tail)


def keep_newest(heap: list, record: Record, headers: dict[str, str], limit: int) -> None:
    """Add `record` to a min-heap of at most `limit` dead letters, by failure time."""
    entry = (int(headers.get(FAILED_AT_MS, "0")), record.partition, record.offset, record)
    (heapq.heappush if len(heap) < limit else heapq.heappushpop)(heap, entry)


def newest_first(heap: list) -> list[Record]:
    return [entry[-1] for entry in sorted(heap, key=lambda e: e[:3], reverse=True)]


def _describe(record: Record) -> dict:
    h = reason_of(record)
    return {"reason": h.get(REASON), "detail": h.get(DETAIL), "failed_at_ms": int(h.get(FAILED_AT_MS, "0")),
            "entity_key": h.get(ENTITY_KEY),
            "source": f"{h.get(SOURCE_TOPIC)}[{h.get(SOURCE_PARTITION)}]@{h.get(SOURCE_OFFSET)}",
            "bytes": len(record.value)}
