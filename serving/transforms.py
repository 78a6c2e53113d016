"""The transforms a model graph can apply to a column, on whole columns at once.

Each takes the source values of every row (defaults already in place where a
value is absent) and a mask of the rows whose value is present (None: every
row's), and returns a float32 block of shape (rows, width). Where the value is absent, a column's
`default` wins when it is set; otherwise log1p, clip and bucketize transform the
feature's default, and the others give 0.

`hash_bucket` is the one a trainer must reproduce: 1 + CRC-32 of the id's UTF-8
bytes modulo the bucket count (zlib.crc32, the same in every language); 0 is
left for padding and missing ids.
"""

from __future__ import annotations

import zlib
from collections import Counter
from functools import lru_cache
from itertools import repeat
from typing import Sequence

import numpy as np

from vahini import fast_paths
from vahini.codecs import loops
from vahini.codecs.loops import looked_up
from vahini.registry.model import AGE_UNITS_MS, Column

compiled = fast_paths.bind(__name__, "compiled", loops.built)  # None while fast paths are off

INT32_LIMIT = 2**31 - 1
# Transforms whose output for an absent value is the column's default or 0, not
# the transform of the feature's default (a hash of "" or an age of 0 ms means nothing).
ZERO_WHEN_ABSENT = ("one_hot", "ratio", "age", "hash", "count_matching")


def hash_bucket(ids: Sequence[str], buckets: int) -> np.ndarray:
    """1..buckets for each id; 0 for an empty id."""
    if compiled is not None:
        out = np.empty(len(ids), np.float32)
        if len(_CRCS) > _CRCS_KEPT:
            _CRCS.clear()
        compiled.hash_buckets(ids, buckets, _CRCS, out)
        return out
    return _hash_bucket_in_python(ids, buckets)


# The CRC of each id hashed lately: the same products, categories and brands come back
# request after request. Bounded by starting over.
_CRCS: dict[str, int] = {}
_CRCS_KEPT = 200_000


def _hash_bucket_in_python(ids: Sequence[str], buckets: int) -> np.ndarray:
    """Each distinct id is hashed once: a context feature repeats on every row, and
    candidates share categories."""
    bucket = {i: 1 + zlib.crc32(i.encode()) % buckets for i in set(ids) if i}
    return np.fromiter(map(bucket.get, ids, repeat(0)), np.float32, len(ids))  # map: no Python frame per id


def scalar(c: Column, values: np.ndarray, present: np.ndarray | None, **extra) -> np.ndarray:
    """The block of a column whose source is a lookup's feature (see the module doc).
    `now_ms` (for `age`) is one moment, or one per row (a training set's rows)."""
    if compiled is not None and values.ndim == 1 and np.ndim(extra.get("now_ms", 0)) == 0:  # one moment for all rows
        block = _compiled_one_hot(c, values, present) if c.transform == "one_hot" else \
            _compiled_scalar(c, values, present, **extra) if c.transform in compiled.TRANSFORM_KINDS else None
        if block is not None:
            return block
    if present is None and c.transform == "ratio":  # a zero denominator makes a row absent
        present = np.ones(len(values), bool)
    block = _TRANSFORMS[c.transform](c, values, present, **extra)
    block = block.reshape(len(values), -1).astype(np.float32, copy=False)
    if _fills_absent(c, present):
        absent = ~present
        if absent.any():
            block[absent] = _fill(c)
    return as_dtype(c, block)


def _compiled_scalar(c: Column, values: np.ndarray, present: np.ndarray | None, *, now_ms: int = 0,
                     over=None) -> np.ndarray | None:
    """scalar() in one compiled pass for the numeric transforms; None where it cannot
    read the values (a vector, strings), and the numpy path runs."""
    over_values, over_present = over if over is not None else (None, None)
    lo, hi = (c.args[0], c.args[1]) if c.transform == "clip" else \
        (now_ms, AGE_UNITS_MS[c.args[0]]) if c.transform == "age" else (0.0, 1.0)
    fills = c.transform == "ratio" or _fills_absent(c, present)  # ratio: a zero denominator makes a row absent
    out = np.empty(len(values), np.float32)
    if not compiled.scalar_into(compiled.TRANSFORM_KINDS[c.transform], values, present, over_values, over_present,
                                lo, hi, _boundaries(c), _fill(c), fills, c.dtype == "int32", out):
        return None
    return out.reshape(len(values), 1)


def _compiled_one_hot(c: Column, values: np.ndarray, present: np.ndarray | None) -> np.ndarray | None:
    position = _one_hot_positions(c.args[0])
    labels = as_strings(values)
    fill = float(as_dtype(c, np.full(1, _fill(c), np.float32))[0])
    out = np.zeros((len(values), len(position)), np.float32)
    return out if compiled.one_hot_into(labels, position, present, fill, present is not None, out) else None


def _fills_absent(c: Column, present) -> bool:
    """Whether rows whose value is absent take the column's default (or 0), rather than
    the transform of the feature's default."""
    return present is not None and (c.default is not None or c.transform in ZERO_WHEN_ABSENT)


def _fill(c: Column) -> float:
    return 0.0 if c.default is None else c.default


def as_strings(values: np.ndarray) -> list[str]:
    """Strings as they are; other values as str() gives them (what one-hot values and hashed ids match)."""
    return values.tolist() if values.dtype == object else list(map(str, values.tolist()))


def _boundaries(c: Column) -> np.ndarray | None:
    return _float64s(c.args[0]) if c.transform == "bucketize" else None


@lru_cache(maxsize=1024)
def _float64s(values: tuple) -> np.ndarray:
    return np.asarray(values, np.float64)


def as_dtype(c: Column, block: np.ndarray) -> np.ndarray:
    if c.dtype == "int32":
        return np.clip(np.rint(block), -INT32_LIMIT, INT32_LIMIT).astype(np.float32)
    return block


def _plain(c: Column, values: np.ndarray, present: np.ndarray, **_) -> np.ndarray:
    return values.astype(np.float32)


def _log1p(c: Column, values: np.ndarray, present: np.ndarray, **_) -> np.ndarray:
    return np.log1p(np.maximum(values.astype(np.float64), 0.0))  # negative counts and prices count as 0


def _clip(c: Column, values: np.ndarray, present: np.ndarray, **_) -> np.ndarray:
    return np.clip(values.astype(np.float64), c.args[0], c.args[1])


def _bucketize(c: Column, values: np.ndarray, present: np.ndarray, **_) -> np.ndarray:
    """0 below the first boundary, i for boundaries[i-1] <= x < boundaries[i]."""
    return np.searchsorted(_float64s(c.args[0]), values.astype(np.float64), side="right")


def _one_hot(c: Column, values: np.ndarray, present: np.ndarray, **_) -> np.ndarray:
    position = _one_hot_positions(c.args[0])
    index = looked_up(as_strings(values), position, -1)
    out = np.zeros((len(values), len(position)), np.float32)
    hit = index >= 0 if present is None else (index >= 0) & present
    out[np.flatnonzero(hit), index[hit]] = 1.0
    return out


@lru_cache(maxsize=1024)
def _one_hot_positions(values: tuple) -> dict[str, int]:
    return {str(v): i for i, v in enumerate(values)}


def _ratio(c: Column, values: np.ndarray, present: np.ndarray, *, over=None, **_) -> np.ndarray:
    denominator, denominator_present = over
    a, b = values.astype(np.float64), denominator.astype(np.float64)
    ok = present & (b != 0)
    if denominator_present is not None:
        ok &= denominator_present
    present &= ok  # a missing or zero denominator reads as an absent value: default
    return np.divide(a, b, out=np.zeros_like(a), where=ok)


def _age(c: Column, values: np.ndarray, present: np.ndarray, *, now_ms: int = 0, **_) -> np.ndarray:
    return (now_ms - values.astype(np.float64)) / AGE_UNITS_MS[c.args[0]]


def _hash(c: Column, values: np.ndarray, present: np.ndarray | None, **_) -> np.ndarray:
    ids = as_strings(values)
    if present is not None:
        ids = [i if p else "" for i, p in zip(ids, present.tolist())]
    return hash_bucket(ids, c.args[0])


_TRANSFORMS = {"": _plain, "log1p": _log1p, "clip": _clip, "bucketize": _bucketize, "one_hot": _one_hot,
               "ratio": _ratio, "age": _age, "hash": _hash}


def sequence(c: Column, ids: list[str], match: list[str | None] | None, rows: int) -> np.ndarray:
    """The block of a column whose source is a sequence (the same ids for every row):
    `hash` gives one column per position, in a single row that every row shares;
    `count_matching` how many ids equal each row's `match` value, a row per row."""
    if c.transform == "hash":
        return hash_bucket(ids, c.args[0]).reshape(1, len(ids))
    counts = dict(Counter(ids))
    counts.pop("", None)  # padding matches nothing
    block = looked_up(match, counts, 0).astype(np.float32).reshape(rows, 1)
    return as_dtype(c, block)
