"""The compiled hot-path loops (vahini.codecs._loops), or None where they were not
built: pip builds them from _loops.pyx when a C compiler is at hand, and every
caller keeps the Python loop they stand in for. tests/codecs/test_loops.py checks
that both give the same results, and that CI runs the compiled ones."""

from __future__ import annotations

from itertools import repeat
from typing import Sequence

import numpy as np

from vahini import fast_paths

try:
    from vahini.codecs import _loops as built  # type: ignore[attr-defined]  # compiled: no stub
except ImportError:  # installed without a C compiler: the Python loops serve alone
    built = None
compiled = fast_paths.bind(__name__, "compiled", built)  # None while fast paths are off


def looked_up(items: Sequence, mapping: dict, default: int) -> np.ndarray:
    """int64 array of mapping.get(item, default) for each item (a plain dict of ints)."""
    if compiled is not None:
        out = np.empty(len(items), np.int64)
        compiled.lookup_into(items, mapping, default, out)
        return out
    return np.fromiter(map(mapping.get, items, repeat(default)), np.int64, len(items))


def take_rows_into(out: np.ndarray, first: int, source: np.ndarray, index: np.ndarray) -> None:
    """out[i, first:first + width] = source[index[i]] for every row i of `out` (float32):
    a column gathered by row and cast into its slot, without the temporaries of numpy's
    fancy indexing. `source` is (keys,) or (keys, width); `index` int64 (numpy's
    negative indexes included)."""
    if compiled is not None and compiled.take_rows_into(out, first, source, index):
        return
    width = source.shape[1] if source.ndim == 2 else 1
    out[:, first:first + width] = source.reshape(len(source), width)[index]
