"""`vahini training-set`: point-in-time-correct training rows for a model, built by the
Model Proxy's own code.

Each label row (context ids and a moment t) becomes the row the Model Proxy would have
served at t: the unchanged ModelExecutor runs the model's graph, with the archive's
rows and histories as of t in place of the online stores (vahini.offline.as_of), and
with t as its clock, so TTLs and ages are measured from t. Chained lookups, sequences,
transforms and defaults are the serving code itself: there is no second
implementation to drift. DuckDB does the point-in-time joins
(vahini.offline.archive_reader).

Label rows that share their context and moment are served as one request, as a ranker
would have sent them. Rows are written in the labels' order, chunk by chunk, with every
labels column carried through; a labels column named like a matrix column (an export
used as labels) is replaced by the rebuilt one."""

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
from vahini.errors import VahiniError
from vahini.registry.model import KEY_SEPARATOR, ModelGraph, Registry
from vahini.registry.publish import RegistryFollower
from vahini.serving.model_proxy import FeatureMatrix, ModelExecutor, levels, plan_of
from vahini.serving.retrieval import FeatureReader
from vahini.settings import Settings
from vahini.offline.archive_reader import ArchiveReader
from vahini.offline.columnar import ColumnarBuilder
from vahini.offline.as_of import AsOfFeatures, AsOfHistories, Moment, Unresolved
from vahini.offline.labels import EVENT_TIME, check_context_ids, read_labels

DAY_MS = 86_400_000
METHODS = ("columnar", "replay")  # replay: the Model Proxy's executor per request, the reference


class TrainingSetError(VahiniError):
    """A training set that cannot be built as asked."""


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


@dataclass
class _Request:
    context: dict[str, list[str]]
    moment: int
    rows: list[int]  # positions in the chunk


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
    return graph


class _Builder:
    def __init__(self, registry: Registry, graph: ModelGraph, reader: ArchiveReader, method: str):
        self._graph, self._reader, self._registry = graph, reader, registry
        self._columnar = ColumnarBuilder(registry, graph, reader) if method == "columnar" else None
        self._key_sources = plan_of(graph, registry).key_sources
        self._first_level = levels(graph)[0]  # the lookups keyed by context and row ids alone
        self._moment = Moment()
        self._features, self._histories = AsOfFeatures(self._moment), AsOfHistories(self._moment)
        feature_reader = FeatureReader(self._features, None, lambda: registry, lru=False)
        self._executor = ModelExecutor(feature_reader, lambda: registry, self._histories)
        # At worst a pass per lookup (a level's entities are read one after the other), and the clean run.
        self._max_passes = len(graph.lookups) + 2
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
        return self.stats

    def _chunks(self, table: pa.Table, moments: np.ndarray, chunk_rows: int,
                advance: Callable[[int], object]) -> Iterator[pa.Table]:
        """The output, chunk by chunk. The columnar method reads the next chunk's first
        level and sequences ahead, in a thread, while it builds this one."""
        starts = range(0, table.num_rows, chunk_rows)
        columnar = self._columnar
        if columnar is None:
            for start in starts:
                labels, at = table.slice(start, chunk_rows), moments[start:start + chunk_rows]
                yield self._with_matrix(labels, at, *self._replayed(labels, at, advance))
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

    def _replayed(self, labels: pa.Table, moments: np.ndarray, advance: Callable[[int], object]
                  ) -> tuple[list[str], list[str], np.ndarray]:
        matrices = self._serve(self._requests(labels, moments), advance)
        columns = matrices[0][1].columns if matrices else []
        dtypes = matrices[0][1].dtypes if matrices else []
        values = np.zeros((labels.num_rows, len(columns)), np.float32)
        for request, matrix in matrices:
            values[request.rows] = matrix.values
        return columns, dtypes, values

    def _requests(self, labels: pa.Table, moments: np.ndarray) -> list[_Request]:
        """Label rows sharing their context and moment, as one request each."""
        graph = self._graph
        others = [c for c in graph.context if c != graph.rows]
        other_ids = [labels[c].to_pylist() for c in others]
        grouped: dict[tuple, _Request] = {}
        for i, moment in enumerate(moments.tolist()):
            ids = tuple(column[i] for column in other_ids)
            request = grouped.get((ids, moment))
            if request is None:
                context = {c: v.split(",") for c, v in zip(others, ids)}
                request = grouped[(ids, moment)] = _Request(context, moment, [])
            request.rows.append(i)
        row_ids = labels[graph.rows].to_pylist()
        for request in grouped.values():
            request.context[graph.rows] = [row_ids[i] for i in request.rows]
        self.stats.requests += len(grouped)
        return list(grouped.values())

    def _serve(self, requests: list[_Request], advance: Callable[[int], object]
               ) -> list[tuple[_Request, FeatureMatrix]]:
        """Run every request until it asks for nothing unresolved; resolve between passes."""
        done: list[tuple[_Request, FeatureMatrix]] = []
        pending = requests
        self._prefetch(requests)
        for _ in range(self._max_passes):
            again = []
            for request in pending:
                self._moment.t_ms, self._moment.missed = request.moment, False
                self.stats.runs += 1
                try:
                    matrix = self._executor.run(self._graph.name, request.context, self._graph.version,
                                                as_of_ms=request.moment)
                except Unresolved:
                    again.append(request)
                    continue
                if self._moment.missed:  # a history not resolved yet
                    again.append(request)
                else:
                    done.append((request, matrix))
                    advance(len(request.rows))
            if not again:
                break
            self._resolve()
            pending = again
        else:
            raise TrainingSetError(f"requests still asked for unresolved rows after {self._max_passes} passes")
        self._features.resolved.clear()
        self._histories.resolved.clear()
        return done

    def _prefetch(self, requests: list[_Request]) -> None:
        """What the first pass would miss, resolved before it: the lookups keyed by context
        ids and row ids alone, and the sequences' histories. This only saves a pass: a key
        worked out differently here than by the executor is a miss, resolved in the next."""
        graph, features, histories = self._graph, self._features, self._histories
        for request in requests:
            for lookup in self._first_level:
                entity = self._registry.groups[lookup.group].entity
                parts = [request.context[graph.rows] if source == "row" else
                         [request.context[source[len("context."):]][0]] * len(request.rows)
                         for source in self._key_sources[lookup.name]]
                features.misses.update((entity, KEY_SEPARATOR.join(combo), lookup.group, request.moment)
                                       for combo in zip(*parts))
            wanted: dict[tuple[str, str], int] = {}
            for sequence in graph.sequences:
                key = (request.context[sequence.user.partition(".")[2]][0], sequence.type)
                wanted[key] = max(wanted.get(key, 0), sequence.length)
            histories.misses.update((user, type_, request.moment, n) for (user, type_), n in wanted.items())
        self._resolve()

    def _resolve(self) -> None:
        features, histories = self._features, self._histories
        features.resolved.update(self._reader.rows_as_of(features.misses))
        histories.resolved.update(self._reader.histories_as_of(histories.misses))
        features.misses.clear()
        histories.misses.clear()


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
