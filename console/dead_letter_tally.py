"""The dead-letter topic, tallied as it grows: a page view reads only what was
dead-lettered since the last one, not the whole topic again.

It keeps the count of every reason and, per reason and overall, the newest `keep`
dead letters (min-heaps by failure time), and one consumer positioned where the
last read stopped. A page view asks the log for the partitions' ends and polls only
when they moved, so a quiet topic of millions of dead letters costs one offsets call.
"""

from __future__ import annotations

import time
from collections import Counter

from vahini.ports.event_log import EventLog, LogConsumer, Record
from vahini.streams.dead_letter import REASON, keep_newest, newest_first, reason_of

CATCH_UP_S = 5.0  # a read that has not reached the ends by then shows what it has; the next one goes on


class DeadLetterTally:
    def __init__(self, log: EventLog, topic: str, keep: int):
        self._log, self._topic, self._keep = log, topic, keep
        self._consumer: LogConsumer | None = None
        self._read_to: dict[int, int] = {}  # partition -> next offset to read
        self.by_reason: Counter[str] = Counter()
        self._newest: dict[str, list[tuple[int, int, int, Record]]] = {"": []}  # reason ("" = any) -> heap

    def refresh(self) -> None:
        """Read what was dead-lettered since the last call (the caller holds the log's lock)."""
        if not self._log.exists(self._topic):
            return
        ends = self._log.end_offsets(self._topic)
        if self._consumer is None or set(ends) != set(self._read_to):
            self._reopen(ends)
        behind = sum(max(0, end - self._read_to.get(p, 0)) for p, end in ends.items())
        give_up = time.monotonic() + CATCH_UP_S
        while behind > 0 and time.monotonic() < give_up:
            assert self._consumer is not None
            batch = self._consumer.poll_batch(min(5000, behind), 0.5)
            for record in batch:
                self._add(record)
                behind -= 1
            if not batch and all(self._read_to.get(p, 0) >= end for p, end in ends.items()):
                break  # offsets not backed by records (retention, markers): nothing more to read

    def newest(self, reason: str = "") -> list[Record]:
        """The newest dead letters, of `reason` or of any, newest first."""
        return newest_first(self._newest.get(reason, []))

    def _reopen(self, ends: dict[int, int]) -> None:
        if self._consumer is not None:
            self._consumer.close()
        for p in ends:
            self._read_to.setdefault(p, 0)
        self._consumer = self._log.consumer(f"{self._topic}-console", [self._topic],
                                            {(self._topic, p): self._read_to[p] for p in ends})

    def _add(self, record: Record) -> None:
        self._read_to[record.partition] = max(self._read_to.get(record.partition, 0), record.offset + 1)
        headers = reason_of(record)
        reason = headers.get(REASON, "?")
        self.by_reason[reason] += 1
        for key in ("", reason):
            keep_newest(self._newest.setdefault(key, []), record, headers, self._keep)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
