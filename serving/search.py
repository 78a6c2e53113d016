"""Similarity search over the registry's vector indexes: the `Search` RPC's logic, and
the Model Proxy's `candidates:` step. The engine finds the candidates
(vahini.ports.vector_index); this checks what is asked, and turns an entity key into
its stored vector through the same reads as Retrieve (cache, TTL, defaults)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from vahini.errors import NotFound
from vahini.indexed_store import IndexedFeatureStore
from vahini.ports.vector_index import Hit
from vahini.registry.model import Registry, VectorIndex
from vahini.serving.retrieval import PRESENT, FeatureReader


class InvalidSearch(ValueError):
    """A search the index cannot answer as asked (INVALID_ARGUMENT)."""


class VectorSearch:
    def __init__(self, store: IndexedFeatureStore, reader: FeatureReader, registry: Callable[[], Registry],
                 max_k: int):
        self._store = store
        self._reader = reader
        self._registry = registry
        self.max_k = max_k

    def search(self, index: str, k: int, filters: Mapping[str, Any], vector: np.ndarray | None = None,
               key: str = "", timeout_s: float | None = None, registry: Registry | None = None) -> list[Hit]:
        """The k nearest of `vector`, or of `key`'s stored vector. Raises NotFound,
        InvalidSearch, StoreUnavailable or DeadlineExceeded."""
        registry = registry or self._registry()
        found = self.index(registry, index)
        if not 1 <= k <= self.max_k:
            raise InvalidSearch(f"k must be 1 to {self.max_k}, got {k}")
        if (vector is None) == (not key):
            raise InvalidSearch("give either a query vector or the key whose stored vector is the query")
        query = self.vector_of(registry, found, key, timeout_s) if key else np.asarray(vector, dtype=np.float32)
        wanted = self._checked(registry, found, query, filters)
        return self._store.index(registry).search(registry, index, query, k, wanted, timeout_s)

    @staticmethod
    def index(registry: Registry, name: str) -> VectorIndex:
        found = registry.indexes.get(name)
        if found is None:
            raise NotFound(f"unknown index '{name}' (indexes: {sorted(registry.indexes) or 'none'})")
        return found

    def vector_of(self, registry: Registry, index: VectorIndex, key: str, timeout_s: float | None) -> np.ndarray:
        group = registry.groups[index.group]
        [result] = self._reader.retrieve(group.entity, [key], [group.name], {group.name: [index.feature]},
                                         timeout_s=timeout_s, registry=registry)
        if result.status[0, 0] != PRESENT:
            raise NotFound(f"{group.entity} '{key}' has no live {group.name}.{index.feature} to search with")
        return result.values[index.feature][0]

    @staticmethod
    def _checked(registry: Registry, index: VectorIndex, query: np.ndarray,
                 filters: Mapping[str, Any]) -> dict[str, Any]:
        """`filters` with each value as its filter's type: a string may stand for a bool
        ("true", "false") or an int, as a command line sends them."""
        dim = registry.index_dim(index)
        if query.shape != (dim,):
            raise InvalidSearch(f"index '{index.name}' holds vectors of {dim} dimensions; the query has {query.size}")
        if not np.isfinite(query).all():
            raise InvalidSearch("the query vector holds a NaN or an infinity")
        kinds = {name: f.type for name, f in registry.filter_features(index).items()}
        wanted = {}
        for name, value in filters.items():
            if name not in kinds:
                raise InvalidSearch(f"index '{index.name}' has no filter '{name}' (its filters: "
                                    f"{', '.join(sorted(kinds)) or 'none'})")
            wanted[name] = _as_kind(name, kinds[name], value)
        return wanted


def _as_kind(name: str, kind: str, value: Any) -> Any:
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
    elif kind != "string":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    raise InvalidSearch(f"filter '{name}' is a {kind}; got {value!r}")
