"""A feature store that keeps the registry's vector indexes in step with its rows.

Rows are written first, then the cells they change in each index (vahini.index_cells),
both before `write` returns: a caller that retries a failed write (the ingest worker,
Persist) rewrites both, harmlessly, since both are last-write-wins. The index store is
opened at the first row that changes an index, so a registry without indexes costs
nothing.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

from vahini.index_cells import index_cells
from vahini.ports.feature_store import FeatureRow, FeatureStore
from vahini.ports.vector_index import VectorIndexStore
from vahini.registry.model import Registry


class IndexedFeatureStore:
    def __init__(self, store: FeatureStore, open_index: Callable[[], VectorIndexStore],
                 registry: Callable[[], Registry]):
        self.store = store
        self._open_index = open_index
        self._index: VectorIndexStore | None = None
        self._registry = registry
        self._opening = threading.Lock()
        self._prepared: object = None  # the indexes the engine was last prepared for

    def write(self, rows: Sequence[FeatureRow], timeout_s: float | None = None) -> None:
        self.store.write(rows, timeout_s)
        registry = self._registry()
        cells = index_cells(rows, registry)
        if cells:
            self.index(registry).write(cells, timeout_s)

    def index(self, registry: Registry) -> VectorIndexStore:
        """The index store, opened and prepared for `registry`'s indexes at first use."""
        with self._opening:
            if self._index is None:
                self._index = self._open_index()
            self._prepared_for(registry)
            return self._index

    def _prepared_for(self, registry: Registry) -> None:
        if self._prepared != registry.indexes and self._index is not None:
            self._index.prepare(registry)
            self._prepared = registry.indexes

    def read(self, entity, keys, groups, timeout_s=None):
        return self.store.read(entity, keys, groups, timeout_s)

    def read_in_bulk(self, entity, keys, groups, timeout_s=None):
        return self.store.read_in_bulk(entity, keys, groups, timeout_s)

    def close(self) -> None:
        self.store.close()
        if self._index is not None:
            self._index.close()
