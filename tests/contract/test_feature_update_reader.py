"""vahini/codecs/feature_update_reader.py reads FeatureUpdate bodies in place of fastavro.
It must read exactly what fastavro reads: the same records from valid messages, from
unusual but legal encodings (blocks, negative counts, long varints), and the same
acceptance or failure on malformed and corrupted ones. Values are compared by type and
bit pattern, so NaN, -0.0 and True-versus-1 count."""

from __future__ import annotations

import io
import json
import math
import random
import struct

import fastavro
import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from vahini.synthetic import synthesize
from vahini.schemas import AVRO_DIR
from vahini.codecs import feature_update_reader
from vahini.codecs.avro import FEATURE_UPDATE, HEADER_LEN, MAGIC, AvroCodec, SchemaCatalog
from vahini.errors import DecodeError

SCHEMA = json.loads((AVRO_DIR / f"{FEATURE_UPDATE}.avsc").read_text())
CODEC = AvroCodec(SchemaCatalog.default())
PARSED = CODEC.catalog.reader(FEATURE_UPDATE).parsed
PRINT = CODEC.catalog.reader(FEATURE_UPDATE).fingerprint


def _exact(value):
    """A form of a decoded value in which equal means identical: types, key order, float bits."""
    if isinstance(value, dict):
        return ("dict", [(k, _exact(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_exact(v) for v in value])
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    return (type(value).__name__, value)


def _fastavro(message: bytes):
    """fastavro's public reading of the message's body, or None where it fails."""
    body = io.BytesIO(message[HEADER_LEN:])
    try:
        record = fastavro.schemaless_reader(body, PARSED, None)
    except Exception:  # noqa: BLE001 - any failure is an undecodable message
        return None
    return None if body.tell() != len(message) - HEADER_LEN else _exact(record)


def _ours(message: bytes):
    try:
        name, record = CODEC.decode(message)
    except DecodeError:
        return None
    assert name == FEATURE_UPDATE
    return _exact(record)


def _same_as_fastavro(messages) -> int:
    """Assert our reading of every message is fastavro's; return how many fastavro accepted."""
    accepted = 0
    for message in messages:
        expected = _fastavro(message)
        assert _ours(message) == expected, message.hex()
        accepted += expected is not None
    return accepted


def _message(body: bytes) -> bytes:
    return MAGIC + PRINT + body


def _encoded(event: dict) -> bytes:
    return CODEC.encode(FEATURE_UPDATE, event)


def test_the_reader_implements_the_current_schema_and_the_codec_uses_it():
    assert to_parsing_canonical_form(parse_schema(SCHEMA)) == feature_update_reader.SCHEMA, (
        "FeatureUpdate.avsc changed: update vahini/codecs/feature_update_reader.py to the new schema "
        "(until then the codec reads it with fastavro, more slowly)")
    CODEC.decode(_encoded({"entity": "user", "keys": {}, "group": "g", "values": {}, "event_time_ms": 1,
                           "producer_id": "p"}))
    assert CODEC._resolutions[PRINT].read_body is feature_update_reader.read


def _random_value(rng: random.Random):
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 63, -64, 64, 2 ** 31, -(2 ** 63), 2 ** 63 - 1, rng.randrange(-2 ** 63, 2 ** 63)])
    if kind == 3:
        return rng.choice([0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308,
                           rng.uniform(-1e9, 1e9)])
    if kind == 4:
        return "".join(rng.choice("aZ09|:é日😀\x00") for _ in range(rng.choice([0, 1, 5, 63, 64, 200])))
    vector = [struct.unpack("<f", struct.pack("<f", rng.uniform(-3e38, 3e38)))[0]
              for _ in range(rng.choice([0, 1, 16, 63, 64, 128, 129, 300]))]
    if vector and rng.random() < 0.2:
        vector[rng.randrange(len(vector))] = rng.choice([math.nan, math.inf, -0.0])
    return vector


def test_valid_messages_read_as_fastavro_reads_them():
    rng = random.Random(5)
    events = [{"entity": rng.choice(["user", "é" * 70, ""]),
               "keys": {f"k{i}": "v" * rng.randrange(130) for i in range(rng.choice([0, 1, 2, 70]))},
               "group": "g" * rng.randrange(100),
               "values": {f"f{i}": _random_value(rng) for i in range(rng.choice([0, 1, 4, 65]))},
               "event_time_ms": rng.choice([0, -1, 2 ** 63 - 1, -(2 ** 63), rng.randrange(2 ** 41)]),
               "producer_id": rng.choice(["", "bench", "p" * 300])} for _ in range(1500)]
    messages = synthesize(2000, seed=6).payloads + [_encoded(e) for e in events]
    assert _same_as_fastavro(messages) == len(messages)


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _text(s: str) -> bytes:
    return _varint(len(s.encode())) + s.encode()


def _body(keys: bytes = b"\x00", values: bytes = b"\x00", time: bytes = b"\x02") -> bytes:
    return _text("user") + keys + _text("g") + values + time + _text("p")


UNUSUAL = {
    "maps in several blocks": _body(keys=_varint(1) + _text("a") + _text("x") + _varint(1) + _text("b") + _text("y")
                                    + b"\x00",
                                    values=_varint(1) + _text("c") + _varint(2) + _varint(7) + _varint(2) + _text("d")
                                    + _varint(3) + struct.pack("<d", 1.5) + _text("e") + _varint(0) + b"\x00"),
    "negative block counts with sizes": _body(keys=_varint(-1) + _varint(4) + _text("a") + _text("x") + b"\x00",
                                              values=_varint(-2) + _varint(99) + _text("c") + _varint(1) + b"\x01"
                                              + _text("d") + _varint(1) + b"\x00" + b"\x00"),
    "a block count of -2**63 (an empty block)": _body(values=_varint(-(2 ** 63)) + _varint(0) + _varint(1) + _text("c")
                                                      + _varint(0) + b"\x00"),
    "non-canonical varints": _body(keys=b"\x82\x00" + b"\x82\x00a" + b"\x02x" + b"\x00",
                                   values=b"\x02\x02c" + b"\x84\x00" + b"\x8e\x80\x00" + b"\x00"),
    "varints of 10 to 20 bytes": _body(values=_varint(3) + _text("a") + _varint(2) + b"\x80" * 10 + b"\x01"
                                       + _text("b") + _varint(2) + b"\xff" * 14 + b"\x03"
                                       + _text("c") + _varint(2) + b"\x80" * 19 + b"\x01" + b"\x00",
                                       time=b"\x80" * 9 + b"\x03"),
    "union indexes counted from the end": _body(values=_varint(6) + b"".join(
        _text(f"i{i}") + _varint(-i) + payload for i, payload in
        [(1, b"\x00"), (2, _text("s")), (3, struct.pack("<d", 2.0)), (4, _varint(5)), (5, b"\x07"), (6, b"")])
        + b"\x00"),
    "a union index past the end": _body(values=_varint(1) + _text("a") + _varint(-7) + b"\x00"),
    "a union index past the start": _body(values=_varint(1) + _text("a") + _varint(6) + b"\x00"),
    "a vector in three blocks": _body(values=_varint(1) + _text("v") + _varint(5) + _varint(2)
                                      + struct.pack("<2f", 1, 2) + _varint(-1) + _varint(4) + struct.pack("<f", 3)
                                      + _varint(3) + struct.pack("<3f", 4, 5, 6) + b"\x00" + b"\x00"),
    "an empty vector": _body(values=_varint(1) + _text("v") + _varint(5) + b"\x00" + b"\x00"),
    "a boolean byte other than 0 and 1": _body(values=_varint(1) + _text("b") + _varint(1) + b"\x07" + b"\x00"),
    "a negative string length": _body(keys=_varint(1) + _text("a") + _varint(-3) + b"xyz" + b"\x00"),
    "a string past the end": (_text("user") + b"\x00" + _text("g") + b"\x00" + b"\x02" + _varint(5) + b"p"),
    "invalid UTF-8": _body(keys=_varint(1) + _varint(2) + b"\xc3\x28" + _text("x") + b"\x00"),
    "a vector count past the end": _body(values=_varint(1) + _text("v") + _varint(5) + _varint(1000) + b"\x00" * 8),
}


@pytest.mark.parametrize("case", sorted(UNUSUAL))
def test_unusual_and_malformed_encodings_read_as_fastavro_reads_them(case):
    message = _message(UNUSUAL[case])
    assert _ours(message) == _fastavro(message)


def test_the_unusual_encodings_include_accepted_and_refused_ones():
    outcomes = {case: _fastavro(_message(body)) is not None for case, body in UNUSUAL.items()}
    assert outcomes["maps in several blocks"] and outcomes["union indexes counted from the end"]
    assert not outcomes["a union index past the end"] and not outcomes["a string past the end"]


def test_corrupted_messages_fail_or_read_exactly_where_fastavro_does():
    rng = random.Random(21)
    sources = synthesize(400, seed=8).payloads + [_message(b) for b in UNUSUAL.values()]
    messages = []
    for _ in range(20_000):
        message = bytearray(rng.choice(sources))
        at = rng.randrange(HEADER_LEN, len(message))
        how = rng.randrange(5)
        if how == 0:
            message[at] = rng.randrange(256)
        elif how == 1:
            message[at] ^= 1 << rng.randrange(8)
        elif how == 2:
            del message[at:]
        elif how == 3:
            message[at:at] = rng.randbytes(rng.randrange(1, 12))
        else:
            del message[at:at + rng.randrange(1, 12)]
        messages.append(bytes(message))
    accepted = _same_as_fastavro(messages)
    assert 0 < accepted < len(messages)  # the corpus holds both outcomes
