"""Avro single-object encoding (Avro spec, "Single-object encoding").

Each message is `C3 01` + the 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema's canonical form + the Avro binary body. A consumer keeps every
schema version it knows, keyed by fingerprint, and reads each message with the
writer's schema resolved against its own (reader) schema, so old and new
producers can share a topic.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from vahini.errors import DecodeError, UnknownSchemaError

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


@dataclass(frozen=True)
class KnownSchema:
    name: str
    parsed: Any
    fingerprint: bytes


def _known(schema: dict | str) -> KnownSchema:
    parsed = parse_schema(schema)
    canonical = to_parsing_canonical_form(parsed)
    return KnownSchema(parsed["name"], parsed, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")))


class SchemaCatalog:
    """Reader schemas by full name, and every known writer schema by fingerprint."""

    def __init__(self, readers: Iterable[dict], older_writers: Iterable[dict] = ()):
        self._readers = {k.name: k for k in map(_known, readers)}
        self._writers = {k.fingerprint: k for k in self._readers.values()}
        for old in map(_known, older_writers):
            self._writers.setdefault(old.fingerprint, old)

    @classmethod
    def from_dir(cls, directory: Path) -> "SchemaCatalog":
        """Every `*.avsc` in `directory` is a reader schema; `history/*.avsc` are older writers."""
        readers = [json.loads(p.read_text()) for p in sorted(directory.glob("*.avsc"))]
        older = [json.loads(p.read_text()) for p in sorted(directory.glob("history/*.avsc"))]
        return cls(readers, older)

    @classmethod
    def default(cls) -> "SchemaCatalog":
        from schemas import AVRO_DIR

        return cls.from_dir(AVRO_DIR)

    def reader(self, name: str) -> KnownSchema:
        return self._readers[name]

    def reader_or_none(self, name: str) -> KnownSchema | None:
        return self._readers.get(name)

    def writer(self, fp: bytes) -> KnownSchema:
        try:
            return self._writers[fp]
        except KeyError:
            raise UnknownSchemaError(fp) from None


class AvroCodec:
    """Encodes with the current schema of a name; decodes any known version."""

    def __init__(self, catalog: SchemaCatalog):
        self.catalog = catalog
        # fingerprint -> (name, writer schema, reader schema or None when they are the
        # same): decoding is the worker's largest cost, so one lookup per message.
        self._resolutions: dict[bytes, tuple[str, Any, Any]] = {}

    def encode(self, name: str, record: dict) -> bytes:
        schema = self.catalog.reader(name)
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(schema.fingerprint)
        fastavro.schemaless_writer(out, schema.parsed, record)
        return out.getvalue()

    def schema_problem(self, name: str, record: dict) -> str | None:
        """Why `record` does not fit the current schema of `name`, for people; None if it fits."""
        try:
            validate(record, self.catalog.reader(name).parsed, raise_errors=True)
        except ValidationError as exc:
            first = exc.errors[0]
            field = str(first.field).rsplit(".", 1)[-1]
            if first.datum is None:
                return f"missing field '{field}'"
            expected = first.schema if isinstance(first.schema, str) else first.schema.get("type", first.schema)
            return f"field '{field}' is {type(first.datum).__name__} {str(first.datum)[:60]!r}, expected {expected}"
        return None

    def decode(self, data: bytes) -> tuple[str, dict]:
        """Return (schema full name, record); raise DecodeError/UnknownSchemaError."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoded: missing C3 01 header")
        fp = bytes(data[2:HEADER_LEN])
        resolved = self._resolutions.get(fp) or self._resolve(fp)
        name = resolved[0]
        body = io.BytesIO(data[HEADER_LEN:])
        try:
            record = fastavro.schemaless_reader(body, resolved[1], resolved[2])
        except Exception as exc:  # fastavro raises many types for corrupt input
            raise DecodeError(f"corrupt {name} body: {type(exc).__name__}: {exc}") from None
        if body.tell() != len(data) - HEADER_LEN:
            raise DecodeError(f"{len(data) - HEADER_LEN - body.tell()} trailing bytes after {name}")
        return name, record

    def _resolve(self, fp: bytes) -> tuple[str, Any, Any]:
        writer = self.catalog.writer(fp)  # raises UnknownSchemaError; unknown prints are not cached
        reader = self.catalog.reader_or_none(writer.name)
        resolved = (writer.name, writer.parsed, None if reader is None or reader is writer else reader.parsed)
        self._resolutions[fp] = resolved
        return resolved


FEATURE_UPDATE = "vahini.events.FeatureUpdate"
INTERACTION = "vahini.events.Interaction"
SESSION_EVENT = "vahini.events.SessionEvent"
