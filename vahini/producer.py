"""Producer API: validate an event against its schema and the registry, encode it
(Avro single-object), and send it keyed so that one user's or entity's events
always land in the same partition.

    producer = EventProducer.from_settings(settings)
    producer.feature_update("user", {"user_id": "u1"}, "user_profile", {"city": "Pune"})
    producer.flush()   # returns once every event is acknowledged by the log
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from vahini import wiring
from vahini.codecs.avro import FEATURE_UPDATE, INTERACTION, SESSION_EVENT, AvroCodec, SchemaCatalog
from vahini.errors import InvalidEvent, Reason
from vahini.ports.event_log import EventLog
from vahini.registry.model import Registry
from vahini.registry.publish import RegistryFollower
from vahini.settings import Settings
from vahini.validation import EventLimits, check_interaction_ids, validate_feature_update

KINDS = {"feature-update": FEATURE_UPDATE, "interaction": INTERACTION, "session": SESSION_EVENT}


def now_ms() -> int:
    return int(time.time() * 1000)


class EventProducer:
    def __init__(self, log: EventLog, codec: AvroCodec, registry: Callable[[], Registry], settings: Settings,
                 producer_id: str = "vahini-producer"):
        self._out = log.producer()
        self._codec = codec
        self._registry = registry
        self._topics = settings.topics
        self._limits = EventLimits.of(settings.ingest)
        self.producer_id = producer_id
        self._topic_of = {FEATURE_UPDATE: self._topics.feature_updates, INTERACTION: self._topics.interactions,
                          SESSION_EVENT: self._topics.sessions}

    @classmethod
    def from_settings(cls, settings: Settings, producer_id: str = "vahini-producer") -> "EventProducer":
        follower = RegistryFollower(wiring.config_store(settings))
        return cls(wiring.event_log(settings), AvroCodec(SchemaCatalog.default()), lambda: follower.current,
                   settings, producer_id)

    @property
    def registry(self) -> Registry:
        """The registry events are validated against (the latest published)."""
        return self._registry()

    # -- typed helpers ------------------------------------------------------------
    def feature_update(self, entity: str, keys: Mapping[str, str], group: str, values: Mapping[str, Any],
                       event_time_ms: int | None = None) -> None:
        self.send(FEATURE_UPDATE, {"entity": entity, "keys": dict(keys), "group": group, "values": dict(values),
                                   "event_time_ms": event_time_ms or now_ms(), "producer_id": self.producer_id})

    def interaction(self, event_id: str, user_id: str, product_id: str, type: str, event_time_ms: int | None = None,
                    category_id: str | None = None, attributes: Mapping[str, str] | None = None) -> None:
        self.send(INTERACTION, {"event_id": event_id, "user_id": user_id, "product_id": product_id,
                                "category_id": category_id, "type": type, "event_time_ms": event_time_ms or now_ms(),
                                "attributes": dict(attributes or {})})

    def session_event(self, user_id: str, session_id: str, type: str, event_time_ms: int | None = None) -> None:
        self.send(SESSION_EVENT, {"user_id": user_id, "session_id": session_id, "type": type,
                                  "event_time_ms": event_time_ms or now_ms()})

    # -- generic ------------------------------------------------------------------
    def send(self, schema_name: str, record: dict) -> None:
        """Validate, encode and queue one event; raise InvalidEvent and send nothing if it is bad.
        `event_time_ms` is optional: absent or null means now."""
        if not isinstance(record, dict):
            raise InvalidEvent(Reason.MALFORMED, "not a JSON object")
        if record.get("event_time_ms") is None:
            record = {**record, "event_time_ms": now_ms()}
        if schema_name == FEATURE_UPDATE and "producer_id" not in record:
            record = {**record, "producer_id": self.producer_id}
        problem = self._codec.schema_problem(schema_name, record)
        if problem:
            raise InvalidEvent(Reason.MALFORMED, problem)
        key = self._validate(schema_name, record)
        payload = self._codec.encode(schema_name, record)
        # The log timestamp stays the produce time: retention and `replay --from <time>` work
        # on when events arrived, and a backfill of old event times is not expired on arrival.
        self._out.send(self._topic_of[schema_name], payload, key=key.encode())

    def _validate(self, schema_name: str, record: dict) -> str:
        """Registry and time checks; returns the partitioning key."""
        if schema_name == FEATURE_UPDATE:
            valid = validate_feature_update(record, self._registry(), now_ms(), self._limits)
            return f"{valid.entity}:{valid.key}"
        check_interaction_ids(record, self._limits, now_ms())
        return record["user_id"]

    def flush(self, timeout_s: float = 60.0) -> None:
        self._out.flush(timeout_s)

    def close(self) -> None:
        self._out.close()
