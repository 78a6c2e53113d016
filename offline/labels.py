"""Reading a training set's labels file (Parquet or CSV) and checking it.

One column per context field of the model's graph (the rows field holding one id per
label row, another field its one id), an `event_time` column (a
timestamp, or epoch milliseconds), and any other columns, which are carried through.
The export of `vahini logs export`, with a label column added, is a valid labels file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vahini.errors import VahiniError

EVENT_TIME = "event_time"


class LabelsError(VahiniError):
    """A labels file the training set cannot use: which file, which column or row, and why."""


def read_labels(path: Path, context: tuple[str, ...]) -> tuple[pa.Table, np.ndarray]:
    """The labels, context columns as strings, and each row's moment in epoch milliseconds."""
    if not path.exists():
        raise LabelsError(f"{path}: no such file")
    reader = {".parquet": "read_parquet", ".csv": "read_csv"}.get(path.suffix.lower())
    if reader is None:
        raise LabelsError(f"{path}: expected a .parquet or .csv file")
    with duckdb.connect() as db:
        try:
            table = db.execute(f"SELECT * FROM {reader}(?)", [str(path)]).to_arrow_table()
        except duckdb.Error as exc:
            raise LabelsError(f"{path}: cannot read it: {exc}") from None
    missing = [c for c in (*context, EVENT_TIME) if c not in table.column_names]
    if missing:
        raise LabelsError(f"{path}: missing column(s) {', '.join(missing)}; a labels file needs one column per "
                          f"context field ({', '.join(context)}) and {EVENT_TIME!r} (a timestamp or epoch ms)")
    for name in context:
        column = pc.cast(table[name], pa.string())
        _no_empty(path, name, column)
        table = table.set_column(table.column_names.index(name), name, column)
    return table, _moments(path, table[EVENT_TIME])


def check_context_ids(path: Path, table: pa.Table, context: tuple[str, ...], rows_field: str) -> None:
    """Refuse what the Model Proxy would refuse in a request: several ids in a field other
    than the rows field, or an id with the key separator in it."""
    from vahini.registry.model import KEY_SEPARATOR

    for name in context:
        if name != rows_field:
            _refuse(path, table[name], ",", f"has several ids in {name!r}: the model takes one")
        _refuse(path, table[name], KEY_SEPARATOR, f"has an id with {KEY_SEPARATOR!r} in {name!r}")


def _refuse(path: Path, column: pa.ChunkedArray, substring: str, why: str) -> None:
    holds = pc.match_substring(column, substring)
    if pc.any(holds).as_py():
        raise LabelsError(f"{path}: row {pc.index(holds, True).as_py() + 1} {why}")


def _no_empty(path: Path, name: str, column: pa.ChunkedArray) -> None:
    empty = pc.or_kleene(pc.is_null(column), pc.equal(column, ""))
    if pc.any(empty).as_py():
        row = pc.index(empty, True).as_py()
        raise LabelsError(f"{path}: row {row + 1} has no {name!r} (every label row needs each context id)")


def _moments(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    if pc.any(pc.is_null(column)).as_py():
        row = pc.index(pc.is_null(column), True).as_py()
        raise LabelsError(f"{path}: row {row + 1} has no {EVENT_TIME!r}")
    kind = column.type
    if pa.types.is_timestamp(kind):
        return pc.cast(pc.cast(column, pa.timestamp("ms", tz=kind.tz), safe=False), pa.int64()).to_numpy()
    if pa.types.is_integer(kind):
        return pc.cast(column, pa.int64()).to_numpy()
    raise LabelsError(f"{path}: {EVENT_TIME!r} is {kind}; it must be a timestamp or epoch milliseconds (an integer)")
