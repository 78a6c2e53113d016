"""Dead-letter topic: the original bytes, untouched, with why and where in headers."""

from __future__ import annotations

import time

from vahini.errors import InvalidEvent
from vahini.ports.event_log import LogProducer, Record

REASON = "vahini.reason"
DETAIL = "vahini.detail"
SOURCE_TOPIC = "vahini.source.topic"
SOURCE_PARTITION = "vahini.source.partition"
SOURCE_OFFSET = "vahini.source.offset"
FAILED_AT_MS = "vahini.failed_at_ms"


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
        self._producer.send(self.topic, record.value, key=record.key, headers=headers)

    def flush(self) -> None:
        """Dead letters must be durable before the offsets that skip them are committed."""
        self._producer.flush()


def reason_of(record: Record) -> dict[str, str]:
    """The headers of a dead-lettered record, decoded (for tools and tests)."""
    return {k: v.decode() for k, v in record.headers}
