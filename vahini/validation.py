"""Validation of events against the registry, shared by the producer API, the
ingestion worker and the synchronous Persist call, so all three accept and
reject exactly the same events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

from vahini.errors import InvalidEvent, Reason
from vahini.registry.loader import FLOAT32_MAX, INT_RANGES
from vahini.registry.model import KEY_SEPARATOR, Feature, FeatureGroup, Registry


@dataclass(frozen=True, slots=True)
class EventLimits:
    """What producers, Persist and workers accept, from IngestSettings."""

    max_future_skew_ms: int = 300_000
    max_key_bytes: int = 256
    max_string_bytes: int = 65_536

    @classmethod
    def of(cls, ingest) -> "EventLimits":
        return cls(ingest.max_future_skew_ms, ingest.max_key_bytes, ingest.max_string_bytes)


@dataclass(frozen=True, slots=True)
class ValidUpdate:
    entity: str
    key: str
    group: FeatureGroup
    event_time_ms: int
    values: dict[str, Any]


def _finite_number(f: Feature, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidEvent(Reason.WRONG_TYPE, f"feature '{f.name}' is {f.type}, got {type(v).__name__}")
    if not math.isfinite(v) or (f.type in ("float32", "vector") and abs(v) > FLOAT32_MAX):
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"feature '{f.name}' value {v!r} is out of range for {f.type}")


def check_value(f: Feature, v: Any, limits: EventLimits) -> None:
    """Raise InvalidEvent (with its reason) unless `v` is a valid value of `f`."""
    t = f.type
    if t in INT_RANGES:
        if isinstance(v, bool) or not isinstance(v, int):
            raise InvalidEvent(Reason.WRONG_TYPE, f"feature '{f.name}' is {t}, got {type(v).__name__}")
        lo, hi = INT_RANGES[t]
        if not lo <= v <= hi:
            raise InvalidEvent(Reason.OUT_OF_RANGE, f"feature '{f.name}' value {v} is out of range for {t}")
    elif t in ("float", "float32"):
        _finite_number(f, v)
    elif t == "bool":
        if not isinstance(v, bool):
            raise InvalidEvent(Reason.WRONG_TYPE, f"feature '{f.name}' is bool, got {type(v).__name__}")
    elif t == "string":
        if not isinstance(v, str):
            raise InvalidEvent(Reason.WRONG_TYPE, f"feature '{f.name}' is string, got {type(v).__name__}")
        if len(v) * 4 > limits.max_string_bytes and len(v.encode()) > limits.max_string_bytes:
            raise InvalidEvent(Reason.TOO_LARGE, f"feature '{f.name}' is {len(v.encode()):,} bytes; the limit "
                                                 f"is {limits.max_string_bytes:,} (ingest.max_string_bytes)")
    else:
        if not isinstance(v, (list, tuple)):
            raise InvalidEvent(Reason.WRONG_TYPE, f"feature '{f.name}' is a vector, got {type(v).__name__}")
        if len(v) != f.dim:
            raise InvalidEvent(Reason.WRONG_VECTOR_LENGTH,
                               f"feature '{f.name}' needs {f.dim} values, got {len(v)}")
        _check_vector(f, v)


_NUMBER_TYPES = frozenset((int, float))


def _check_vector(f: Feature, v: list | tuple) -> None:
    """Whole-vector checks (hot path: a vector is checked per event); the slow
    per-element pass runs only to name the culprit once something is wrong."""
    if set(map(type, v)) <= _NUMBER_TYPES:
        total = sum(v)  # NaN and inf propagate; finite float32 values cannot overflow a float64 sum
        if math.isfinite(total) and max(v) <= FLOAT32_MAX and min(v) >= -FLOAT32_MAX:
            return
    for x in v:
        _finite_number(f, x)


def _plain_key_part(value: Any, max_key_bytes: int) -> bool:
    return type(value) is str and value != "" and KEY_SEPARATOR not in value and len(value) * 4 <= max_key_bytes


def _entity_key(keys: Any, columns: tuple[str, ...], entity: str, max_key_bytes: int) -> str:
    # Hot path: exactly the key columns, each a short plain string. Anything else takes
    # the full checks below, which accept or name the problem.
    if type(keys) is dict and len(keys) == len(columns):
        if len(columns) == 1:
            value = keys.get(columns[0])
            if _plain_key_part(value, max_key_bytes):
                return cast(str, value)
        else:
            parts = [keys.get(c) for c in columns]
            if all(_plain_key_part(v, max_key_bytes) for v in parts):
                return KEY_SEPARATOR.join(cast(list[str], parts))
    return _checked_entity_key(keys, columns, entity, max_key_bytes)


def _checked_entity_key(keys: Any, columns: tuple[str, ...], entity: str, max_key_bytes: int) -> str:
    if not isinstance(keys, dict):
        raise InvalidEvent(Reason.MISSING_KEY, f"keys must be a mapping of {list(columns)}")
    for column in columns:
        value = keys.get(column)
        if not isinstance(value, str) or not value:
            raise InvalidEvent(Reason.MISSING_KEY, f"entity '{entity}' needs key column '{column}'")
        if KEY_SEPARATOR in value:
            raise InvalidEvent(Reason.INVALID_KEY, f"key '{column}' must not contain '{KEY_SEPARATOR}'")
        if len(value) * 4 > max_key_bytes and len(value.encode()) > max_key_bytes:
            raise InvalidEvent(Reason.TOO_LARGE, f"key '{column}' is {len(value.encode()):,} bytes; the limit "
                                                 f"is {max_key_bytes:,} (ingest.max_key_bytes)")
    extra = keys.keys() - set(columns)
    if extra:
        raise InvalidEvent(Reason.UNKNOWN_KEY, f"entity '{entity}' has no key column(s) {sorted(extra)}")
    return KEY_SEPARATOR.join(keys[c] for c in columns)


def identify(event: dict, registry: Registry, limits: EventLimits) -> tuple[str, str, FeatureGroup]:
    """(entity, key, group) of a decoded FeatureUpdate, checked against the registry."""
    entity_name, group_name = event["entity"], event["group"]
    entity = registry.entities.get(entity_name)
    if entity is None:
        raise InvalidEvent(Reason.UNKNOWN_ENTITY, f"unknown entity '{entity_name}'")
    group = registry.groups.get(group_name)
    if group is None:
        raise InvalidEvent(Reason.UNKNOWN_GROUP, f"unknown feature group '{group_name}'")
    if group.entity != entity_name:
        raise InvalidEvent(Reason.UNKNOWN_GROUP, f"group '{group_name}' belongs to entity '{group.entity}', "
                                                 f"not '{entity_name}'")
    return entity_name, _entity_key(event["keys"], entity.keys, entity_name, limits.max_key_bytes), group


def check_event_time(event_time: int, now_ms: int, limits: EventLimits) -> int:
    if event_time > now_ms + limits.max_future_skew_ms:
        raise InvalidEvent(Reason.FUTURE_EVENT_TIME,
                           f"event time {event_time} is {(event_time - now_ms) / 1000:.0f}s in the future "
                           f"(limit {limits.max_future_skew_ms / 1000:.0f}s)")
    if event_time < 0:
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"event time {event_time} is before 1970")
    return event_time


def validate_feature_update(event: dict, registry: Registry, now_ms: int,
                            limits: EventLimits = EventLimits()) -> ValidUpdate:
    """Check a decoded FeatureUpdate against the registry; raise InvalidEvent with its reason.
    The ingest worker does the same checks fused with encoding (vahini/row_plan.py)."""
    entity, key, group = identify(event, registry, limits)
    values = event["values"]
    for name, value in values.items():
        feature = group.feature(name)
        if feature is None:
            raise InvalidEvent(Reason.UNKNOWN_FEATURE, f"group '{group.name}' has no feature '{name}'")
        if value is not None:
            check_value(feature, value, limits)
    return ValidUpdate(entity, key, group, check_event_time(event["event_time_ms"], now_ms, limits), values)


_ID_FIELDS = ("event_id", "user_id", "product_id", "category_id", "session_id")


def check_interaction_ids(event: dict, limits: EventLimits, now_ms: int | None = None) -> None:
    """Rules for Interaction and SessionEvent events beyond their schema."""
    for name in _ID_FIELDS:
        value = event.get(name)
        if value is not None and len(value) * 4 > limits.max_key_bytes and len(value.encode()) > limits.max_key_bytes:
            raise InvalidEvent(Reason.TOO_LARGE, f"{name} is {len(value.encode()):,} bytes; the limit is "
                                                 f"{limits.max_key_bytes:,} (ingest.max_key_bytes)")
    if not event.get("user_id"):
        raise InvalidEvent(Reason.MISSING_KEY, "user_id must not be empty")
    if now_ms is not None and event["event_time_ms"] > now_ms + limits.max_future_skew_ms:
        raise InvalidEvent(Reason.FUTURE_EVENT_TIME, f"event time {event['event_time_ms']} is "
                                                     f"{(event['event_time_ms'] - now_ms) / 1000:.0f}s in the future")
