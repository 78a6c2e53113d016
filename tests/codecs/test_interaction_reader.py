"""vahini/codecs/interaction_reader.py: the compiled reader of Interactions against the
general way (AvroCodec.decode, check_interaction_ids, StoredInteraction.of_event), on
valid, crafted and fuzzed messages. It may refuse anything (None: the worker reads the
message the general way); what it accepts must be exactly what the general way makes,
and the general way must accept it too. No services."""

from __future__ import annotations

import json
import random

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from vahini.schemas import AVRO_DIR
from vahini.codecs import interaction_reader
from vahini.codecs.avro import INTERACTION, SESSION_EVENT, AvroCodec, SchemaCatalog
from vahini.errors import InvalidEvent
from vahini.ports.interaction_store import StoredInteraction
from vahini.validation import EventLimits, check_interaction_ids

CODEC = AvroCodec(SchemaCatalog.default())
LIMITS = EventLimits(max_future_skew_ms=300_000, max_key_bytes=32)
NOW_MS = 1_780_000_000_000
READER = interaction_reader.InteractionReader(LIMITS)
WORDS = ["", "a", "shoes", "東京", "ü" * 16, "x" * 32, "x" * 33, "toys|games"]
needs_compiled = pytest.mark.skipif(interaction_reader.compiled is None,
                                    reason="vahini.codecs._interaction_reader was not built")


def _general(message: bytes) -> StoredInteraction | None:
    """The worker's general way: None where it dead-letters the message."""
    try:
        name, event = CODEC.decode(message)
        if name != INTERACTION:
            return None
        check_interaction_ids(event, LIMITS, NOW_MS)
    except (InvalidEvent, Exception):  # noqa: BLE001 - DecodeError and InvalidEvent alike: not accepted
        return None
    return StoredInteraction.of_event(event)


def _interaction(rng: random.Random) -> dict:
    return {"event_id": rng.choice(WORDS[1:]) + str(rng.randrange(10**6)), "user_id": rng.choice(WORDS),
            "product_id": rng.choice(WORDS), "category_id": rng.choice([None, *WORDS]),
            "type": rng.choice(["CLICK", "ORDER", "WISHLIST"]),
            "event_time_ms": rng.choice([0, -5, NOW_MS, NOW_MS + 300_000, NOW_MS + 300_001, 2**62, -(2**63)]),
            "attributes": {rng.choice(WORDS): rng.choice(WORDS) for _ in range(rng.choice([0, 0, 1, 3, 70]))}}


def _checked(messages: list[bytes]) -> int:
    """Compares the reader with the general way on each message; returns how many it accepted."""
    accepted = 0
    for message, item in zip(messages, READER.read_many(messages, NOW_MS)):
        if item is not None:
            accepted += 1
            assert item == _general(message), message
            assert type(item.attributes) is dict
    return accepted


def test_the_compiled_reader_is_built():
    assert interaction_reader.compiled is not None, "vahini.codecs._interaction_reader was not built"


def test_the_reader_implements_the_current_interaction_schema():
    # Fails when Interaction.avsc changes: update the compiled reader and SCHEMA together.
    current = json.loads((AVRO_DIR / f"{INTERACTION}.avsc").read_text())
    assert to_parsing_canonical_form(parse_schema(current)) == interaction_reader.SCHEMA
    assert CODEC.encode(INTERACTION, _interaction(random.Random(1)))[:len(interaction_reader.HEADER)] \
        == interaction_reader.HEADER


@needs_compiled
def test_valid_interactions_read_as_the_general_way_reads_them_and_failed_checks_go_the_general_way():
    rng = random.Random(5)
    events = [_interaction(rng) for _ in range(3000)]
    messages = [CODEC.encode(INTERACTION, e) for e in events]
    accepted = _checked(messages)
    expected = sum(_general(m) is not None for m in messages)
    assert accepted == expected > 500  # every valid one taken here; every refused one refused by checks


@needs_compiled
@pytest.mark.parametrize("field, value", [("user_id", ""), ("event_id", "x" * 33), ("product_id", "ü" * 17),
                                          ("category_id", "x" * 33), ("event_time_ms", NOW_MS + 300_001)])
def test_an_event_that_fails_a_check_is_refused_and_the_general_way_says_why(field, value):
    event = {**_interaction(random.Random(2)), "user_id": "u1", "event_id": "e1", "product_id": "p1",
             "category_id": None, "event_time_ms": NOW_MS, field: value}
    message = CODEC.encode(INTERACTION, event)
    assert READER.read_many([message], NOW_MS) == [None]
    with pytest.raises(InvalidEvent):
        check_interaction_ids(CODEC.decode(message)[1], LIMITS, NOW_MS)


@needs_compiled
def test_other_schemas_and_other_types_are_left_to_the_general_way():
    session = CODEC.encode(SESSION_EVENT, {"session_id": "s", "user_id": "u", "type": "START",
                                           "event_time_ms": NOW_MS})
    assert READER.read_many([session, bytearray(session), b"", b"\xc3\x01", None], NOW_MS) == [None] * 5


@needs_compiled
def test_crafted_encodings_blocks_with_byte_counts_and_long_varints_read_alike():
    def zigzag(n: int) -> bytes:
        n = (n << 1) ^ (n >> 63)
        out = bytearray()
        while n > 0x7F:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes([n]))

    def string(s: str, pad: bool = False) -> bytes:
        raw = s.encode()
        length = zigzag(len(raw))
        return (length[:-1] + bytes([length[-1] | 0x80, 0]) if pad else length) + raw

    head = interaction_reader.HEADER + string("e1") + string("u1") + string("p1")
    body = zigzag(1) + string("shoes") + zigzag(2) + zigzag(NOW_MS)
    entry = string("k") + string("v")
    messages = [
        head + body + zigzag(-1) + zigzag(len(entry)) + entry + zigzag(0),  # a block with its byte size
        head + body + zigzag(1) + entry + zigzag(1) + string("k") + string("w") + zigzag(0),  # two blocks, a key twice
        interaction_reader.HEADER + string("e1", pad=True) + string("u1") + string("p1") + body + zigzag(0),
        head + body + zigzag(0) + b"\x00",  # a trailing byte
        head + body + zigzag(3) + entry + zigzag(0),  # a block longer than its entries
        head + zigzag(2) + string("shoes") + zigzag(2) + zigzag(NOW_MS) + zigzag(0),  # union index 2
        head + zigzag(1) + string("shoes") + zigzag(3) + zigzag(NOW_MS) + zigzag(0),  # enum index 3
        head + zigzag(1) + string("shoes") + zigzag(-1) + zigzag(NOW_MS) + zigzag(0),  # enum index -1
        head + body + b"\xff" * 11,  # a varint of 11 bytes
        head + zigzag(1) + b"\x04\xff\xfe" + zigzag(0) + zigzag(NOW_MS) + zigzag(0),  # not UTF-8
    ]
    assert _checked(messages) == 3
    assert [m is None for m in READER.read_many(messages, NOW_MS)][3:] == [True] * 7


@needs_compiled
def test_fuzzed_messages_are_refused_or_read_exactly_as_the_general_way_reads_them():
    rng = random.Random(11)
    messages = []
    for _ in range(4000):
        message = bytearray(CODEC.encode(INTERACTION, _interaction(rng)))
        cut = rng.randrange(10, len(message))
        action = rng.randrange(4)
        if action == 0:
            message[cut] = rng.randrange(256)
        elif action == 1:
            del message[cut:]
        elif action == 2:
            message[cut:cut] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        else:
            message[cut] ^= 1 << rng.randrange(8)
        messages.append(bytes(message))
    assert _checked(messages) > 100


def test_switched_off_every_message_goes_the_general_way():
    message = CODEC.encode(INTERACTION, {"event_id": "e", "user_id": "u", "product_id": "p", "category_id": None,
                                         "type": "CLICK", "event_time_ms": NOW_MS, "attributes": {}})
    try:
        assert interaction_reader.use_compiled(False) is False
        assert READER.read_many([message], NOW_MS) == [None]
    finally:
        interaction_reader.use_compiled(True)
    assert (READER.read_many([message], NOW_MS)[0] is not None) == (interaction_reader.compiled is not None)
