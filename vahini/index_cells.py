"""What stored feature rows change in the registry's vector indexes.

The ingest worker writes these cells beside the rows (vahini.ports.vector_index):
an indexed group's row sets the key's vector, or removes it when the update left
it out; a row of a group that holds one of an index's filters sets that filter,
to its feature's default when the update left it out, as a read would.
"""

from __future__ import annotations

from typing import Sequence

from vahini.codecs import feature_blob
from vahini.errors import DecodeError
from vahini.ports.feature_store import FeatureRow, write_timestamp_us
from vahini.ports.vector_index import VECTOR, IndexCells
from vahini.registry.model import Registry, VectorIndex


def index_cells(rows: Sequence[FeatureRow], registry: Registry) -> list[IndexCells]:
    if not registry.indexes:
        return []
    cells: list[IndexCells] = []
    by_group: dict[str, list[VectorIndex]] = {}
    for row in rows:
        indexes = by_group.get(row.group)
        if indexes is None:
            indexes = by_group[row.group] = registry.indexes_of(row.group)
        if indexes:
            cells.extend(_cells_of(row, indexes, registry))
    return cells


def _cells_of(row: FeatureRow, indexes: list[VectorIndex], registry: Registry) -> list[IndexCells]:
    version, _ = feature_blob.read_header(row.blob)
    features = registry.features_of(row.group, version)
    if features is None:  # a layout never published: the worker's decode has dead-lettered such events
        raise DecodeError(f"group '{row.group}' has no published version {version}")
    decoded = feature_blob.decode(row.blob, features)
    values = decoded.as_dict()
    present = {f.name: bool(p) for f, p in zip(features, decoded.present)}
    stamp = write_timestamp_us(row.event_time_ms, row.blob)
    out = []
    for index in indexes:
        cell: dict = {}
        if index.group == row.group:
            cell[VECTOR] = values[index.feature] if present.get(index.feature) else None
        for source in index.filters:
            group, name = source.split(".", 1)
            if group == row.group:
                default = next((f.default for f in features if f.name == name), None)
                cell[name] = values[name] if present.get(name) else default
        defaults = ({n: f.default for n, f in registry.filter_features(index).items()}
                    if cell.get(VECTOR) is not None else {})
        out.append(IndexCells(index.name, row.key, stamp, row.expires_at_ms(), cell, defaults))
    return out

