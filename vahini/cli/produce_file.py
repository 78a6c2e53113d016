"""`vahini produce`: bulk-load events from JSON lines or feature rows from Parquet."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from vahini.codecs.avro import FEATURE_UPDATE
from vahini.errors import InvalidEvent
from vahini.producer import KINDS, EventProducer, now_ms
from vahini.settings import Settings

FLUSH_EVERY = 50_000


def _json_lines(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"not JSON: {exc.msg}"
                continue
            if isinstance(record, dict):
                yield number, record, None
            else:
                yield number, None, f"not a JSON object: {type(record).__name__ if record is not None else 'null'}"


def _parquet_rows(path: Path, producer: EventProducer) -> Iterator[tuple[int, dict | None, str | None]]:
    """Feature rows: entity, group, key columns, feature columns, optional event_time_ms."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit("reading Parquet needs pyarrow: pip install 'vahini[parquet]'") from None
    registry = producer.registry
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            number += 1
            entity = registry.entities.get(row.get("entity"))
            group = registry.groups.get(row.get("group"))
            if entity is None or group is None:
                yield number, None, f"unknown entity {row.get('entity')!r} or group {row.get('group')!r}"
                continue
            keys = {k: str(row[k]) for k in entity.keys if row.get(k) is not None}
            values = {f.name: row[f.name] for f in group.features if row.get(f.name) is not None}
            yield number, {"entity": entity.name, "keys": keys, "group": group.name, "values": values,
                           "event_time_ms": int(row.get("event_time_ms") or now_ms())}, None


def _count_lines(path: Path) -> int | None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def produce_file(settings: Settings, path: Path, kind: str, producer_id: str, progress: bool) -> tuple[int, int]:
    producer = EventProducer.from_settings(settings, producer_id)
    schema = KINDS[kind]
    rows = _parquet_rows(path, producer) if path.suffix == ".parquet" else _json_lines(path)
    if path.suffix == ".parquet":
        schema = FEATURE_UPDATE
    sent = rejected = 0
    with tqdm(total=_count_lines(path), unit="ev", unit_scale=True, desc="produce", disable=not progress) as bar:
        for number, record, problem in rows:
            bar.update(1)
            if record is not None:
                try:
                    producer.send(schema, record)
                    sent += 1
                    if sent % FLUSH_EVERY == 0:
                        producer.flush()
                    continue
                except InvalidEvent as exc:
                    problem = str(exc)
            rejected += 1
            tqdm.write(f"{path}:{number}: rejected: {problem}", file=sys.stderr)
    producer.flush()
    producer.close()
    return sent, rejected
