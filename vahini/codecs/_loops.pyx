# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The hot paths' per-value loops, compiled: the same results as the Python loops
they stand in for (vahini.codecs.loops picks one or the other), without a Python
step per key, string or id. Each returns None where its input is anything but the
common well-formed case; the caller then runs the Python loop, which raises the
precise error."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.string cimport memcmp, memcpy
from zlib import crc32

cdef bytes _EMPTY = b""


cdef inline list _as_list(values):
    return values if type(values) is list else list(values)


def unwrap_entries(entries, Py_ssize_t header_len, Py_ssize_t tag_at, unsigned char value_tag,
                   unsigned char no_row_tag):
    """For each cache entry: the bytes after its header where its tag is `value_tag`,
    b"" where it is `no_row_tag`, None for any other tag, a short entry or None."""
    cdef list values = _as_list(entries)
    cdef Py_ssize_t i, n = len(values), size
    cdef list out = [None] * n
    cdef const char* p
    cdef unsigned char tag
    for i in range(n):
        v = values[i]
        if v is None:
            continue
        if type(v) is not bytes:
            v = bytes(v)
        size = PyBytes_GET_SIZE(v)
        if size < header_len:
            continue
        p = PyBytes_AS_STRING(v)
        tag = <unsigned char>p[tag_at]
        if tag == value_tag:
            out[i] = PyBytes_FromStringAndSize(p + header_len, size - header_len)
        elif tag == no_row_tag:
            out[i] = _EMPTY
    return out


def fixed_prefixes(of_blobs, Py_ssize_t size, bytes head):
    """The first `size` bytes of every blob, back to back; None if a blob is not bytes,
    is shorter, or does not start with `head`."""
    cdef list blobs = _as_list(of_blobs)
    cdef Py_ssize_t i, n = len(blobs), head_len = PyBytes_GET_SIZE(head)
    if head_len > size:
        return None
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n * size)
    cdef char* dst = PyBytes_AS_STRING(out)
    cdef const char* expected = PyBytes_AS_STRING(head)
    cdef const char* p
    for i in range(n):
        b = blobs[i]
        if type(b) is not bytes or PyBytes_GET_SIZE(b) < size:
            return None
        p = PyBytes_AS_STRING(b)
        if memcmp(p, expected, head_len) != 0:
            return None
        memcpy(dst + i * size, p, size)
    return out


cdef inline unsigned int _u32_le(const unsigned char* p) noexcept nogil:
    return p[0] | (p[1] << 8) | (p[2] << 16) | (<unsigned int>p[3] << 24)


def string_columns(of_blobs, Py_ssize_t start, Py_ssize_t count):
    """The first `count` length-prefixed (u32 LE) UTF-8 strings from offset `start` of
    every blob, one list per string; None if a blob is not bytes, is truncated, or
    has a string that is not UTF-8."""
    cdef list blobs = _as_list(of_blobs)
    cdef Py_ssize_t i, j, n = len(blobs), offset, size, length
    cdef list columns = [[None] * n for _ in range(count)]
    cdef const unsigned char* p
    for i in range(n):
        b = blobs[i]
        if type(b) is not bytes:
            return None
        p = <const unsigned char*>PyBytes_AS_STRING(b)
        size = PyBytes_GET_SIZE(b)
        offset = start
        for j in range(count):
            if offset < 0 or offset + 4 > size:
                return None
            length = _u32_le(p + offset)
            if length > size - offset - 4:
                return None
            try:
                value = PyUnicode_DecodeUTF8(<const char*>p + offset + 4, length, NULL)
            except UnicodeDecodeError:
                return None
            (<list>columns[j])[i] = value
            offset += 4 + length
    return columns


def hash_buckets(of_ids, unsigned long buckets, dict crcs, float[::1] out):
    """out[i] = 1 + CRC-32(ids[i] as UTF-8) % buckets, 0 for an empty id. `crcs` memoises
    the CRC of each id across calls (the caller bounds it); ids must be str."""
    cdef list ids = _as_list(of_ids)
    cdef Py_ssize_t i, n = len(ids)
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} slots for {n} ids")
    for i in range(n):
        key = ids[i]
        if not key:
            out[i] = 0
            continue
        crc = crcs.get(key)
        if crc is None:
            crc = crcs[key] = crc32((<str?>key).encode())
        out[i] = 1 + (<unsigned long>crc) % buckets


cdef inline Py_ssize_t _decimal_len(Py_ssize_t v) noexcept nogil:
    cdef Py_ssize_t digits = 1
    while v >= 10:
        v //= 10
        digits += 1
    return digits


cdef inline char* _put_header(char* at, char kind, Py_ssize_t v) noexcept nogil:
    """`kind`, the decimal digits of v (>= 0), CRLF; returns where the next byte goes."""
    cdef Py_ssize_t digits = _decimal_len(v), i
    at[0] = kind
    for i in range(digits, 0, -1):
        at[i] = <char>(48 + v % 10)
        v //= 10
    at[digits + 1] = 13
    at[digits + 2] = 10
    return at + digits + 3


def redis_command(args):
    """A Redis command as RESP: an array of bulk strings, str arguments as UTF-8 and ints in
    decimal (what hiredis.pack_command writes, without its sprintf per argument); None
    if an argument is of any other type."""
    cdef list parts = _as_list(args)
    cdef Py_ssize_t i, n = len(parts), size, total = 3 + _decimal_len(n)
    cdef const char* data
    if n == 0:
        return None
    for i in range(n):
        part = parts[i]
        if type(part) is str:
            PyUnicode_AsUTF8AndSize(part, &size)  # cached on the str: read again below
        elif type(part) is bytes:
            size = PyBytes_GET_SIZE(part)
        elif type(part) is int:
            if parts is args:  # the caller's list stays as it was
                parts = list(parts)
            part = parts[i] = str(part).encode()
            size = PyBytes_GET_SIZE(part)
        else:
            return None
        total += 3 + _decimal_len(size) + size + 2
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* at = _put_header(PyBytes_AS_STRING(out), 42, n)  # '*'
    for i in range(n):
        part = parts[i]
        if type(part) is str:
            data = PyUnicode_AsUTF8AndSize(part, &size)
        else:
            data = PyBytes_AS_STRING(part)
            size = PyBytes_GET_SIZE(part)
        at = _put_header(at, 36, size)  # '$'
        memcpy(at, data, size)
        at[size] = 13
        at[size + 1] = 10
        at += size + 2
    return out


def lookup_into(of_items, dict mapping, long long default, long long[::1] out):
    """out[i] = mapping.get(items[i], default), for int values: np.fromiter over
    map(mapping.get, ...) packs each item through numpy's generic path."""
    cdef list items = _as_list(of_items)
    cdef Py_ssize_t i, n = len(items)
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} slots for {n} items")
    for i in range(n):
        found = mapping.get(items[i])
        out[i] = default if found is None else <long long>found
