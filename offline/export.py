"""`vahini logs export`: a model's logged responses (the feature log) as Parquet, one
row per served row.

Columns, fixed so that other tools can rely on them:
  request_id         the response's id (GetFeaturesResponse.request_id)
  event_time         when the row was served (timestamp, ms, UTC)
  <context field>    one per context field, as in the graph, in name order and the rows
                     field last: the rows field holds that row's id; another field its
                     id (several ids joined by ",")
  <matrix column>    one per column of the reply, named exactly as in its `columns`
                     (int32 for int32 columns, else float32)
  score.<node>       one per score node (float32)
  version            the version of the graph that served it
Responses of several graph versions go into one file; a column a version lacks is null."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vahini import wiring
from vahini.codecs.avro import FEATURE_LOG, AvroCodec, SchemaCatalog
from vahini.errors import VahiniError
from vahini.settings import Settings

EVENT_TIME = pa.timestamp("ms", tz="UTC")


class ExportError(VahiniError):
    """Nothing to export, or no feature log to export from."""


@dataclass
class ExportStats:
    responses: int = 0
    rows: int = 0
    versions: tuple[int, ...] = ()


def table_of(record: dict) -> pa.Table:
    """The export's rows of one FeatureLog record."""
    n, columns = len(record["row_ids"]), record["columns"]
    matrix = np.frombuffer(record["matrix"], "<f4").reshape(n, len(columns))
    out: dict[str, pa.Array] = {
        "request_id": pa.array([record["request_id"]] * n, pa.string()),
        "event_time": pa.array(np.full(n, record["served_at_ms"], np.int64), pa.int64()).cast(EVENT_TIME)}
    rows_field = record["rows_field"]
    for field in sorted(f for f in record["context"] if f != rows_field):  # then the rows field: a fixed order
        out[field] = pa.array([",".join(record["context"][field])] * n, pa.string())
    out[rows_field] = pa.array(record["row_ids"], pa.string())
    for j, (name, dtype) in enumerate(zip(columns, record["dtypes"])):
        column = matrix[:, j]
        out[name] = pa.array(column.astype(np.int32) if dtype == "int32" else column.copy())
    for scores in record["scores"]:
        out[f"score.{scores['node']}"] = pa.array(np.frombuffer(scores["values"], "<f4").copy())
    out["version"] = pa.array([record["version"]] * n, pa.int32())
    return pa.table(out)


def export_feature_log(settings: Settings, model: str, out: Path, since_ms: int | None = None,
                       until_ms: int | None = None, progress: bool = True) -> ExportStats:
    """Write `model`'s logged responses served in [since_ms, until_ms) to `out`."""
    log, topic = wiring.event_log(settings), settings.topics.feature_log
    try:
        if not log.exists(topic):
            raise ExportError(f"no feature log: topic {topic!r} does not exist in {settings.event_log} (does a "
                              f"model declare log: {{sample: ...}}, and has `vahini serve` answered it?)")
        starts = log.offsets_for_time(topic, since_ms) if since_ms is not None else {p: 0 for p in
                                                                                     log.end_offsets(topic)}
        ends = log.end_offsets(topic)
        start_offsets = {(topic, p): o for p, o in starts.items() if o < ends[p]}
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as scratch:
            stats, parts = _read(log, topic, model, start_offsets, ends, since_ms, until_ms, Path(scratch), progress)
            if not stats.responses:
                raise ExportError(f"no logged responses of model {model!r} in {topic!r} in that time range")
            _combine(parts, out)
        return stats
    finally:
        log.close()


def _read(log, topic: str, model: str, start_offsets: dict, ends: dict[int, int], since_ms: int | None,
          until_ms: int | None, scratch: Path, progress: bool) -> tuple[ExportStats, list[Path]]:
    codec, stats = AvroCodec(SchemaCatalog.default()), ExportStats()
    writers: dict[int, tuple[pq.ParquetWriter, Path]] = {}
    consumer = log.consumer(f"vahini-export-{uuid.uuid4().hex}", [topic], start_offsets)
    bar = tqdm(total=sum(ends[p] - o for (_, p), o in start_offsets.items()), unit="resp", unit_scale=True,
               desc=f"export {model}", disable=not progress)
    try:
        while any((consumer.position(tp) or 0) < ends[tp[1]] for tp in start_offsets):
            records = [r for r in consumer.poll_batch(1000, 0.5) if r.offset < ends[r.partition]]
            bar.update(len(records))
            for r in records:
                name, record = codec.decode(r.value)
                if name != FEATURE_LOG or record["model"] != model or not _in_range(record, since_ms, until_ms):
                    continue
                table = table_of(record)
                writer = writers.get(record["version"])
                if writer is None:
                    path = scratch / f"v{record['version']}.parquet"
                    writer = writers[record["version"]] = (pq.ParquetWriter(path, table.schema), path)
                writer[0].write_table(table)
                stats.responses += 1
                stats.rows += table.num_rows
    finally:
        bar.close()
        consumer.close()
        for writer, _ in writers.values():
            writer.close()
    stats.versions = tuple(sorted(writers))
    return stats, [path for _, path in writers.values()]


def _in_range(record: dict, since_ms: int | None, until_ms: int | None) -> bool:
    served = record["served_at_ms"]
    return (since_ms is None or served >= since_ms) and (until_ms is None or served < until_ms)


def _combine(parts: list[Path], out: Path) -> None:
    """One file: the only part as is, or every version's part with the union of their columns."""
    if len(parts) == 1:
        shutil.move(parts[0], out)
        return
    tables = [pq.read_table(p) for p in parts]
    pq.write_table(pa.concat_tables(tables, promote_options="default"), out)
