"""Baseline: windowed interaction counts as an idiomatic faust-streaming app.

Hopping windowed tables (1 h advancing every 5 minutes, 24 h every hour) count clicks
and orders per user and per user x category, with changelog topics for
recovery; after each event the user's and the category's current counts are
written to the feature store, so Retrieve could serve them (the same end result
as Vahini's interaction worker). Run by benchmarks/windows.py as
    python -m benchmarks.faust_windows worker -l warn
with its topic, group and keyspace in BENCH_* environment variables.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import timedelta

import faust

from vahini import wiring
from vahini.codecs.avro import AvroCodec, SchemaCatalog
from vahini.errors import InvalidEvent
from vahini.feature_rows import row_of
from vahini.registry.publish import read_published
from vahini.settings import Settings
from vahini.validation import ValidUpdate

TOPIC, GROUP = os.environ["BENCH_TOPIC"], os.environ["BENCH_GROUP"]
settings = Settings(config_store=os.environ["BENCH_CONFIG_STORE"], feature_store=os.environ["BENCH_FEATURE_STORE"])
registry = read_published(wiring.config_store(settings))
store = wiring.feature_store(settings)
codec = AvroCodec(SchemaCatalog.default())
USER_GROUP = registry.groups["user_interaction_windows"]
CATEGORY_GROUP = registry.groups["user_category_interaction_windows"]

app = faust.App(GROUP, broker=f"kafka://{os.environ['BENCH_KAFKA']}", store="memory://", web_enabled=False,
                datadir=tempfile.mkdtemp(prefix="vahini-bench-faust-windows-"), topic_partitions=8,
                broker_commit_every=500, broker_commit_interval=0.5, consumer_auto_offset_reset="earliest")
topic = app.topic(TOPIC, value_type=bytes, value_serializer="raw")
# (size, step): 12 hops of 5 minutes for the hour, 24 hops of an hour for the day.
WINDOWS = {"1h": (timedelta(hours=1), timedelta(minutes=5)), "24h": (timedelta(hours=24), timedelta(hours=1))}
tables = {
    (kind, span): app.Table(f"{kind}-{span}", default=int).hopping(
        *WINDOWS[span], expires=timedelta(hours=25)).relative_to_stream()
    for kind in ("user", "category") for span in WINDOWS
}


def _write(rows) -> asyncio.Future:
    return asyncio.get_running_loop().run_in_executor(None, store.write, rows)


@app.agent(topic)
async def count(stream):
    async for payload in stream:
        try:
            _, event = codec.decode(payload)
        except InvalidEvent:
            continue
        if "product_id" not in event:
            continue  # a session event
        user, category, kind = event["user_id"], event.get("category_id"), event["type"]
        now = event["event_time_ms"]
        values = {"user": {}, "category": {}}
        for (scope, span), table in tables.items():
            key = (user, kind) if scope == "user" else (user, category, kind)
            table[key] += 1
            values[scope][f"{'clicks' if kind == 'CLICK' else 'orders' if kind == 'ORDER' else 'wishlists'}_{span}"] = \
                table[key].current()
        user_values = {f.name: values["user"].get(f.name, 0) for f in USER_GROUP.features}
        rows = [row_of(ValidUpdate("user", user, USER_GROUP, now, user_values))]
        if category:
            cat_values = {f.name: values["category"].get(f.name, 0) for f in CATEGORY_GROUP.features}
            rows.append(row_of(ValidUpdate("user_category", f"{user}|{category}", CATEGORY_GROUP, now, cat_values)))
        await _write(rows)


if __name__ == "__main__":
    app.main()
