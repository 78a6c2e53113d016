# cython: language_level=3, boundscheck=False, wraparound=False
"""Interactions written with exactly vahini.codecs.interaction_reader.SCHEMA, read and
checked in one pass: the interaction worker's per-event decode, without fastavro's
Python-level dispatch or a dict per event.

A message it cannot take as it is (another writer schema, anything malformed or
unusual, an event that fails a check) gives None, and the worker reads that message
the general way (AvroCodec.decode, validation.check_interaction_ids), which gives the
precise error. So this reader never has to be right about an error, only about what
it accepts: tests/codecs/test_interaction_reader.py checks every message it accepts
against the general way, on valid, crafted and fuzzed input."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcmp


cdef inline bint _long(const unsigned char* p, Py_ssize_t size, Py_ssize_t* pos, long long* out):
    """A zig-zag varint of at most 10 bytes, the 10th no more than its one meaningful bit."""
    cdef unsigned long long acc = 0
    cdef int shift = 0
    cdef unsigned char b
    while True:
        if pos[0] >= size:
            return False
        b = p[pos[0]]
        pos[0] += 1
        if shift == 63 and b > 1:
            return False
        acc |= (<unsigned long long>(b & 0x7f)) << shift
        if not b & 0x80:
            break
        shift += 7
    out[0] = <long long>((acc >> 1) ^ (0ULL - (acc & 1ULL)))
    return True


cdef inline object _string(const unsigned char* p, Py_ssize_t size, Py_ssize_t* pos, long long max_bytes):
    """A string of at most `max_bytes` UTF-8 bytes (-1: any), or None."""
    cdef long long n
    if not _long(p, size, pos, &n) or n < 0 or n > size - pos[0] or (max_bytes >= 0 and n > max_bytes):
        return None
    try:
        text = PyUnicode_DecodeUTF8(<const char*>p + pos[0], n, NULL)
    except UnicodeDecodeError:
        return None
    pos[0] += n
    return text


cdef object _attributes(const unsigned char* p, Py_ssize_t size, Py_ssize_t* pos):
    """map<string, string> in blocks, or None."""
    cdef dict out = {}
    cdef long long count, block_bytes, i
    while True:
        if not _long(p, size, pos, &count):
            return None
        if count == 0:
            return out
        if count < 0:  # a negative count is followed by the block's size in bytes
            if count == -9223372036854775807 - 1 or not _long(p, size, pos, &block_bytes):
                return None
            count = -count
        if count > size - pos[0]:  # each entry takes at least two bytes
            return None
        for i in range(count):
            key = _string(p, size, pos, -1)
            if key is None:
                return None
            value = _string(p, size, pos, -1)
            if value is None:
                return None
            out[key] = value


def read_many(values, bytes header, tuple symbols, long long max_key_bytes, long long max_event_time_ms,
              make):
    """For each message: make(event_id, user_id, product_id, category_id, type,
    event_time_ms, attributes) when it starts with `header` and is a well-formed body
    of the schema whose ids are 1 to max_key_bytes bytes (the user's at least one) and
    whose event time is at most max_event_time_ms; None for any other."""
    cdef list out = []
    cdef Py_ssize_t header_len = PyBytes_GET_SIZE(header), size, pos
    cdef const unsigned char* p
    cdef long long union_index, kind, event_time_ms
    for value in values:
        item = None
        if type(value) is bytes and PyBytes_GET_SIZE(value) > header_len \
                and memcmp(PyBytes_AS_STRING(value), PyBytes_AS_STRING(header), header_len) == 0:
            p = <const unsigned char*>PyBytes_AS_STRING(value)
            size = PyBytes_GET_SIZE(value)
            pos = header_len
            item = _interaction(p, size, &pos, symbols, max_key_bytes, max_event_time_ms, make)
        out.append(item)
    return out


cdef object _interaction(const unsigned char* p, Py_ssize_t size, Py_ssize_t* pos, tuple symbols,
                         long long max_key_bytes, long long max_event_time_ms, make):
    cdef long long union_index, kind, event_time_ms
    event_id = _string(p, size, pos, max_key_bytes)
    if event_id is None:
        return None
    user_id = _string(p, size, pos, max_key_bytes)
    if not user_id:  # None, or empty: the general way says why
        return None
    product_id = _string(p, size, pos, max_key_bytes)
    if product_id is None or not _long(p, size, pos, &union_index):
        return None
    if union_index == 0:
        category_id = None
    elif union_index == 1:
        category_id = _string(p, size, pos, max_key_bytes)
        if category_id is None:
            return None
    else:
        return None
    if not _long(p, size, pos, &kind) or kind < 0 or kind >= len(symbols):
        return None
    if not _long(p, size, pos, &event_time_ms) or event_time_ms > max_event_time_ms:
        return None
    attributes = _attributes(p, size, pos)
    if attributes is None or pos[0] != size:  # trailing bytes
        return None
    return make(event_id, user_id, product_id, category_id, symbols[kind], event_time_ms, attributes)
