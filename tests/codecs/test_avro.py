import json

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from vahini.codecs.avro import FEATURE_UPDATE, INTERACTION, MAGIC, AvroCodec, SchemaCatalog
from vahini.errors import DecodeError, UnknownSchemaError
from vahini.schemas import AVRO_DIR

UPDATE = {"entity": "user", "keys": {"user_id": "u1"}, "group": "user_profile",
          "values": {"n": 3, "x": 2.5, "b": True, "s": "hi", "v": [1.0, 2.0], "none": None},
          "event_time_ms": 1_700_000_000_000, "producer_id": "test"}


@pytest.fixture(scope="module")
def codec():
    return AvroCodec(SchemaCatalog.default())


def test_every_schema_is_namespaced_and_every_field_documented():
    for path in AVRO_DIR.glob("*.avsc"):
        schema = json.loads(path.read_text())
        assert schema["namespace"] == "vahini.events" and schema["doc"], path
        assert all(f.get("doc") for f in schema["fields"]), path


def test_round_trip_keeps_every_value_type(codec):
    name, record = codec.decode(codec.encode(FEATURE_UPDATE, UPDATE))
    assert name == FEATURE_UPDATE
    assert record == UPDATE


def test_header_is_avro_single_object_with_crc64_fingerprint(codec):
    data = codec.encode(FEATURE_UPDATE, UPDATE)
    assert data[:2] == MAGIC == b"\xc3\x01"
    canonical = to_parsing_canonical_form(parse_schema(json.loads(
        (AVRO_DIR / "vahini.events.FeatureUpdate.avsc").read_text())))
    assert data[2:10] == _spec_crc64(canonical.encode()).to_bytes(8, "little")


def _spec_crc64(data: bytes) -> int:
    """The Avro specification's reference CRC-64-AVRO, independent of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_reference_crc64_matches_the_spec_value_for_null():
    assert _spec_crc64(b'"null"') == 0x63DD24E7CC258F8A


def _v2(schema: dict) -> dict:
    v2 = json.loads(json.dumps(schema))
    v2["fields"].append({"name": "channel", "type": "string", "default": "app", "doc": "Where it happened."})
    return v2


def test_v1_writer_is_read_by_a_v2_reader():
    v1 = json.loads((AVRO_DIR / "vahini.events.Interaction.avsc").read_text())
    old_producer = AvroCodec(SchemaCatalog([v1]))
    new_consumer = AvroCodec(SchemaCatalog([_v2(v1)], older_writers=[v1]))
    event = {"event_id": "e1", "user_id": "u1", "product_id": "p1", "category_id": None, "type": "CLICK",
             "event_time_ms": 5, "attributes": {}}
    name, record = new_consumer.decode(old_producer.encode(INTERACTION, event))
    assert name == INTERACTION
    assert record == {**event, "channel": "app"}


def test_v2_writer_is_read_by_a_v1_reader_that_knows_v2():
    v1 = json.loads((AVRO_DIR / "vahini.events.Interaction.avsc").read_text())
    new_producer = AvroCodec(SchemaCatalog([_v2(v1)]))
    old_consumer = AvroCodec(SchemaCatalog([v1], older_writers=[_v2(v1)]))
    event = {"event_id": "e1", "user_id": "u1", "product_id": "p1", "category_id": "c1", "type": "ORDER",
             "event_time_ms": 5, "attributes": {"a": "b"}, "channel": "web"}
    _, record = old_consumer.decode(new_producer.encode(INTERACTION, event))
    assert "channel" not in record and record["type"] == "ORDER"


@pytest.mark.parametrize("data, message", [
    (b"", "missing C3 01 header"),
    (b"{\"json\": true}", "missing C3 01 header"),
    (b"\xc3\x01\x00", "missing C3 01 header"),
])
def test_bytes_without_a_header_raise_a_typed_error(codec, data, message):
    with pytest.raises(DecodeError, match=message) as info:
        codec.decode(data)
    assert info.value.reason == "undecodable"


def test_unknown_fingerprint_raises_unknown_schema(codec):
    with pytest.raises(UnknownSchemaError) as info:
        codec.decode(b"\xc3\x01" + b"\x11" * 8 + b"\x02")
    assert info.value.reason == "unknown_schema" and info.value.fingerprint == b"\x11" * 8


def test_corrupt_or_truncated_body_raises_decode_error(codec):
    good = codec.encode(FEATURE_UPDATE, UPDATE)
    for bad in (good[:-4], good[:12], good + b"extra", good[:10] + b"\xff" * 40):
        with pytest.raises(DecodeError) as info:
            codec.decode(bad)
        assert info.value.reason == "undecodable"


def test_non_bytes_input_raises_decode_error(codec):
    with pytest.raises(DecodeError):
        codec.decode("a string")  # type: ignore[arg-type]
