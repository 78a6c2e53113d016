"""Implementations of the `vahini` subcommands."""

from __future__ import annotations

import argparse
import json
import sys

from vahini import logs, wiring
from vahini.errors import ConfigError
from vahini.ports.config_store import ConcurrentModification
from vahini.settings import Settings, load_settings


class UserError(Exception):
    """Something the person running the command can fix; shown without a traceback."""


def _settings(args: argparse.Namespace, **overrides) -> Settings:
    try:
        settings = load_settings(args.settings, **{k: v for k, v in overrides.items() if v is not None})
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    logs.configure(args.log_level or settings.log_level, args.json_logs)
    return settings


def apply(args) -> int:
    from vahini.registry import publish

    settings = _settings(args)
    if not args.directory.is_dir():
        raise UserError(f"{args.directory} is not a directory")
    try:
        registry = publish.apply(args.directory, wiring.config_store(settings), dry_run=args.dry_run)
    except ConfigError as exc:
        print(f"registry rejected, nothing published ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except ConcurrentModification:
        print("another apply published in the meantime; nothing published: run apply again", file=sys.stderr)
        return 1
    verb = "valid (dry run, not published)" if args.dry_run else f"published to {settings.config_store}"
    print(f"registry {verb}: {len(registry.entities)} entities, {len(registry.groups)} feature groups, "
          f"{len(registry.models)} models")
    return 0


def produce(args) -> int:
    from vahini.cli.produce_file import produce_file

    settings = _settings(args)
    if not args.file.is_file():
        raise UserError(f"{args.file} does not exist")
    sent, rejected = produce_file(settings, args.file, args.kind, args.producer_id, not args.no_progress)
    print(f"sent {sent} event(s), rejected {rejected}")
    return 1 if rejected else 0


def demo(args) -> int:
    from vahini.demo import DemoSize, run_demo

    logs.configure(args.log_level or "WARNING", args.json_logs)
    run_demo(args.workdir, DemoSize(users=args.users, products=args.products, categories=args.categories))
    return 0


def ingest_features(args) -> int:
    from streams.app import run_ingest

    settings = _settings(args, metrics_port=args.metrics_port)
    ingest = settings.ingest.model_copy(update={k: v for k, v in {
        "group": args.group, "batch_size": args.batch_size, "batch_linger_ms": args.linger_ms,
        "write_concurrency": args.concurrency}.items() if v is not None})
    settings = settings.model_copy(update={"ingest": ingest})
    stats = run_ingest(settings, args.topics)
    print(json.dumps({"events": stats.events, "rows_written": stats.rows_written,
                      "dead_lettered": stats.dead_lettered, "seconds": round(stats.seconds, 2)}))
    return 0


def replay(args) -> int:
    from streams.replay import PositionError, replay
    from streams.worker import stop_on_signals

    settings = _settings(args)
    try:
        stats = replay(settings, args.topic, args.start, args.end, args.group or f"vahini-replay-{args.topic}",
                       progress=not args.no_progress, stop=stop_on_signals())
    except PositionError as exc:
        raise UserError(str(exc)) from None
    print(f"replay done: events={stats.events} written={stats.rows_written} "
          f"dead_lettered={stats.dead_lettered} seconds={stats.seconds:.1f}")
    return 0


def serve(args) -> int:
    from serving.server import run_server

    settings = _settings(args, metrics_port=args.metrics_port)
    serving = settings.serving.model_copy(update={k: v for k, v in {"host": args.host, "port": args.port}.items()
                                                  if v is not None})
    run_server(settings.model_copy(update={"serving": serving}))
    return 0


def get(args) -> int:
    from serving.retrieval import STATUS_NAMES, FeatureReader
    from vahini.registry.publish import RegistryFollower

    settings = _settings(args)
    follower = RegistryFollower(wiring.config_store(settings))
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    reader = FeatureReader(store, cache, lambda: follower.current)
    keys = args.keys.split(",")
    out = {k: {} for k in keys}
    for result in reader.retrieve(args.entity, keys, args.groups.split(",")):
        for j, name in enumerate(result.features):
            for i, k in enumerate(keys):
                value = result.values[name][i]
                out[k][f"{result.group}.{name}"] = {
                    "value": value.tolist() if hasattr(value, "tolist") else value,
                    "status": STATUS_NAMES[result.status[i, j]]}
    print(json.dumps(out, indent=2))
    follower.close()
    cache.close()
    store.close()
    return 0



def dead_letters(args) -> int:
    from streams.dead_letter import summarize

    settings = _settings(args)
    log = wiring.event_log(settings)
    try:
        summary = summarize(log, settings.topics.dead_letter, args.limit)
    finally:
        log.close()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['total']} dead-lettered event(s) in {settings.topics.dead_letter}")
    for reason, count in summary["by_reason"].items():
        print(f"  {reason:<22} {count}")
    for entry in summary["latest"]:
        print(f"{entry['source']}  {entry['reason']}: {entry['detail']}")
    return 0
