# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The read path's per-value loops, compiled: the same results as the Python loops
they stand in for (vahini.codecs.loops picks one or the other), without a Python
step per key, string or id. Each returns None where its input is anything but the
common well-formed case; the caller then runs the Python loop, which raises the
precise error."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
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
