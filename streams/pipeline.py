"""Turning a batch of log records into feature rows: decode -> validate -> encode.
Pure functions of their inputs; the worker does the I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from vahini.codecs.avro import FEATURE_UPDATE, AvroCodec
from vahini.errors import InvalidEvent, Reason
from vahini.ports.event_log import Record
from vahini.ports.feature_store import FeatureRow
from vahini.registry.model import Registry
from vahini.row_plan import feature_row
from vahini.validation import EventLimits


@dataclass
class DecodedBatch:
    rows: list[FeatureRow] = field(default_factory=list)
    invalid: list[tuple[Record, InvalidEvent]] = field(default_factory=list)


def decode_batch(records: list[Record], codec: AvroCodec, registry: Registry, now_ms: int,
                 limits: EventLimits) -> DecodedBatch:
    out = DecodedBatch()
    for record in records:
        event = None
        try:
            name, event = codec.decode(record.value)
            if name != FEATURE_UPDATE:
                raise InvalidEvent(Reason.WRONG_EVENT_TYPE, f"expected {FEATURE_UPDATE}, got {name}")
            out.rows.append(feature_row(event, registry, now_ms, limits))
        except InvalidEvent as exc:
            exc.entity_key = exc.entity_key or _key_for_people(event)
            out.invalid.append((record, exc))
    return out


def _key_for_people(event: dict | None) -> str | None:
    """'entity:part|part' of a decoded event, for operators reading dead letters."""
    if not event or not isinstance(event.get("keys"), dict) or "entity" not in event:
        return None
    return f"{event['entity']}:{'|'.join(str(v) for v in event['keys'].values())}"
