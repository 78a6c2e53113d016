"""What the console reads, through the same ports and functions as the CLI: the
published registry (followed live), lag from the event log itself, the dead-letter
topic, the workers' and servers' /metrics, and the gRPC server for `Try it`."""

from __future__ import annotations

import threading
from collections import Counter
import time
from dataclasses import dataclass, field

from vahini import wiring
from vahini.codecs.avro import AvroCodec, SchemaCatalog
from vahini.consumer_lag import PartitionLag, worker_lag
from vahini.registry import revisions
from vahini.registry.model import Registry
from vahini.registry.publish import RegistryFollower
from vahini.settings import Settings
from vahini.streams.dead_letter import DETAIL, FAILED_AT_MS, REASON, reason_of

from vahini.console.dead_letter_tally import DeadLetterTally
from vahini.console.metrics import LiveMetrics


@dataclass
class DeadLetter:
    partition: int
    offset: int
    reason: str
    detail: str
    failed_at_ms: int
    source: str
    entity_key: str
    event: str  # the decoded event as JSON, or why it could not be decoded


@dataclass
class DeadLetters:
    total: int
    by_reason: dict[str, int]
    shown: list[DeadLetter] = field(default_factory=list)  # newest first


class Sources:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._config = wiring.config_store(settings)
        self._registry = RegistryFollower(self._config)
        self._log = wiring.event_log(settings)
        self._log_lock = threading.Lock()  # one event-log client, shared by the request threads
        self._codec = AvroCodec(SchemaCatalog.default())
        self.metrics = LiveMetrics(settings.console.metrics_endpoints)
        self._redrive_lock = threading.Lock()
        self._dead = DeadLetterTally(self._log, settings.topics.dead_letter, settings.console.dead_letters_shown)

    def registry(self) -> Registry:
        return self._registry.current

    def revision(self, number: int) -> Registry | None:
        current = self.registry()
        if number == current.revision:
            return current
        return revisions.read(self._config, number) if 0 < number < current.revision else None

    def lag(self) -> list[PartitionLag]:
        with self._log_lock:
            return worker_lag(self._log, self.settings)

    def dead_letters(self, reason: str = "") -> DeadLetters:
        with self._log_lock:
            self._dead.refresh()
            counts, newest = Counter(self._dead.by_reason), self._dead.newest(reason)
        return DeadLetters(sum(counts.values()), dict(counts.most_common()), [self._dead_letter(r) for r in newest])

    def _dead_letter(self, record) -> DeadLetter:
        h = reason_of(record)
        try:
            name, event = self._codec.decode(record.value)
            decoded = f"{name}: {_json(event)}"
        except Exception as exc:  # noqa: BLE001 - the bytes were dead-lettered for being undecodable
            decoded = f"not decodable ({type(exc).__name__}: {exc}); {len(record.value)} bytes"
        return DeadLetter(record.partition, record.offset, h.get(REASON, "?"), h.get(DETAIL, ""),
                          int(h.get(FAILED_AT_MS, "0")),
                          f"{h.get('vahini.source.topic')}[{h.get('vahini.source.partition')}]"
                          f"@{h.get('vahini.source.offset')}", h.get("vahini.entity_key", ""), decoded)

    def redrive(self):
        """Re-ingest the whole dead-letter topic through the feature worker's logic, as
        `vahini replay --topic <dead letters> --from earliest` does: what is valid now
        (its group published since, say) is written; the newest value by event time
        wins, so a second re-drive changes nothing. One at a time."""
        from vahini.streams.replay import replay

        topic = self.settings.topics.dead_letter
        with self._redrive_lock:
            return replay(self.settings, topic, "earliest", None, f"vahini-console-redrive-{topic}", progress=False)

    def close(self) -> None:
        self._registry.close()
        self._config.close()
        with self._log_lock:
            self._dead.close()
            self._log.close()


def _json(value) -> str:
    import json

    return json.dumps(value, default=lambda v: v.hex() if isinstance(v, bytes) else str(v), sort_keys=True)


def now_ms() -> int:
    return int(time.time() * 1000)
