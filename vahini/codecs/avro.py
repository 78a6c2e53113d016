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
from typing import Any, Callable, Iterable, cast

import fastavro
from fastavro._read import _read_data  # type: ignore[attr-defined]  # private: see the pin in pyproject.toml
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from vahini import fast_paths
from vahini.codecs import feature_update_reader
from vahini.errors import DecodeError, UnknownSchemaError

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
# What fastavro.schemaless_reader passes _read_data with its default arguments.
_READ_OPTIONS = {"return_record_name": False, "return_record_name_override": False, "handle_unicode_errors": "strict",
                 "return_named_type": False, "return_named_type_override": False}

_fast = True  # read with the own reader and _read_data; False: schemaless_reader only


def _use_fast_reads(on: bool) -> None:
    global _fast
    _fast = on


fast_paths.register(__name__, _use_fast_reads)


@dataclass(frozen=True)
class KnownSchema:
    name: str
    parsed: Any
    fingerprint: bytes


def _known(schema: dict | str) -> KnownSchema:
    parsed = parse_schema(schema)
    canonical = to_parsing_canonical_form(parsed)
    return KnownSchema(cast(dict, parsed)["name"], parsed, _fingerprint_of(canonical))


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
        from vahini.schemas import AVRO_DIR

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


@dataclass(frozen=True)
class _Resolution:
    """How to read messages of one writer schema: what schemaless_reader works out on
    every call, worked out once."""

    name: str
    writer: Any
    reader: Any  # None when the writer is the current reader schema
    named_schemas: dict
    read_body: Callable[[bytes, int], tuple[dict, int]] | None = None  # a reader of its own for this writer


def _fingerprint_of(canonical: str) -> bytes:
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


# Writer schemas read by a function of their own instead of fastavro, by fingerprint:
# only ever used when that schema is also the reader's (no resolution).
_OWN_READERS = {_fingerprint_of(feature_update_reader.SCHEMA): feature_update_reader.read}


class AvroCodec:
    """Encodes with the current schema of a name; decodes any known version.

    Decoding is the ingest worker's largest cost. A FeatureUpdate written with the current
    schema is read by vahini/codecs/feature_update_reader.py, which reads exactly what
    fastavro reads in about 0.7x of its time. Everything else goes to fastavro's
    `_read_data`, the function `schemaless_reader` calls, with what `schemaless_reader`
    rebuilds on every call (named schemas, options) made once per writer schema, reading
    from the message's own buffer: 0.8x of schemaless_reader's time. That is a private
    function: pyproject.toml pins fastavro, and tests/contract/test_fastavro_internals.py
    checks the output against schemaless_reader. With fast paths off (`vahini.fast_paths`)
    every message goes to `schemaless_reader` itself."""

    def __init__(self, catalog: SchemaCatalog):
        self.catalog = catalog
        self._resolutions: dict[bytes, _Resolution] = {}

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
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise DecodeError(f"expected bytes, got {type(data).__name__}")
            data = bytes(data)
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoded: missing C3 01 header")
        fp = data[2:HEADER_LEN]
        resolved = self._resolutions.get(fp) or self._resolve(fp)
        try:
            if not _fast:  # fast_paths = false: the public reader, as documented
                body = io.BytesIO(data)
                body.seek(HEADER_LEN)
                record = cast(dict, fastavro.schemaless_reader(body, resolved.writer, resolved.reader))
                end = body.tell()
            elif resolved.read_body is not None:
                record, end = resolved.read_body(data, HEADER_LEN)
            else:
                body = io.BytesIO(data)
                body.seek(HEADER_LEN)
                record = _read_data(body, resolved.writer, resolved.named_schemas, resolved.reader, _READ_OPTIONS)
                end = body.tell()
        except Exception as exc:  # noqa: BLE001 - fastavro, and an own reader where fastavro would, raise many types on corrupt input
            raise DecodeError(f"corrupt {resolved.name} body: {type(exc).__name__}: {exc}") from None
        if end != len(data):
            raise DecodeError(f"{len(data) - end} trailing bytes after {resolved.name}")
        return resolved.name, record

    def _resolve(self, fp: bytes) -> _Resolution:
        writer = self.catalog.writer(fp)  # raises UnknownSchemaError; unknown prints are not cached
        reader = self.catalog.reader_or_none(writer.name)
        named: dict = {"writer": {}, "reader": {}}
        parsed_writer = parse_schema(writer.parsed, named["writer"])
        parsed_reader = None
        if reader is not None and reader is not writer and reader.parsed != writer.parsed:
            parsed_reader = parse_schema(reader.parsed, named["reader"])
        own = _OWN_READERS.get(fp) if parsed_reader is None else None
        resolved = _Resolution(writer.name, parsed_writer, parsed_reader, named, own)
        self._resolutions[fp] = resolved
        return resolved


FEATURE_UPDATE = "vahini.events.FeatureUpdate"
INTERACTION = "vahini.events.Interaction"
SESSION_EVENT = "vahini.events.SessionEvent"
FEATURE_LOG = "vahini.events.FeatureLog"
