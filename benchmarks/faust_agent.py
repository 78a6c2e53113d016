"""Baseline (b): the same ingestion as a plain, idiomatic faust-streaming agent.

One event at a time: decode, validate against the registry, encode the blob,
await the Cassandra write. Run by benchmarks/ingest.py as
    python -m benchmarks.faust_agent worker -l warn
with its topic, group and keyspace in BENCH_* environment variables.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

import faust
from cassandra.cluster import Cluster

from vahini import wiring
from vahini.codecs.avro import AvroCodec, SchemaCatalog
from vahini.errors import InvalidEvent
from vahini.feature_rows import row_of
from vahini.registry.publish import read_published
from vahini.settings import Settings
from vahini.validation import validate_feature_update

TOPIC, GROUP = os.environ["BENCH_TOPIC"], os.environ["BENCH_GROUP"]
KEYSPACE = os.environ["BENCH_KEYSPACE"]
settings = Settings(config_store=os.environ["BENCH_CONFIG_STORE"])
registry = read_published(wiring.config_store(settings))
codec = AvroCodec(SchemaCatalog.default())
host, port = os.environ["BENCH_CASSANDRA"].split(":")
session = Cluster([host], port=int(port)).connect()
insert = session.prepare(f"INSERT INTO {KEYSPACE}.feature_rows (entity, key, grp, event_time_ms, blob) "
                         f"VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?")

app = faust.App(GROUP, broker=f"kafka://{os.environ['BENCH_KAFKA']}", store="memory://", web_enabled=False,
                datadir=tempfile.mkdtemp(prefix="vahini-bench-faust-"),
                broker_commit_every=500, broker_commit_interval=0.5, consumer_auto_offset_reset="earliest")
topic = app.topic(TOPIC, value_type=bytes, value_serializer="raw")


def _awaitable(response_future) -> asyncio.Future:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    response_future.add_callbacks(lambda r: loop.call_soon_threadsafe(fut.set_result, r),
                                  lambda e: loop.call_soon_threadsafe(fut.set_exception, e))
    return fut


@app.agent(topic)
async def ingest(stream):
    async for payload in stream:
        try:
            _, event = codec.decode(payload)
            row = row_of(validate_feature_update(event, registry, int(time.time() * 1000)))
        except InvalidEvent:
            continue
        await _awaitable(session.execute_async(insert, (row.entity, row.key, row.group, row.event_time_ms, row.blob,
                                                        row.event_time_ms * 1000, row.ttl_s)))


if __name__ == "__main__":
    app.main()
