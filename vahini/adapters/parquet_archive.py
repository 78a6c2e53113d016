"""The offline archive as Parquet files in a directory, partitioned by group and day:

    <root>/features/group=<group>/day=<YYYY-MM-DD>/<uuid>.parquet
    <root>/interactions/day=<YYYY-MM-DD>/<uuid>.parquet

A file is written beside its final name, fsynced, renamed into place and its
directory fsynced, so a crash leaves whole files or none; a reader never sees a
partial one. A replay after a crash writes some rows again, in new files: readers
keep one copy (vahini.offline.archive_reader)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from vahini.errors import StoreUnavailable
from vahini.ports.feature_store import FeatureRow, write_timestamp_us
from vahini.ports.interaction_store import StoredInteraction

FEATURES = pa.schema([("entity", pa.string()), ("key", pa.string()), ("grp", pa.string()),
                      ("event_time_ms", pa.int64()), ("blob", pa.binary()), ("ttl_s", pa.int64()),
                      ("precedence", pa.int64())])  # write_timestamp_us: the online store's tie-break
INTERACTIONS = pa.schema([("event_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
                          ("category_id", pa.string()), ("type", pa.string()), ("event_time_ms", pa.int64()),
                          ("attributes", pa.map_(pa.string(), pa.string()))])
DAY_MS = 86_400_000


def _day(event_time_ms: int) -> str:
    return datetime.fromtimestamp(event_time_ms // DAY_MS * 86_400, timezone.utc).strftime("%Y-%m-%d")


class ParquetArchive:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def append(self, rows: Sequence[FeatureRow], interactions: Sequence[StoredInteraction]) -> int:
        written = 0
        try:
            by_partition = sorted(rows, key=lambda r: (r.group, r.event_time_ms))
            for (group, day), part in groupby(by_partition, key=lambda r: (r.group, _day(r.event_time_ms))):
                self._write(self.root / "features" / f"group={group}" / f"day={day}", _feature_table(list(part)))
                written += 1
            by_day = sorted(interactions, key=lambda i: i.event_time_ms)
            for day, items in groupby(by_day, key=lambda i: _day(i.event_time_ms)):
                self._write(self.root / "interactions" / f"day={day}", _interaction_table(list(items)))
                written += 1
        except OSError as exc:
            raise StoreUnavailable(f"archive {self.root}: {exc}") from exc
        return written

    def feature_files(self, group: str) -> list[str]:
        return sorted(str(p) for p in (self.root / "features" / f"group={group}").glob("day=*/*.parquet"))

    def interaction_files(self) -> list[str]:
        return sorted(str(p) for p in (self.root / "interactions").glob("day=*/*.parquet"))

    @staticmethod
    def _write(directory: Path, table: pa.Table) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.parquet"
        partial = directory / f".{name}.partial"
        with open(partial, "wb") as out:
            pq.write_table(table, out, compression="zstd")
            out.flush()
            os.fsync(out.fileno())
        os.rename(partial, directory / name)
        _fsync_dir(directory)

    def close(self) -> None:
        pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _feature_table(rows: list[FeatureRow]) -> pa.Table:
    return pa.table({"entity": [r.entity for r in rows], "key": [r.key for r in rows],
                     "grp": [r.group for r in rows], "event_time_ms": [r.event_time_ms for r in rows],
                     "blob": [r.blob for r in rows], "ttl_s": [r.ttl_s for r in rows],
                     "precedence": [write_timestamp_us(r.event_time_ms, r.blob) for r in rows]}, schema=FEATURES)


def _interaction_table(items: list[StoredInteraction]) -> pa.Table:
    return pa.table({"event_id": [i.event_id for i in items], "user_id": [i.user_id for i in items],
                     "product_id": [i.product_id for i in items], "category_id": [i.category_id for i in items],
                     "type": [i.type for i in items], "event_time_ms": [i.event_time_ms for i in items],
                     "attributes": [list(i.attributes.items()) for i in items]}, schema=INTERACTIONS)
