"""`vahini training-set`: point-in-time-correct training rows for a model, from the
offline archive, as the Model Proxy would have served them.

Each label row (context ids and a moment t) becomes the row the Model Proxy would have
served at t: each group's value as of t with TTLs and ages measured from t, chained
lookups resolved as of t, sequences from the interactions before t, and the serving
transforms and defaults. Two methods build it: "columnar" (vahini.offline.columnar, a
chunk of label rows at once) and "replay" (vahini.offline.replay, the executor once
per request: the reference). DuckDB does the point-in-time joins
(vahini.offline.archive_reader).

Rows are written in the labels' order, chunk by chunk, with every labels column
carried through; a labels column named like a matrix column (an export used as
labels) is replaced by the rebuilt one."""

from __future__ import annotations

import multiprocessing
import queue
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vahini import wiring
from vahini.registry.model import ModelGraph, Registry
from vahini.registry.publish import RegistryFollower
from vahini.settings import Settings
from vahini.offline.archive_reader import ArchiveReader
from vahini.offline.columnar import ColumnarBuilder
from vahini.offline.errors import TrainingSetError
from vahini.offline.labels import EVENT_TIME, check_context_ids, read_labels
from vahini.offline.replay import ReplayBuilder

__all__ = ["METHODS", "TrainingSetError", "TrainingStats", "build_training_set"]

DAY_MS = 86_400_000
METHODS = ("columnar", "replay")  # replay: the Model Proxy's executor per request, the reference


@dataclass
class TrainingStats:
    rows: int = 0
    requests: int = 0
    runs: int = 0  # executor runs: requests x passes (a chained lookup costs a pass per level)
    columns: int = 0

    def add(self, share: "TrainingStats") -> None:
        """Count another worker's share in."""
        self.rows, self.requests, self.runs = self.rows + share.rows, self.requests + share.requests, \
            self.runs + share.runs
        self.columns = share.columns


def build_training_set(settings: Settings, model: str, labels: Path, out: Path, version: int = 0,
                       progress: bool = True, chunk_rows: int = 125_000, workers: int = 1,
                       method: str = "columnar") -> TrainingStats:
    """`workers` > 1: that many processes, each building a contiguous share of the labels
    (a process runs on one core), merged in order. `method`: "columnar" (every label row
    of a chunk at once, vahini.offline.columnar) or "replay" (the Model Proxy's executor
    once per request: the reference the columnar method is tested against)."""
    if method not in METHODS:
        raise TrainingSetError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    follower = RegistryFollower(wiring.config_store(settings))
    try:
        registry = follower.current
        graph = _graph(registry, model, version)
    finally:
        follower.close()
    table, moments = read_labels(labels, graph.context)
    check_context_ids(labels, table, graph.context, graph.rows)
    if table.num_rows == 0:
        raise TrainingSetError(f"{labels}: no rows")
    bar = tqdm(total=table.num_rows, unit="row", unit_scale=True, desc=f"training set {model}", disable=not progress)
    try:
        if workers <= 1 or table.num_rows <= chunk_rows:
            return _build(settings, registry, graph, table, moments, out, chunk_rows, bar.update, method)
        return _in_parallel(settings, registry, graph, labels, table.num_rows, out, chunk_rows, workers, bar,
                            method)
    finally:
        bar.close()


def _build(settings: Settings, registry: Registry, graph: ModelGraph, table: pa.Table, moments: np.ndarray,
           out: Path, chunk_rows: int, advance: Callable[[int], object], method: str) -> TrainingStats:
    reader = ArchiveReader(wiring.archive(settings), settings.interactions.retention_days * DAY_MS)
    try:
        return _Builder(registry, graph, reader, method).write(table, moments, out, chunk_rows, advance)
    finally:
        reader.close()


def _in_parallel(settings: Settings, registry: Registry, graph: ModelGraph, labels: Path, rows: int, out: Path,
                 chunk_rows: int, workers: int, bar, method: str) -> TrainingStats:
    per_worker = -(-rows // workers // chunk_rows) * chunk_rows  # whole chunks each
    shares = [(start, min(start + per_worker, rows)) for start in range(0, rows, per_worker)]
    parts = [out.with_name(f".{out.name}.part{i}") for i in range(len(shares))]
    context = multiprocessing.get_context("spawn")  # not fork: the parent's threads (DuckDB, ZooKeeper) stay behind
    progress, results = context.Queue(), context.Queue()
    values = settings.model_dump()  # a settings object read from a file is of a class that does not pickle
    processes = [context.Process(target=_build_share, daemon=True, args=(
        values, registry, graph, labels, share, part, chunk_rows, progress, results, method))
        for share, part in zip(shares, parts)]
    for process in processes:
        process.start()
    try:
        stats = _collect(processes, progress, results, bar)
        _concatenate(parts, out)
    finally:
        for process in processes:
            process.join(5)
        for part in parts:
            part.unlink(missing_ok=True)
    return stats


def _build_share(values: dict, registry: Registry, graph: ModelGraph, labels: Path, share: tuple[int, int],
                 part: Path, chunk_rows: int, progress, results, method: str) -> None:
    try:
        settings = Settings(**values)
        table, moments = read_labels(labels, graph.context)
        start, stop = share
        stats = _build(settings, registry, graph, table.slice(start, stop - start), moments[start:stop], part,
                       chunk_rows, progress.put, method)
        results.put((stats, None))
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        results.put((None, f"{type(exc).__name__}: {exc}"))


def _collect(processes: list, progress, results, bar) -> TrainingStats:
    """Each share's stats, summed, while the progress bar follows their rows."""
    total, done = TrainingStats(), 0
    while done < len(processes):
        while not progress.empty():
            bar.update(progress.get())
        try:
            stats, failure = results.get(timeout=0.2)
        except queue.Empty:
            if not any(p.is_alive() for p in processes) and results.empty():
                raise TrainingSetError("a training-set worker process died") from None
            continue
        if failure is not None:
            raise TrainingSetError(f"a training-set worker failed: {failure}")
        done += 1
        total.add(stats)
    while not progress.empty():
        bar.update(progress.get())
    return total


def _concatenate(parts: list[Path], out: Path) -> None:
    """The parts' rows, in order, as one file (written beside it, then renamed)."""
    partial = out.with_name(f".{out.name}.partial")
    with pq.ParquetWriter(partial, pq.read_schema(parts[0])) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=65_536):
                writer.write_batch(batch)
    partial.rename(out)


def _graph(registry: Registry, model: str, version: int) -> ModelGraph:
    graph = registry.model(model, version)
    if graph is None:
        raise TrainingSetError(f"no model {model!r}" + (f" version {version}" if version else "") +
                               " in the published registry")
    windowed = sorted({lookup.group for lookup in graph.lookups
                       if registry.groups[lookup.group].source == "interactions"})
    if windowed:
        raise TrainingSetError(f"model {model!r} reads windowed counts ({', '.join(windowed)}): training sets do "
                               f"not rebuild those from the archive yet")
    if graph.candidates is not None:
        raise TrainingSetError(f"model {model!r} finds its rows by vector search (candidates: "
                               f"{graph.candidates.name}): training sets do not rebuild a past search yet")
    return graph


class _Builder:
    """Writes a training set chunk by chunk, whichever method builds the chunks."""

    def __init__(self, registry: Registry, graph: ModelGraph, reader: ArchiveReader, method: str):
        self._columnar = ColumnarBuilder(registry, graph, reader) if method == "columnar" else None
        self._replay = ReplayBuilder(registry, graph, reader) if method == "replay" else None
        self.stats = TrainingStats()

    def write(self, table: pa.Table, moments: np.ndarray, out: Path, chunk_rows: int,
              advance: Callable[[int], object]) -> TrainingStats:
        writer = None
        partial = out.with_name(f".{out.name}.partial")
        # A chunk is written while the next is built: Parquet's encoding runs without the GIL.
        with ThreadPoolExecutor(1, thread_name_prefix="training-set-writer") as background:
            written: Future | None = None
            try:
                for chunk in self._chunks(table, moments, chunk_rows, advance):
                    writer = writer or pq.ParquetWriter(partial, chunk.schema)
                    if written is not None:
                        written.result()
                    written = background.submit(writer.write_table, chunk)
                if written is not None:
                    written.result()
            finally:
                if writer is not None:
                    if written is not None:
                        written.exception()  # wait: close only once nothing is being written
                    writer.close()
        partial.rename(out)
        self.stats.rows = table.num_rows
        if self._replay is not None:
            self.stats.requests, self.stats.runs = self._replay.requests, self._replay.runs
        return self.stats

    def _chunks(self, table: pa.Table, moments: np.ndarray, chunk_rows: int,
                advance: Callable[[int], object]) -> Iterator[pa.Table]:
        """The output, chunk by chunk. The columnar method reads the next chunk's first
        level and sequences ahead, in a thread, while it builds this one."""
        starts = range(0, table.num_rows, chunk_rows)
        columnar = self._columnar
        if columnar is None:
            assert self._replay is not None
            for start in starts:
                labels, at = table.slice(start, chunk_rows), moments[start:start + chunk_rows]
                yield self._with_matrix(labels, at, *self._replay.matrix(labels, at, advance))
            return
        with ThreadPoolExecutor(1, thread_name_prefix="training-set-reader") as reading:
            ahead = reading.submit(columnar.read_ahead, table.slice(0, chunk_rows), moments[:chunk_rows])
            for start in starts:
                read = ahead.result()
                following = start + chunk_rows
                if following < table.num_rows:
                    ahead = reading.submit(columnar.read_ahead, table.slice(following, chunk_rows),
                                           moments[following:following + chunk_rows])
                labels, at = table.slice(start, chunk_rows), moments[start:start + chunk_rows]
                yield self._with_matrix(labels, at, *columnar.columns, columnar.matrix_of(read))
                advance(labels.num_rows)

    def _with_matrix(self, labels: pa.Table, moments: np.ndarray, columns: list[str], dtypes: list[str],
                     values: np.ndarray) -> pa.Table:
        self.stats.columns = len(columns)
        built = {name: (values[:, j].astype(np.int32) if dtype == "int32" else values[:, j])
                 for j, (name, dtype) in enumerate(zip(columns, dtypes))}
        return _with_columns(labels, moments, built)




def _with_columns(labels: pa.Table, moments: np.ndarray, built: dict[str, np.ndarray]) -> pa.Table:
    """The labels' columns, `event_time` as a timestamp, each matrix column in place of a
    labels column of its name or else after them."""
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in labels.column_names:
        if name == EVENT_TIME:
            columns[name] = pa.array(moments, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        elif name in built:
            columns[name] = pa.array(built[name])
        else:
            columns[name] = labels[name]
    for name, values in built.items():
        if name not in columns:
            columns[name] = pa.array(values)
    return pa.table(columns)
