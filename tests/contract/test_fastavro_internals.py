"""AvroCodec.decode calls fastavro's private `_read_data` (what `schemaless_reader`
calls) with the named schemas and options worked out once per writer schema. This
holds only for the fastavro version it was measured with: these tests fail loudly
when the version moves, or when the codec's output stops matching schemaless_reader's."""

from __future__ import annotations

import io
import json
import random
from importlib.metadata import version

import fastavro

from vahini.synthetic import synthesize
from vahini.schemas import AVRO_DIR
from vahini.codecs.avro import FEATURE_UPDATE, HEADER_LEN, MAGIC, AvroCodec, SchemaCatalog, _known
from vahini.errors import DecodeError

PINNED = "1.13.1"  # pyproject.toml pins fastavro to this version


def test_fastavro_is_the_version_the_codec_was_written_for():
    assert version("fastavro") == PINNED, "re-check AvroCodec.decode against schemaless_reader before moving the pin"


def _reference(message: bytes, writer, reader=None):
    """fastavro's public decoding of a single-object message, or the error it raises."""
    body = io.BytesIO(message[HEADER_LEN:])
    try:
        record = fastavro.schemaless_reader(body, writer, reader)
    except Exception as exc:  # noqa: BLE001 - any failure is an undecodable message
        return exc
    return ValueError("trailing bytes") if body.tell() != len(message) - HEADER_LEN else record


def _decoded(codec: AvroCodec, message: bytes):
    try:
        return codec.decode(message)[1]
    except DecodeError as exc:
        return exc


EDGES = [
    {"entity": "user", "keys": {}, "group": "", "values": {}, "event_time_ms": 0, "producer_id": ""},
    {"entity": "üñí", "keys": {"user_id": "ü" * 300, "k2": ""}, "group": "g", "event_time_ms": -(2 ** 63),
     "values": {"a": None, "b": True, "c": False, "d": 2 ** 63 - 1, "e": -1.5e308, "f": "日本", "g": [],
                "h": [3.4e38, -0.0, 1e-45]}, "producer_id": "p"},
]


def test_the_codec_reads_what_schemaless_reader_reads():
    codec = AvroCodec(SchemaCatalog.default())
    writer = codec.catalog.reader(FEATURE_UPDATE).parsed
    messages = synthesize(3000, seed=3).payloads + [codec.encode(FEATURE_UPDATE, e) for e in EDGES]
    for message in messages:
        assert _decoded(codec, message) == _reference(message, writer)


def test_an_older_writer_is_resolved_as_schemaless_reader_resolves_it():
    current = json.loads((AVRO_DIR / f"{FEATURE_UPDATE}.avsc").read_text())
    older = {**current, "fields": [*current["fields"], {"name": "trace_id", "type": "string"}]}  # since dropped
    codec = AvroCodec(SchemaCatalog([current], [older]))
    writer, reader = _known(older), codec.catalog.reader(FEATURE_UPDATE)
    for event in EDGES + [{**EDGES[0], "values": {"x": [1.0, 2.0]}}]:
        body = io.BytesIO()
        fastavro.schemaless_writer(body, writer.parsed, {**event, "trace_id": "t-1"})
        message = MAGIC + writer.fingerprint + body.getvalue()
        decoded = _decoded(codec, message)
        assert decoded == _reference(message, writer.parsed, reader.parsed)
        assert "trace_id" not in decoded


def test_corrupt_messages_fail_exactly_where_schemaless_reader_fails():
    codec = AvroCodec(SchemaCatalog.default())
    writer = codec.catalog.reader(FEATURE_UPDATE).parsed
    messages = synthesize(500, seed=4).payloads
    rng = random.Random(9)
    for _ in range(4000):
        message = bytearray(rng.choice(messages))
        at = rng.randrange(HEADER_LEN, len(message))
        if rng.random() < 0.5:
            message[at] = rng.randrange(256)
        else:
            del message[at:]
        message = bytes(message)
        decoded, reference = _decoded(codec, message), _reference(message, writer)
        if isinstance(reference, Exception):
            assert isinstance(decoded, DecodeError)
        else:
            assert decoded == reference
