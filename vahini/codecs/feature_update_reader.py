"""The body of a FeatureUpdate written with exactly SCHEMA, read by code written for that
schema: the ingest worker's largest cost, at about 0.7x of fastavro's time on the
realistic mix (docs/benchmarks-history.md, "Ingest worker CPU per event").

fastavro reads every byte of every varint through `fo.read(1)` and picks each value's
reader by comparing its type name against a chain of strings, so a 16-float vector costs
16 such dispatches. Here the schema is fixed, single-byte varints (almost all of them)
take one branch, and a vector's block is one `struct` call.

It reads what fastavro 1.13.1 reads, including malformed input: a union index counted
from the end of the union (fastavro indexes a Python list), varints over 10 bytes folded
into 64 bits as fastavro's C code folds them, a block count of -2**63 read as empty. It
accepts the same bodies, returns equal records and fails on the same ones;
tests/contract/test_feature_update_reader.py checks that on valid, crafted and fuzzed
messages. The codec uses it only for messages whose writer schema is SCHEMA: any other
writer schema, or a changed FeatureUpdate.avsc, is read by fastavro.
"""

from __future__ import annotations

import struct

# The parsing canonical form of the schema this reader implements.
SCHEMA = ('{"name":"vahini.events.FeatureUpdate","type":"record","fields":[{"name":"entity","type":"string"},'
          '{"name":"keys","type":{"type":"map","values":"string"}},{"name":"group","type":"string"},'
          '{"name":"values","type":{"type":"map","values":["null","boolean","long","double","string",'
          '{"type":"array","items":"float"}]}},{"name":"event_time_ms","type":"long"},'
          '{"name":"producer_id","type":"string"}]}')

_UNION_SIZE = 6  # null, boolean, long, double, string, array<float>
_MASK64 = (1 << 64) - 1
_MIN_LONG = -(1 << 63)
_SHIFTS = tuple(range(0, 63, 7))  # the first nine bytes of a varint fit 64 bits as they are
_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT_BLOCKS = {n: struct.Struct(f"<{n}f").unpack_from for n in range(1, 129)}


def read(buf: bytes, pos: int) -> tuple[dict, int]:
    """(record, position after it) of the body starting at `pos`. Malformed input raises
    IndexError, ValueError, UnicodeDecodeError or struct.error, where fastavro fails too.

    Written out flat on purpose: a Python call costs more than reading a one-byte
    varint, and nearly every count, length and union index is one byte. So each is read
    inline, `n = buf[pos]` and the zig-zag when n < 0x80, and _varint reads the rest; a
    string is its length, a bounds check and a decode."""
    size = len(buf)
    n = buf[pos]
    if n < 0x80:
        n = (n >> 1) ^ -(n & 1)
        pos += 1
    else:
        n, pos = _varint(buf, pos)
    end = pos + n
    if n < 0 or end > size:
        raise ValueError(f"the entity, {n} bytes at {pos}, runs past the end")
    entity, pos = buf[pos:end].decode(), end
    keys: dict = {}
    count = buf[pos]
    if 0 < count < 0x80 and not count & 1:  # one block, of under 64
        count >>= 1
        pos += 1
    else:
        count, pos = _block_count(buf, pos)
    while count:
        for _ in range(count):
            n = buf[pos]
            if n < 0x80:
                n = (n >> 1) ^ -(n & 1)
                pos += 1
            else:
                n, pos = _varint(buf, pos)
            end = pos + n
            if n < 0 or end > size:
                raise ValueError(f"a key column name, {n} bytes at {pos}, runs past the end")
            column = buf[pos:end].decode()
            n = buf[end]
            if n < 0x80:
                n = (n >> 1) ^ -(n & 1)
                pos = end + 1
            else:
                n, pos = _varint(buf, end)
            end = pos + n
            if n < 0 or end > size:
                raise ValueError(f"a key, {n} bytes at {pos}, runs past the end")
            keys[column], pos = buf[pos:end].decode(), end
        if buf[pos] == 0:  # the usual end of the map
            count = 0
            pos += 1
        else:
            count, pos = _block_count(buf, pos)
    n = buf[pos]
    if n < 0x80:
        n = (n >> 1) ^ -(n & 1)
        pos += 1
    else:
        n, pos = _varint(buf, pos)
    end = pos + n
    if n < 0 or end > size:
        raise ValueError(f"the group, {n} bytes at {pos}, runs past the end")
    group, pos = buf[pos:end].decode(), end
    values, pos = _values(buf, pos, size)
    event_time_ms, pos = _varint(buf, pos)
    n = buf[pos]
    if n < 0x80:
        n = (n >> 1) ^ -(n & 1)
        pos += 1
    else:
        n, pos = _varint(buf, pos)
    end = pos + n
    if n < 0 or end > size:
        raise ValueError(f"the producer id, {n} bytes at {pos}, runs past the end")
    producer_id, pos = buf[pos:end].decode(), end
    return {"entity": entity, "keys": keys, "group": group, "values": values, "event_time_ms": event_time_ms,
            "producer_id": producer_id}, pos


def _values(buf: bytes, pos: int, size: int) -> tuple[dict, int]:
    """map<union{null, boolean, long, double, string, array<float>}>, written out as read() is."""
    values: dict = {}
    count = buf[pos]
    if 0 < count < 0x80 and not count & 1:  # one block, of under 64
        count >>= 1
        pos += 1
    else:
        count, pos = _block_count(buf, pos)
    while count:
        for _ in range(count):
            n = buf[pos]
            if n < 0x80:
                n = (n >> 1) ^ -(n & 1)
                pos += 1
            else:
                n, pos = _varint(buf, pos)
            end = pos + n
            if n < 0 or end > size:
                raise ValueError(f"a feature name, {n} bytes at {pos}, runs past the end")
            name = buf[pos:end].decode()
            branch = buf[end]
            if branch < 0x80:
                branch = (branch >> 1) ^ -(branch & 1)
                pos = end + 1
            else:
                branch, pos = _varint(buf, end)
            if branch < 0:  # fastavro picks the branch with writer_schema[index]: from the end
                branch += _UNION_SIZE
            if branch == 3:
                end = pos + 8
                if end > size:
                    raise ValueError(f"a double at {pos} runs past the end")
                values[name] = _DOUBLE(buf, pos)[0]
                pos = end
            elif branch == 2:
                n = buf[pos]
                if n < 0x80:
                    values[name] = (n >> 1) ^ -(n & 1)
                    pos += 1
                else:
                    values[name], pos = _varint(buf, pos)
            elif branch == 5:
                values[name], pos = _floats(buf, pos, size)
            elif branch == 4:
                n = buf[pos]
                if n < 0x80:
                    n = (n >> 1) ^ -(n & 1)
                    pos += 1
                else:
                    n, pos = _varint(buf, pos)
                end = pos + n
                if n < 0 or end > size:
                    raise ValueError(f"a string value, {n} bytes at {pos}, runs past the end")
                values[name], pos = buf[pos:end].decode(), end
            elif branch == 1:
                values[name] = buf[pos] != 0
                pos += 1
            elif branch == 0:
                values[name] = None
            else:
                raise IndexError(f"union index {branch} out of range")
        if buf[pos] == 0:  # the usual end of the map
            count = 0
            pos += 1
        else:
            count, pos = _block_count(buf, pos)
    return values, pos


def _floats(buf: bytes, pos: int, size: int) -> tuple[list, int]:
    """array<float>. The usual shape, one block then the end, is one unpack."""
    n = buf[pos]
    if 0 < n < 0x80 and not n & 1:
        count = n >> 1
        end = pos + 1 + 4 * count
        if end < size and buf[end] == 0 and count in _FLOAT_BLOCKS:
            return list(_FLOAT_BLOCKS[count](buf, pos + 1)), end + 1
    items: list = []
    count, pos = _block_count(buf, pos)
    while count:
        end = pos + 4 * count
        if end > size:
            raise ValueError(f"{count} floats at {pos} run past the end")
        items += struct.unpack_from(f"<{count}f", buf, pos)
        count, pos = _block_count(buf, end)
    return items, pos


def _block_count(buf: bytes, pos: int) -> tuple[int, int]:
    """A map's or array's next block count; a negative one is followed by the block's byte
    size (unused). fastavro negates in 64 bits, so -2**63 stays negative: an empty block
    that does not end the map, and the next count is read."""
    while True:
        count, pos = _varint(buf, pos)
        if count >= 0:
            return count, pos
        _, pos = _varint(buf, pos)
        if count != _MIN_LONG:
            return -count, pos


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint of any length (an event time takes 6 bytes)."""
    n = 0
    for shift in _SHIFTS:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
    return _overlong(buf, pos, n, 63)


def _overlong(buf: bytes, pos: int, n: int, shift: int) -> tuple[int, int]:
    """From a varint's 10th byte on, as fastavro's read_long decodes it: each byte's 7
    bits shifted by (7 * i) mod 64 into an unsigned 64-bit value (its C shift)."""
    while True:
        b = buf[pos]
        pos += 1
        n = (n | ((b & 0x7F) << (shift & 63))) & _MASK64
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
