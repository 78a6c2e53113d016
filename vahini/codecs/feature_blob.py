"""The stored form of one feature group for one entity key.

Layout (little-endian):
    header   'VF' | format u8 | reserved u8 | schema version u32 | event time ms i64     16 bytes
    presence bitmap, one bit per feature in declared order (1 = sent, 0 = default)
    scalars  int64s, int32s, float64s, float32s, bools: each type contiguous, declared order
    vectors  float32 * dim for each vector feature, declared order
    strings  u32 length + UTF-8 bytes for each string feature, declared order

Fixed-width parts sit at offsets that depend only on the group's schema
version, so a reader maps them straight onto numpy arrays with np.frombuffer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Collection, Sequence

import numpy as np

from vahini import fast_paths
from vahini.codecs import loops
from vahini.errors import DecodeError
from vahini.registry.model import SCALAR_DTYPES, Feature

compiled = fast_paths.bind(__name__, "compiled", loops.built)  # None while fast paths are off

MAGIC = b"VF"
FORMAT = 1
_HEADER = struct.Struct("<2sBxIq")
# Registry scalar type -> struct code, in storage order; numpy dtypes come from SCALAR_DTYPES.
_SCALAR_ORDER = (("int", "q"), ("int32", "i"), ("float", "d"), ("float32", "f"), ("bool", "?"))
_U32 = struct.Struct("<I")
# Magic, format and the reserved zero byte of a blob's header, as the low half of the
# little-endian u64 whose high half is the schema version.
_HEAD = int.from_bytes(MAGIC + bytes([FORMAT, 0]), "little")


@dataclass(frozen=True)
class Layout:
    features: tuple[Feature, ...]
    order: tuple[Feature, ...]      # fixed-width features in storage order
    strings: tuple[Feature, ...]
    head_and_fixed: struct.Struct   # header, then bitmap + scalars + vectors: one pack per blob
    bitmap_len: int
    sections: tuple[tuple[str, np.dtype, int, int], ...]   # (type, numpy dtype, offset, count)
    vector_offset: int
    vector_dims: tuple[int, ...]


_LAYOUTS: dict[int, tuple[tuple[Feature, ...], Layout]] = {}


def layout_of(features: tuple[Feature, ...]) -> Layout:
    """The layout of a feature tuple, cached by identity: registries are long-lived and
    hashing a tuple of dataclasses on every event costs more than encoding it."""
    return _by_identity(_LAYOUTS, features, _layout_of)


def _by_identity(cache: dict[int, tuple[tuple[Feature, ...], Any]], features: tuple[Feature, ...], make) -> Any:
    entry = cache.get(id(features))
    if entry is not None and entry[0] is features:
        return entry[1]
    made = make(features)
    if len(cache) > 4096:
        cache.clear()
    cache[id(features)] = (features, made)  # holding `features` keeps its id from being reused
    return made


@lru_cache(maxsize=4096)
def _layout_of(features: tuple[Feature, ...]) -> Layout:
    bitmap_len = (len(features) + 7) // 8
    fmt, order, sections = [f"{bitmap_len}s"], [], []
    offset = _HEADER.size + bitmap_len
    for ftype, code in _SCALAR_ORDER:
        of_type = [f for f in features if f.type == ftype]
        dtype = SCALAR_DTYPES[ftype]
        sections.append((ftype, dtype, offset, len(of_type)))
        fmt.append(code * len(of_type))
        order.extend(of_type)
        offset += dtype.itemsize * len(of_type)
    vectors = [f for f in features if f.type == "vector"]
    fmt.append("".join(f"{f.dim}f" for f in vectors))
    order.extend(vectors)
    strings = tuple(f for f in features if f.type == "string")
    return Layout(features, tuple(order), strings, struct.Struct(_HEADER.format + "".join(fmt)), bitmap_len,
                  tuple(sections), offset, tuple(f.dim for f in vectors))


def encode(features: tuple[Feature, ...], version: int, event_time_ms: int, values: dict[str, Any]) -> bytes:
    """Values are already validated; missing or None values store the default."""
    layout = layout_of(features)
    bits = 0
    for i, f in enumerate(features):
        if values.get(f.name) is not None:
            bits |= 1 << i
    flat: list[Any] = [bits.to_bytes(layout.bitmap_len, "little")]
    for f in layout.order:
        v = values.get(f.name)
        if v is None:
            v = f.default
        if f.type == "vector":
            flat.extend(v)
        else:
            flat.append(v)
    return pack(layout, version, event_time_ms, flat,
                [f.default if (v := values.get(f.name)) is None else v for f in layout.strings])


def scalar_packer(features: tuple[Feature, ...], version: int) -> Callable[[int, Sequence[Any]], bytes]:
    """For a group of scalar features only: (event time ms, every value in declared
    order) -> the blob `encode` makes of them, all present, in one struct call. The
    interaction worker writes its windowed counts with it (a row per user per batch)."""
    layout = layout_of(features)
    if layout.strings or layout.vector_dims:
        raise ValueError("scalar_packer takes scalar features only")
    bits = ((1 << len(features)) - 1).to_bytes(layout.bitmap_len, "little")
    position = {f.name: i for i, f in enumerate(features)}  # layouts are cached by equality: not by id
    order = [position[f.name] for f in layout.order]
    head_and_fixed = layout.head_and_fixed.pack
    if order == sorted(order):  # storage order is declared order (one scalar type, say)
        return lambda event_time_ms, values: head_and_fixed(MAGIC, FORMAT, version, event_time_ms, bits, *values)
    return lambda event_time_ms, values: head_and_fixed(MAGIC, FORMAT, version, event_time_ms, bits,
                                                        *[values[i] for i in order])


def pack(layout: Layout, version: int, event_time_ms: int, flat: list[Any], strings) -> bytes:
    """The blob from its parts: `flat` is the presence bitmap then the fixed-width values
    in storage order, `strings` the string values in declared order."""
    head = layout.head_and_fixed.pack(MAGIC, FORMAT, version, event_time_ms, *flat)
    if not layout.strings:
        return head
    parts = [head]
    for v in strings:
        raw = v.encode()
        parts.append(_U32.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def read_header(blob: bytes) -> tuple[int, int]:
    """(schema version, event time ms) without decoding the values."""
    if len(blob) < _HEADER.size:
        raise DecodeError(f"feature blob of {len(blob)} bytes is shorter than its header")
    magic, fmt, version, event_time_ms = _HEADER.unpack_from(blob)
    if magic != MAGIC or fmt != FORMAT:
        raise DecodeError(f"not a feature blob (magic {magic!r}, format {fmt})")
    return version, event_time_ms


@dataclass(frozen=True)
class DecodedGroup:
    """One stored group row: numeric arrays are zero-copy views of the blob."""

    version: int
    event_time_ms: int
    present: np.ndarray                 # bool per feature, declared order
    scalars: dict[str, np.ndarray]      # registry type -> values of that type, declared order
    vectors: tuple[np.ndarray, ...]     # float32 arrays, declared order
    strings: tuple[str, ...]
    layout: Layout

    def as_dict(self) -> dict[str, Any]:
        """Feature name -> Python value (for people and JSON; serving uses the arrays)."""
        it = {t: iter(a.tolist()) for t, a in self.scalars.items()}
        vec, strs = iter(self.vectors), iter(self.strings)
        out = {}
        for f in self.layout.features:
            if f.type == "vector":
                out[f.name] = next(vec).tolist()
            elif f.type == "string":
                out[f.name] = next(strs)
            else:
                out[f.name] = next(it[f.type])
        return out


def decode(blob: bytes, features: tuple[Feature, ...]) -> DecodedGroup:
    """Decode with the features of the blob's schema version (see read_header)."""
    version, event_time_ms = read_header(blob)
    layout = layout_of(features)
    end = layout.vector_offset + 4 * sum(layout.vector_dims)
    if len(blob) < end:
        raise DecodeError(f"feature blob truncated: {len(blob)} bytes, layout needs at least {end}")
    bitmap = np.frombuffer(blob, np.uint8, layout.bitmap_len, _HEADER.size)
    present = np.unpackbits(bitmap, bitorder="little")[: len(features)].astype(bool)
    scalars = {t: np.frombuffer(blob, dtype, n, off) for t, dtype, off, n in layout.sections}
    vectors, off = [], layout.vector_offset
    for dim in layout.vector_dims:
        vectors.append(np.frombuffer(blob, "<f4", dim, off))
        off += 4 * dim
    strings = [column[0] for column in _string_columns([blob], off, len(layout.strings))]
    return DecodedGroup(version, event_time_ms, present, scalars, tuple(vectors), tuple(strings), layout)


def _row_dtype(features: tuple[Feature, ...]) -> np.dtype:
    """A packed numpy record type for the fixed-width prefix of a blob of these features."""
    return _by_identity(_ROW_DTYPES, features, _row_dtype_of)


_ROW_DTYPES: dict[int, tuple[tuple[Feature, ...], np.dtype]] = {}


def _row_dtype_of(features: tuple[Feature, ...]) -> np.dtype:
    layout = layout_of(features)
    names: list[str] = ["head_and_version", "event_time_ms", "bitmap"]
    formats: list[object] = ["<u8", "<i8", (np.uint8, layout.bitmap_len)]
    offsets: list[int] = [0, 8, _HEADER.size]
    for ftype, dtype, offset, count in layout.sections:
        of_type = [f for f in layout.order if f.type == ftype]
        for i, f in enumerate(of_type[:count]):
            names.append(f.name)
            formats.append(dtype)
            offsets.append(offset + i * dtype.itemsize)
    offset = layout.vector_offset
    for f in (f for f in layout.order if f.type == "vector"):
        names.append(f.name)
        formats.append(("<f4", (f.dim,)))
        offsets.append(offset)
        offset += 4 * f.dim
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": offset})


class DecodedColumns:
    """Many blobs of one schema version, decoded column by column."""

    def __init__(self, event_time_ms: np.ndarray, bitmap: np.ndarray, columns: dict[str, np.ndarray],
                 feature_count: int):
        self.event_time_ms = event_time_ms  # int64 per blob
        self.columns = columns  # feature name -> (blobs,) or (blobs, dim); strings: object array
        self._bitmap = bitmap  # uint8 (blobs, bitmap bytes)
        self._feature_count = feature_count
        self._present: np.ndarray | None = None

    @property
    def present(self) -> np.ndarray:
        """bool (blobs, features), declared order: whether each value was sent."""
        if self._present is None:
            bits = np.unpackbits(self._bitmap, axis=1, bitorder="little")
            self._present = bits[:, : self._feature_count].astype(bool)
        return self._present

    def all_sent(self, positions: tuple[int, ...]) -> bool:
        """Whether every blob has the features at these declared positions sent: one
        comparison of the bitmaps, without unpacking them."""
        mask = _bitmap_mask(positions, self._bitmap.shape[1])
        if compiled is not None:
            return compiled.all_bits_set(self._bitmap, mask)
        wanted = np.frombuffer(mask, np.uint8)
        return bool(((self._bitmap & wanted) == wanted).all())


@lru_cache(maxsize=4096)
def _bitmap_mask(positions: tuple[int, ...], length: int) -> bytes:
    mask = bytearray(length)
    for p in positions:
        mask[p // 8] |= 1 << (p % 8)
    return bytes(mask)


def decode_many(blobs: list[bytes], features: tuple[Feature, ...],
                strings: Collection[str] | None = None) -> DecodedColumns:
    """Decode blobs written under the same schema version in one numpy pass over
    their fixed-width prefixes; only string features are parsed one by one, and of
    those only `strings` when given (the others are left out of `columns`)."""
    row = _row_dtype(features)
    if any(len(b) < row.itemsize for b in blobs):
        raise DecodeError(f"feature blob shorter than its layout ({row.itemsize} bytes)")
    return _columns(_records(blobs, row), blobs, features, strings)


def decode_version(blobs: list[bytes], features: tuple[Feature, ...], version: int,
                   strings: Collection[str] | None = None) -> DecodedColumns | None:
    """decode_many for blobs expected to be well-formed blobs of schema `version`
    (`features` being its layout), checked for all of them at once; None if any is
    not, and the caller sorts them out one by one. The read path's common case:
    every value written under the group's current version."""
    row = _row_dtype(features)
    if not blobs:
        return None
    if compiled is not None:
        prefixes = compiled.fixed_prefixes(blobs, row.itemsize, _head_of(version))
        return None if prefixes is None else _columns(np.frombuffer(prefixes, row), blobs, features, strings)
    if min(map(len, blobs)) < row.itemsize:
        return None
    records = _records(blobs, row)
    if not (records["head_and_version"] == _HEAD | version << 32).all():
        return None
    return _columns(records, blobs, features, strings)


@lru_cache(maxsize=1024)
def _head_of(version: int) -> bytes:
    """The first 8 bytes of every blob of schema `version`."""
    return (_HEAD | version << 32).to_bytes(8, "little")


def _records(blobs: list[bytes], row: np.dtype) -> np.ndarray:
    size = row.itemsize
    return np.frombuffer(b"".join([b[:size] for b in blobs]), dtype=row)


def _columns(records: np.ndarray, blobs: list[bytes], features: tuple[Feature, ...],
             strings: Collection[str] | None) -> DecodedColumns:
    layout = layout_of(features)
    columns = {f.name: records[f.name] for f in layout.order}
    wanted = [j for j, f in enumerate(layout.strings) if strings is None or f.name in strings]
    if wanted:  # strings are read in order: up to the last wanted one
        values = _string_columns(blobs, records.dtype.itemsize, wanted[-1] + 1)
        for j in wanted:
            columns[layout.strings[j].name] = np.array(values[j], dtype=object)
    return DecodedColumns(records["event_time_ms"].astype(np.int64), records["bitmap"], columns, len(features))


def _string_columns(blobs: list[bytes], start: int, count: int) -> list[list[str]]:
    """The first `count` strings of every blob, one list per string feature: a single
    loop over all blobs, since this runs for every string-keyed row a server reads."""
    if compiled is not None:
        built = compiled.string_columns(blobs, start, count)
        if built is not None:
            return built  # else a blob is malformed: the loop below says how
    columns: list[list[str]] = [[] for _ in range(count)]
    unpack = _U32.unpack_from
    try:
        for blob in blobs:
            offset = start
            for column in columns:
                end = offset + 4 + unpack(blob, offset)[0]
                column.append(blob[offset + 4:end].decode())
                offset = end
            if offset > len(blob):
                raise DecodeError(f"feature blob truncated: its strings need {offset} bytes, it has {len(blob)}")
    except (struct.error, UnicodeDecodeError) as exc:
        raise DecodeError(f"feature blob has an unreadable string: {exc}") from None
    return columns
