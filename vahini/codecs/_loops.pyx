# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The hot paths' per-value loops, compiled: the same results as the Python loops
they stand in for (vahini.codecs.loops picks one or the other), without a Python
step per key, value or id. Where an input is not the common well-formed case (a
damaged blob, a type the loop does not read), a loop says so with None or False
and the caller runs the Python loop, which gives the precise error; arguments no
caller sends (mismatched lengths, a bad offset) raise."""

from cpython.buffer cimport PyBUF_RECORDS, PyBUF_RECORDS_RO, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.math cimport log1p, rintf
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
    if not 0 <= tag_at < header_len:
        raise ValueError(f"the tag at {tag_at} is not within the {header_len}-byte header")
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


cdef inline char _kind(const char* fmt) noexcept nogil:
    """The struct code of a native or little-endian buffer format ('d', 'f', 'q', ...), else 0."""
    if fmt == NULL:
        return 66  # 'B': unsigned bytes, as the buffer protocol means by no format
    if fmt[0] == 60 or fmt[0] == 61 or fmt[0] == 64:  # '<', '=', '@'
        fmt += 1
    return fmt[0] if fmt[0] != 0 and fmt[1] == 0 else 0


cdef inline Py_ssize_t _itemsize(char kind) noexcept nogil:
    """The item size of the kinds take_rows_into reads; 0 for any other."""
    if kind == 100 or kind == 113 or kind == 108:  # 'd', 'q', 'l'
        return 8
    if kind == 102 or kind == 105:  # 'f', 'i'
        return 4
    return 1 if kind == 63 else 0  # '?'


cdef inline float _as_float(const char* at, char kind) noexcept nogil:
    if kind == 100:  # 'd'
        return <float>(<const double*>at)[0]
    if kind == 102:  # 'f'
        return (<const float*>at)[0]
    if kind == 113 or kind == 108:  # 'q', 'l': int64 (itemsize checked by the caller)
        return <float>(<const long long*>at)[0]
    if kind == 105:  # 'i'
        return <float>(<const int*>at)[0]
    return 1.0 if at[0] else 0.0  # '?'


def take_rows_into(out, Py_ssize_t first, source, index):
    """out[i, first + k] = source[index[i], k] as float32, for every row i of `out` (a
    C-contiguous float32 matrix): a column's values, gathered by row and cast into
    its slot in one pass. `source` is (keys,) or (keys, width) of float64, float32,
    int64, int32 or bool, strided as it may be; `index` int64. Returns False, having
    written nothing, for any other kind of source."""
    cdef Py_buffer o, s, x
    PyObject_GetBuffer(out, &o, PyBUF_RECORDS)
    try:
        PyObject_GetBuffer(source, &s, PyBUF_RECORDS_RO)
        try:
            PyObject_GetBuffer(index, &x, PyBUF_RECORDS_RO)
            try:
                return _take(&o, first, &s, &x)
            finally:
                PyBuffer_Release(&x)
        finally:
            PyBuffer_Release(&s)
    finally:
        PyBuffer_Release(&o)


cdef bint _take(Py_buffer* o, Py_ssize_t first, Py_buffer* s, Py_buffer* x) except -1:
    cdef char kind = _kind(s.format)
    cdef Py_ssize_t width = s.shape[1] if s.ndim == 2 else 1
    cdef Py_ssize_t i, k, row, rows = o.shape[0] if o.ndim == 2 else 0
    if o.ndim != 2 or _kind(o.format) != 102 or o.strides[1] != 4 or o.strides[0] != 4 * o.shape[1]:
        raise ValueError("out must be a C-contiguous float32 matrix")
    if x.ndim != 1 or x.itemsize != 8 or _kind(x.format) not in (113, 108) or x.shape[0] != rows:
        raise ValueError(f"index must be int64 with one entry per row of out ({rows})")
    if first < 0 or first + width > o.shape[1]:
        raise ValueError(f"columns {first}..{first + width - 1} are not all in out")
    if s.ndim not in (1, 2) or s.itemsize != _itemsize(kind):
        return False
    for i in range(rows):
        row = (<const long long*>(<const char*>x.buf + i * x.strides[0]))[0]
        if row < -s.shape[0] or row >= s.shape[0]:
            raise IndexError(f"index {row} is out of range for a source of {s.shape[0]} rows")
    # One loop per kind, chosen here, not one choice per value.
    if kind == 100:
        _gather(s, width, x, rows, <float*>o.buf + first, o.shape[1], <const double*>NULL)
    elif kind == 102:
        _gather(s, width, x, rows, <float*>o.buf + first, o.shape[1], <const float*>NULL)
    elif kind == 105:
        _gather(s, width, x, rows, <float*>o.buf + first, o.shape[1], <const int*>NULL)
    elif kind == 63:
        _gather(s, width, x, rows, <float*>o.buf + first, o.shape[1], <const unsigned char*>NULL)
    else:
        _gather(s, width, x, rows, <float*>o.buf + first, o.shape[1], <const long long*>NULL)
    return True


ctypedef fused _number:
    double
    float
    int
    long long
    unsigned char


cdef void _gather(Py_buffer* s, Py_ssize_t width, Py_buffer* x, Py_ssize_t rows, float* out, Py_ssize_t out_width,
                  const _number* kind) noexcept nogil:
    """out[i * out_width + k] = source[index[i], k], for a source of `_number` (indexes checked)."""
    cdef Py_ssize_t i, k, row
    cdef Py_ssize_t row_stride = s.strides[0], item_stride = s.strides[1] if s.ndim == 2 else 0
    cdef const char* at
    cdef float* dst
    for i in range(rows):
        row = (<const long long*>(<const char*>x.buf + i * x.strides[0]))[0]
        if row < 0:  # from the end, as numpy reads it
            row += s.shape[0]
        at = <const char*>s.buf + row * row_stride
        dst = out + i * out_width
        for k in range(width):
            if _number is uchar:
                dst[k] = 1.0 if (<const _number*>(at + k * item_stride))[0] else 0.0
            else:
                dst[k] = <float>(<const _number*>(at + k * item_stride))[0]


def all_bits_set(rows, bytes mask):
    """Whether every row of `rows` (a uint8 matrix, strided as it may be) has every bit of
    `mask` set: each blob's presence bitmap against the features a reader wants."""
    cdef Py_buffer b
    cdef Py_ssize_t i, k, width = PyBytes_GET_SIZE(mask)
    cdef const unsigned char* wanted = <const unsigned char*>PyBytes_AS_STRING(mask)
    cdef const unsigned char* row
    PyObject_GetBuffer(rows, &b, PyBUF_RECORDS_RO)
    try:
        if b.ndim != 2 or b.itemsize != 1 or b.shape[1] != width:
            raise ValueError(f"rows must be a uint8 matrix of {width} columns")
        for i in range(b.shape[0]):
            row = <const unsigned char*>b.buf + i * b.strides[0]
            for k in range(width):
                if row[k * b.strides[1]] & wanted[k] != wanted[k]:
                    return False
        return True
    finally:
        PyBuffer_Release(&b)


# The transforms scalar_into computes, as serving.transforms names them.
TRANSFORM_KINDS = {"": 0, "log1p": 1, "clip": 2, "bucketize": 3, "age": 4, "ratio": 5}


cdef inline double _as_double(const char* at, char kind) noexcept nogil:
    if kind == 100:  # 'd'
        return (<const double*>at)[0]
    if kind == 102:  # 'f'
        return (<const float*>at)[0]
    if kind == 113 or kind == 108:  # 'q', 'l'
        return <double>(<const long long*>at)[0]
    if kind == 105:  # 'i'
        return <double>(<const int*>at)[0]
    return 1.0 if at[0] else 0.0  # '?'


cdef inline double _bucket(double x, const double* bounds, Py_ssize_t n) noexcept nogil:
    """How many boundaries are <= x (numpy's searchsorted, side="right"; NaN after all)."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    if x != x:
        return <double>n
    while lo < hi:
        mid = (lo + hi) // 2
        if bounds[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return <double>lo


cdef class _Vector:
    """A 1-D buffer of one of the kinds _as_double reads, held for one call."""
    cdef Py_buffer view
    cdef bint held
    cdef char kind

    def __cinit__(self, source):
        self.held = False
        if source is None:
            return
        PyObject_GetBuffer(source, &self.view, PyBUF_RECORDS_RO)
        self.held = True
        self.kind = _kind(self.view.format)

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)

    cdef bint readable(self, Py_ssize_t n):
        """Held, one-dimensional, of n values of a kind _as_double reads."""
        return self.held and self.view.ndim == 1 and self.view.shape[0] == n and \
            self.view.itemsize == _itemsize(self.kind)

    cdef inline const char* at(self, Py_ssize_t i) noexcept nogil:
        return <const char*>self.view.buf + i * self.view.strides[0]


def scalar_into(int kind, values, present, over, over_present, double lo, double hi, bounds, double fill,
                bint fills, bint as_int32, float[::1] out):
    """One scalar transform of serving.transforms over a column's values, into `out`
    (float32), as its Python path computes it: in float64, cast to float32, `fill` where
    the value is absent (when `fills`), rounded and clipped to int32 (when `as_int32`).
    `lo`, `hi`: clip's bounds, or age's now (ms) and unit (ms). Returns False, having
    written nothing, when an input is not a 1-D buffer of one value per row."""
    cdef Py_ssize_t i, n = out.shape[0], nbounds = 0
    cdef _Vector x = _Vector(values), p = _Vector(present), y = _Vector(over), q = _Vector(over_present)
    cdef _Vector b = _Vector(bounds)
    cdef double v, d
    cdef float f
    cdef bint absent
    cdef const double* edges = NULL
    if not x.readable(n) or (p.held and (not p.readable(n) or p.kind != 63)):
        return False
    if kind == 5 and not (y.readable(n) and (not q.held or (q.readable(n) and q.kind == 63))):
        return False
    if kind == 3:
        if not (b.held and b.view.ndim == 1 and b.kind == 100 and b.view.strides[0] == 8):
            return False  # boundaries: contiguous float64
        edges, nbounds = <const double*>b.view.buf, b.view.shape[0]
    for i in range(n):
        absent = p.held and not p.at(i)[0]
        if kind == 0:
            f = _as_float(x.at(i), x.kind)
        else:
            v = _as_double(x.at(i), x.kind)
            if kind == 1:
                v = log1p(v if (v >= 0 or v != v) else 0.0)
            elif kind == 2:
                v = lo if v < lo else v
                v = hi if v > hi else v
            elif kind == 3:
                v = _bucket(v, edges, nbounds)
            elif kind == 4:
                v = (lo - v) / hi
            else:
                d = _as_double(y.at(i), y.kind)
                if d == 0 or (q.held and not q.at(i)[0]):
                    absent = True
                v = 0.0 if absent else v / d
            f = <float>v
        if fills and absent:
            f = <float>fill
        if as_int32:
            f = rintf(f)
            f = _INT32_LOW if f < _INT32_LOW else f
            f = _INT32_HIGH if f > _INT32_HIGH else f
        out[i] = f
    return True


cdef float _INT32_HIGH = <float>2147483647.0
cdef float _INT32_LOW = <float>-2147483647.0


def one_hot_into(labels, dict position, present, float fill, bint fills, float[:, ::1] out):
    """out[i, position[labels[i]]] = 1 for each row whose value is present, `out` being
    zeros (float32, rows x values); a label not in `position` marks nothing, and a row
    whose value is absent is all `fill` when `fills`. Returns False, having written
    nothing, when `present` is not one bool per row."""
    cdef list of_rows = _as_list(labels)
    cdef Py_ssize_t i, k, n = len(of_rows), width = out.shape[1]
    cdef _Vector p = _Vector(present)
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} rows for {n} labels")
    if p.held and not (p.readable(n) and p.kind == 63):
        return False
    for i in range(n):
        if p.held and not p.at(i)[0]:
            if fills:
                for k in range(width):
                    out[i, k] = fill
            continue
        found = position.get(of_rows[i])
        if found is not None:
            k = <Py_ssize_t>found
            if 0 <= k < width:
                out[i, k] = 1.0
    return True


def fence_entries(rows, str prefix, bytes tag):
    """FeatureCache.fence's entries for FeatureRows: cache key (prefix, entity, group and
    key apart by ':') -> the row's write timestamp as 20 decimal digits, then `tag`."""
    cdef dict out = {}
    cdef long long stamp
    cdef Py_ssize_t tag_len = PyBytes_GET_SIZE(tag)
    cdef bytes entry
    cdef char* p
    cdef int i
    for row in rows:
        stamp = <long long>row[3] * 1000 + <long long>(crc32(row[4]) % 1000)
        if stamp < 0:
            entry = b"%020d" % stamp + tag
        else:
            entry = PyBytes_FromStringAndSize(NULL, 20 + tag_len)
            p = PyBytes_AS_STRING(entry)
            for i in range(19, -1, -1):
                p[i] = <char>(48 + stamp % 10)
                stamp //= 10
            memcpy(p + 20, PyBytes_AS_STRING(tag), tag_len)
        out[f"{prefix}{<str>row[0]}:{<str>row[2]}:{<str>row[1]}"] = entry
    return out
