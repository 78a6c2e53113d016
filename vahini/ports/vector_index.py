"""Similarity search over one vector feature of a group, kept fresh by ingestion.

The ingest worker writes each indexed row's vector, and the filter values an index
carries, as cells under the row's own write timestamp and expiry: the same
last-write-wins rule as the feature store (vahini.ports.feature_store), cell by
cell, so writes commute and replays are idempotent. A vector left out of an
update removes its key from results; so does its expiry.

Scores are exact, computed from the returned vectors: cosine similarity (`cosine`),
dot product (`dot`), or Euclidean distance (`l2`). Hits come nearest first: the
highest score, or for `l2` the lowest. The engine only finds the candidates.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Protocol, Sequence

import numpy as np

from vahini.registry.model import Registry

VECTOR = "vector"  # the cell holding the vector; every other cell is a filter, by its feature name


class IndexCells(NamedTuple):
    """What one stored row changes in one index: its vector (None: removed) and/or
    filter values, by cell name. `defaults`: with a vector, every filter's default,
    written beneath (at write timestamp 0, no expiry) so that a filter never written
    reads as its default; any real write outranks it."""

    index_name: str
    key: str
    write_ts_us: int
    expires_at_ms: int | None
    values: Mapping[str, Any]
    defaults: Mapping[str, Any] = {}


class Hit(NamedTuple):
    key: str
    score: float


class VectorIndexStore(Protocol):
    def prepare(self, registry: Registry) -> None:
        """Make what the registry's indexes need (tables, index structures). Raises
        IndexUnsupported when the engine cannot hold one."""

    def write(self, cells: Sequence[IndexCells], timeout_s: float | None = None) -> None:
        """Make every cell durable before returning; a cell replaces the stored one only
        if its write timestamp is greater."""

    def search(self, registry: Registry, index: str, query: np.ndarray, k: int,
               filters: Mapping[str, Any], timeout_s: float | None = None) -> list[Hit]:
        """The `k` live keys nearest `query` whose filter values equal `filters` (a
        filter never written reads as its feature's default; one whose value expired
        matches nothing). Raises StoreUnavailable,
        or DeadlineExceeded when `timeout_s` runs out first."""

    def close(self) -> None: ...


def scores(metric: str, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Exact scores of `vectors` (n x dim) against `query`, as the module doc defines them."""
    q = np.asarray(query, dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float64)
    if metric == "l2":
        return np.sqrt(((v - q) ** 2).sum(axis=1))
    dots = v @ q
    if metric == "dot":
        return dots
    norms = np.linalg.norm(v, axis=1) * np.linalg.norm(q)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def nearest_first(metric: str, keys: Sequence[str], values: np.ndarray, k: int) -> list[Hit]:
    """The k best of (keys, scores), nearest first; ties by key, so engines agree."""
    sign = 1.0 if metric == "l2" else -1.0
    order = sorted(range(len(keys)), key=lambda i: (sign * values[i], keys[i]))[:k]
    return [Hit(keys[i], float(values[i])) for i in order]

