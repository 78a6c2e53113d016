"""Implementations of the `vahini` subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from datetime import datetime, timezone

from vahini import logs, wiring
from vahini.errors import ConfigError
from vahini.ports.config_store import ConcurrentModification
from vahini.settings import Settings, load_settings


# Exit codes, the same for every command (docs/cli.md, "Exit codes").
OK = 0
USER_ERROR = 1  # bad input, settings, names or rights: fix the command or what it reads
USAGE = 2  # the command line itself: unknown option, missing argument (argparse)
UNAVAILABLE = 3  # a service it needs is down or did not answer in time: retry later
INTERRUPTED = 130


class UserError(Exception):
    """Something the person running the command can fix; shown without a traceback."""


class Unavailable(Exception):
    """A service the command needs is down or too slow; retrying later may succeed."""


def _call_error(target: str, exc, args) -> Exception:
    """A failed gRPC call as the exception its exit code follows from."""
    import grpc

    retryable = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                               grpc.StatusCode.RESOURCE_EXHAUSTED)
    return (Unavailable if retryable else UserError)(_call_failed(target, exc, args))


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
        config = wiring.config_store(settings)
        if not args.dry_run:  # an index the engine cannot hold is refused before anything is published
            _prepare_indexes(settings, args.directory, publish.apply(args.directory, config, dry_run=True).registry)
        plan = publish.apply(args.directory, config, dry_run=args.dry_run)
    except ConfigError as exc:
        print(f"registry rejected, nothing published ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except ConcurrentModification:
        print("another apply published in the meantime; nothing published: run apply again", file=sys.stderr)
        return 1
    _print_plan(plan)
    registry = plan.registry
    verb = "valid (dry run, not published)" if args.dry_run else f"published to {settings.config_store}"
    print(f"registry {verb}: {len(registry.entities)} entities, {len(registry.groups)} feature groups, "
          f"{len(registry.models)} models, revision {registry.revision}")
    return 0


def _prepare_indexes(settings: Settings, directory, registry) -> None:
    """Make each index's tables and structures on the engine; ConfigError, at the index's
    file and line, when the engine cannot hold it."""
    from vahini.errors import ConfigProblem, IndexUnsupported
    from vahini.registry.loader import load_registry_located

    if not registry.indexes:
        return
    index = wiring.vector_index(settings)
    try:
        index.prepare(registry)
    except IndexUnsupported as exc:
        file, line = load_registry_located(directory)[1][("indexes", exc.index)]
        raise ConfigError([ConfigProblem(file, line, str(exc))]) from None
    finally:
        index.close()


def _print_plan(plan) -> None:
    if not plan.changes:
        print("no changes to feature groups or models")
    for change in plan.changes:
        if change.warning:
            print(f"warning: {change.message}", file=sys.stderr)
        else:
            print(f"  {change.message}")


def produce(args) -> int:
    from vahini.cli.produce_file import produce_file

    settings = _settings(args)
    if not args.file.is_file():
        raise UserError(f"{args.file} does not exist")
    _published_registry_required(settings)
    sent, rejected = produce_file(settings, args.file, args.kind, args.producer_id, not args.no_progress)
    print(f"sent {sent} event(s), rejected {rejected}")
    return 1 if rejected else 0


def demo(args) -> int:
    from vahini.demo import DemoSize, run_demo

    logs.configure(args.log_level or "WARNING", args.json_logs)
    run_demo(args.workdir, DemoSize(users=args.users, products=args.products, categories=args.categories))
    return 0


def ingest_features(args) -> int:
    from vahini.streams.app import run_ingest

    settings = _settings(args, metrics_port=args.metrics_port)
    ingest = settings.ingest.model_copy(update={k: v for k, v in {
        "group": args.group, "batch_size": args.batch_size, "batch_linger_ms": args.linger_ms,
        "write_concurrency": args.concurrency}.items() if v is not None})
    settings = settings.model_copy(update={"ingest": ingest})
    _published_registry_required(settings)
    stats = run_ingest(settings, args.topics, stop_at_end=args.stop_at_end)
    print(json.dumps({"events": stats.events, "rows_written": stats.rows_written,
                      "dead_lettered": stats.dead_lettered, "seconds": round(stats.seconds, 2)}))
    return 0


def ingest_interactions(args) -> int:
    from vahini.streams.app import run_interaction_ingest

    settings = _settings(args, metrics_port=args.metrics_port)
    interactions = settings.interactions.model_copy(update={k: v for k, v in {
        "group": args.group, "batch_size": args.batch_size}.items() if v is not None})
    settings = settings.model_copy(update={"interactions": interactions})
    stats = run_interaction_ingest(settings, stop_at_end=args.stop_at_end)
    print(json.dumps({"events": stats.events, "to_hot": stats.to_hot, "to_cold": stats.to_cold,
                      "sessions_started": stats.sessions_started, "sessions_ended": stats.sessions_ended,
                      "cold_writes": stats.cold_writes, "dead_lettered": stats.dead_lettered}))
    return 0


def ingest_archive(args) -> int:
    from vahini.streams.app import run_archive_ingest

    settings = _settings(args, metrics_port=args.metrics_port)
    archive = settings.archive.model_copy(update={k: v for k, v in {
        "group": args.group, "batch_size": args.batch_size, "flush_rows": args.flush_rows,
        "url": args.archive}.items() if v is not None})
    settings = settings.model_copy(update={"archive": archive})
    _published_registry_required(settings)
    stats = run_archive_ingest(settings, stop_at_end=args.stop_at_end)
    print(json.dumps({"records": stats.records, "rows": stats.rows, "interactions": stats.interactions,
                      "skipped": stats.skipped, "files": stats.files}))
    return 0


def history(args) -> int:
    from vahini.serving.interactions import InteractionReader
    from vahini.ports.interaction_store import TYPES, HistoryQuery

    settings = _settings(args)
    types = tuple(t.upper() for t in args.types) if args.types else TYPES
    if args.target:
        for user in args.user_ids:
            _print_history(args, user, *_history_remote(args, user, types))
        return 0
    reader = InteractionReader(wiring.interaction_hot_tier(settings, timeout_s=0.5), wiring.cold_interactions(settings),
                               settings)
    try:
        for user in args.user_ids:
            h = reader.history(HistoryQuery(user, types, args.limit))
            rows = [{"event_id": i.event_id, "product_id": i.product_id, "category_id": i.category_id,
                     "type": i.type, "event_time_ms": i.event_time_ms} for i in h.interactions]
            _print_history(args, user, h.source, rows)
    finally:
        reader.close()
    return 0


def _history_remote(args, user: str, types: tuple[str, ...]) -> tuple[str, list[dict]]:
    from vahini.serving.api import interaction_service_pb2 as ipb

    reply = _remote(args, "InteractionService.GetInteractions", ipb.GetInteractionsRequest(
        user_id=user, types=[ipb.InteractionType.Value(t) for t in types], limit=args.limit))
    return reply.source, [{"event_id": i.event_id, "product_id": i.product_id, "category_id": i.category_id or None,
                           "type": ipb.InteractionType.Name(i.type), "event_time_ms": i.event_time_ms}
                          for i in reply.interactions]


def _print_history(args, user: str, source: str, rows: list[dict]) -> None:
    if args.json:
        print(json.dumps({"user_id": user, "source": source, "interactions": rows}))
        return
    print(f"{user} ({source}, {len(rows)} shown)")
    for r in rows:
        print(f"  {_iso(r['event_time_ms'])}  {r['type']:<8} {r['product_id']:<16} "
              f"{r['category_id'] or '-':<12} {r['event_id']}")


def query(args) -> int:
    import grpc
    import numpy as np

    from vahini.cli.channel import connect
    from vahini.serving.api import model_proxy_pb2 as mpb
    from vahini.serving.api.model_proxy_pb2_grpc import ModelProxyStub

    settings = _settings(args)
    context = {}
    for item in args.context:
        name, sep, ids = item.partition("=")
        if not sep or not name or not ids:
            raise UserError(f"--set {item!r}: expected NAME=ID[,ID...]")
        context[name] = mpb.ContextIds(ids=ids.split(","))
    target = args.target or f"{settings.serving.host}:{settings.serving.port}"
    channel, metadata = connect(target, **_caller(args))
    try:
        reply = ModelProxyStub(channel).GetFeatures(
            mpb.GetFeaturesRequest(model=args.model, context=context, version=args.version), timeout=args.timeout,
            metadata=metadata)
    except grpc.RpcError as exc:
        raise _call_error(target, exc, args) from None
    finally:
        channel.close()
    matrix = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
    missing = {c: n.missing + n.expired + n.unreadable for c, n in reply.counts.items()}
    scores = {s.node: np.frombuffer(s.values, "<f4") for s in reply.scores}
    if args.json:
        print(json.dumps({"model": reply.model, "version": reply.version, "columns": list(reply.columns),
                          "row_ids": list(reply.row_ids), "matrix": [[float(str(v)) for v in row] for row in matrix],
                          "missing": missing, "scores": {n: [float(str(v)) for v in s] for n, s in scores.items()},
                          "degraded": reply.degraded}))
        return 0
    _print_matrix(reply, matrix, missing, scores)
    return 0


def search(args) -> int:
    import grpc

    from vahini.cli.channel import connect
    from vahini.serving.api import feature_service_pb2 as fpb
    from vahini.serving.api.feature_service_pb2_grpc import FeatureServiceStub

    settings = _settings(args)
    if bool(args.key) == bool(args.vector):
        raise UserError("give --key (search with its stored vector) or --vector, not both and not neither")
    try:
        vector = [float(v) for v in args.vector.split(",")] if args.vector else []
    except ValueError:
        raise UserError(f"--vector {args.vector!r}: expected comma-separated numbers") from None
    filters = {}
    for item in args.where:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--where {item!r}: expected FILTER=VALUE")
        filters[name] = fpb.Value(string_value=value)  # the server reads it as the filter's type
    target = args.target or f"{settings.serving.host}:{settings.serving.port}"
    channel, metadata = connect(target, **_caller(args))
    try:
        reply = FeatureServiceStub(channel).Search(
            fpb.SearchRequest(index=args.index, k=args.k, key=args.key, vector=vector, filters=filters),
            timeout=args.timeout, metadata=metadata)
    except grpc.RpcError as exc:
        raise _call_error(target, exc, args) from None
    finally:
        channel.close()
    hits = [{"key": key, "score": score} for key, score in zip(reply.keys, reply.scores)]
    if args.json:
        print(json.dumps({"index": args.index, "metric": reply.metric, "hits": hits}))
        return 0
    print(f"{'rank':>4}  {'key':<24} {reply.metric}")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>4}  {hit['key']:<24} {hit['score']:.6f}")
    return 0


def _caller(args) -> dict:
    """The --token-file, --ca-file, --cert-file and --key-file of a command, for cli.channel.connect."""
    token = _read_secret(args.token_file, "--token-file") if args.token_file else None
    return {"token": token, "ca_file": args.ca_file, "cert_file": args.cert_file, "key_file": args.key_file}


def _remote(args, call: str, request, timeout_s: float = 10.0):
    """Call `call` ("Stub.Method") on --target with the command's credentials; a refusal is a UserError."""
    import grpc

    from vahini.cli.channel import connect

    from vahini.serving.api.feature_service_pb2_grpc import FeatureServiceStub
    from vahini.serving.api.interaction_service_pb2_grpc import InteractionServiceStub

    channel, metadata = connect(args.target, **_caller(args))
    service, method = call.split(".")
    stub = {"FeatureService": FeatureServiceStub, "InteractionService": InteractionServiceStub}[service](channel)
    try:
        return getattr(stub, method)(request, timeout=timeout_s, metadata=metadata)
    except grpc.RpcError as exc:
        raise _call_error(args.target, exc, args) from None
    finally:
        channel.close()


def _call_failed(target: str, exc, args) -> str:
    """The refusal as the server gave it, with a hint where the usual cause is the connection itself."""
    import grpc

    message = f"{target}: {exc.code().name}: {exc.details()}"
    if exc.code() == grpc.StatusCode.UNAVAILABLE and not args.ca_file and not _answered_by_vahini(exc):
        message += " (if the server uses TLS, give --ca-file)"
    elif exc.code() == grpc.StatusCode.UNAUTHENTICATED and not args.token_file:
        message += " (give this caller's token with --token-file)"
    return message


def _answered_by_vahini(exc) -> bool:
    """The server itself set this status (a store or model endpoint behind it is down),
    as opposed to the call never reaching it."""
    from vahini.serving.grpc_errors import ANSWERED_BY

    return ANSWERED_BY in tuple((exc.trailing_metadata() or ()))


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise UserError(f"{what} {path}: {exc.strerror}") from None


def _print_matrix(reply, matrix, missing: dict, scores: dict) -> None:
    width = max([len(c) for c in reply.columns] + [len(f"score:{n}") for n in scores] + [8])
    print(f"{reply.model} v{reply.version}: {matrix.shape[0]} rows x {matrix.shape[1]} columns")
    print(f"{'column':<{width}}  " + "  ".join(f"{r[:12]:>12}" for r in reply.row_ids))
    for j, column in enumerate(reply.columns):
        note = f"  ({missing[column]} defaulted)" if missing.get(column) else ""
        print(f"{column:<{width}}  " + "  ".join(f"{matrix[i, j]:>12.6g}" for i in range(matrix.shape[0])) + note)
    for node, values in scores.items():
        print(f"{'score:' + node:<{width}}  " + "  ".join(f"{v:>12.6g}" for v in values))
    if reply.degraded:
        print(f"degraded: {reply.degraded}")


def model_server(args) -> int:
    import signal
    import threading

    from vahini.serving.reference_model import parse_model_args, start_model_server

    try:
        models = parse_model_args(args.models)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"--model: {exc}") from None
    server, port, _ = start_model_server(models, args.port, args.host)
    if not port:
        raise UserError(f"cannot listen on {args.host}:{args.port}")
    print(f"model server on {args.host}:{port}: {', '.join(sorted(models))} (KServe v2 gRPC)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(2).wait()
    return 0


def replay(args) -> int:
    from vahini.streams.replay import PositionError, replay, replay_into_archive
    from vahini.streams.worker import stop_on_signals

    settings = _settings(args)
    _published_registry_required(settings)
    if args.into == "archive":
        try:
            archived = replay_into_archive(settings, args.topic, args.start, args.end,
                                           args.group or f"vahini-archive-replay-{args.topic}",
                                           progress=not args.no_progress, stop=stop_on_signals())
        except PositionError as exc:
            raise UserError(str(exc)) from None
        print(f"archive replay done: records={archived.records} rows={archived.rows} "
              f"interactions={archived.interactions} skipped={archived.skipped} files={archived.files}")
        return 0
    try:
        stats = replay(settings, args.topic, args.start, args.end, args.group or f"vahini-replay-{args.topic}",
                       progress=not args.no_progress, stop=stop_on_signals())
    except PositionError as exc:
        raise UserError(str(exc)) from None
    print(f"replay done: events={stats.events} written={stats.rows_written} "
          f"dead_lettered={stats.dead_lettered} seconds={stats.seconds:.1f}")
    if stats.still_bad:
        print(f"still invalid, left in {args.topic} and not dead-lettered again: {sum(stats.still_bad.values())}")
        for reason, count in stats.still_bad.most_common():
            print(f"  {reason:<22} {count}")
    return 0


def serve(args) -> int:
    from vahini.serving.server import run_server

    settings = _settings(args, metrics_port=args.metrics_port)
    given = {"host": args.host, "port": args.port, "cpus": _cpus(args.cpus) if args.cpus else None}
    serving = settings.serving.model_copy(update={k: v for k, v in given.items() if v is not None})
    _published_registry_required(settings)
    run_server(settings.model_copy(update={"serving": serving}))
    return 0


def _cpus(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise UserError(f"--cpus: {text!r} is not a comma-separated list of CPU numbers, e.g. 0 or 2,3") from None


def get(args) -> int:
    from vahini.serving.retrieval import FeatureReader
    from vahini.registry.publish import RegistryFollower

    if args.target:
        return _get_remote(args)
    settings = _settings(args)
    follower = RegistryFollower(wiring.config_store(settings))
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    try:
        require_registry(follower.current, settings)
        reader = FeatureReader(store, cache, lambda: follower.current)
        keys = args.keys.split(",")
        results = reader.retrieve(args.entity, keys, args.groups.split(","))
        _print_features(args, {k: {r.group: _group_json(r, i) for r in results} for i, k in enumerate(keys)})
    finally:
        follower.close()
        cache.close()
        store.close()
    return 0


def _get_remote(args) -> int:
    """`vahini get --target`: the same JSON, from FeatureService.Retrieve."""
    from vahini.serving.api import feature_service_pb2 as pb

    _settings(args)
    keys = args.keys.split(",")
    reply = _remote(args, "FeatureService.Retrieve", pb.RetrieveRequest(
        entity=args.entity, keys=keys, groups=[pb.GroupSelector(group=g) for g in args.groups.split(",")]))
    _print_features(args, {k: {g.group: _group_json_of_reply(g, i) for g in reply.groups}
                            for i, k in enumerate(keys)})
    return 0


def _print_features(args, found: dict) -> None:
    """Per key and group, its values: as JSON with --json, else a block per (key, group)."""
    if args.json:
        print(json.dumps(found, indent=2))
        return
    for key, groups in found.items():
        for group, got in groups.items():
            when = f"event time {got['event_time']}" if got["event_time"] else "never written"
            print(f"{args.entity} {key}  {group} v{got['schema_version']}  {when}")
            values = {name: _shown(feature["value"]) for name, feature in got["features"].items()}
            width, value_width = max(map(len, values)), max(map(len, values.values()))
            for name, feature in got["features"].items():
                print(f"  {name:<{width}}  {values[name]:<{value_width}}  {feature['status']}")


def _shown(value) -> str:
    """A value as JSON, a long vector cut short."""
    text = json.dumps(value)
    return text if len(text) <= 48 else f"{text[:40]} ... ({len(value)} values)]"


def _group_json_of_reply(group, i: int) -> dict:
    import numpy as np

    from vahini.serving.convert import array_of
    from vahini.serving.retrieval import STATUS_NAMES

    event_ms = int(array_of(group.event_time_ms)[i])
    features = {}
    for column in group.features:
        value = column.strings.values[i] if column.type == "string" else array_of(column.tensor)[i]
        status = int(np.frombuffer(column.status, np.int8)[i])
        features[column.name] = {"value": _plain(value), "status": STATUS_NAMES[status]}
    return {"schema_version": group.schema_version, "event_time_ms": event_ms or None,
            "event_time": _iso(event_ms) if event_ms else None, "features": features}


def _group_json(result, i: int) -> dict:
    """One key's values of one group, for people: float32 printed at float32 precision."""
    from vahini.serving.retrieval import STATUS_NAMES

    event_ms = int(result.event_time_ms[i])
    features = {}
    for j, name in enumerate(result.features):
        features[name] = {"value": _plain(result.values[name][i]), "status": STATUS_NAMES[result.status[i, j]]}
    return {"schema_version": result.definition.version, "event_time_ms": event_ms or None,
            "event_time": _iso(event_ms) if event_ms else None, "features": features}


def _plain(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.float32):
        return float(str(value))  # the shortest text that round-trips as float32: 0.1, not 0.10000000149
    return value.item() if isinstance(value, np.generic) else value


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def require_registry(registry, settings) -> None:
    """With nothing published, reads would see every key as missing and workers would
    dead-letter every event: refuse, and say what to do."""
    if registry is None or not registry.entities:
        raise UserError(f"no registry in {settings.config_store}: run 'vahini apply DIR' first")


def _published_registry_required(settings) -> None:
    from vahini.registry.publish import read_published

    store = wiring.config_store(settings)
    try:
        require_registry(read_published(store), settings)
    finally:
        store.close()


def dead_letters(args) -> int:
    from vahini.streams.dead_letter import summarize

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
    if summary["latest"]:
        print(f"latest {len(summary['latest'])}, oldest first:")
    for entry in summary["latest"]:
        key = f"  {entry['entity_key']}" if entry["entity_key"] else ""
        print(f"{_iso(entry['failed_at_ms'])}  {entry['source']}{key}  {entry['reason']}: {entry['detail']}")
    return 0


def lag(args) -> int:
    from vahini.consumer_lag import total, worker_lag

    settings = _settings(args)
    log = wiring.event_log(settings)
    try:
        lags = worker_lag(log, settings)
    finally:
        log.close()
    if args.json:
        print(json.dumps([{"worker": p.worker, "group": p.group, "topic": p.topic, "partition": p.partition,
                           "end": p.end, "committed": p.committed, "lag": p.lag} for p in lags], indent=2))
        return 0
    if not lags:
        print("no worker group has committed anything yet")
        return 0
    print(f"{'worker':<13} {'group':<28} {'topic':<28} {'partition':>9} {'end':>10} {'committed':>10} {'lag':>8}")
    for p in lags:
        committed = "none" if p.committed is None else str(p.committed)
        shown = "-" if p.lag is None else str(p.lag)
        print(f"{p.worker:<13} {p.group:<28} {p.topic:<28} {p.partition:>9} {p.end:>10} {committed:>10} {shown:>8}")
    print(f"total lag: {total(lags)}")
    return 0


def console(args) -> int:
    import signal
    import threading

    from vahini.console.server import start_console

    settings = _settings(args)
    given = {"host": args.host, "port": args.port}
    settings = settings.model_copy(update={"console": settings.console.model_copy(
        update={k: v for k, v in given.items() if v is not None})})
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        running = start_console(settings)
    except OSError as exc:
        raise UserError(f"cannot listen on {settings.console.host}:{settings.console.port}: {exc.strerror}") from None
    print(f"console at {running.url}", flush=True)
    stop.wait()
    running.stop()
    return 0


def _moment_ms(text: str | None, flag: str) -> int | None:
    """An ISO-8601 time (UTC unless it says otherwise) or epoch milliseconds."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected an ISO-8601 time (2026-12-07T10:00:00Z) or epoch "
                        f"milliseconds") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def logs_export(args) -> int:
    from vahini.offline.export import ExportError, export_feature_log

    settings = _settings(args)
    since, until = _moment_ms(args.since, "--since"), _moment_ms(args.until, "--until")
    try:
        stats = export_feature_log(settings, args.model, Path(args.out), since, until, progress=not args.no_progress)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps({"out": args.out, "responses": stats.responses, "rows": stats.rows,
                      "versions": list(stats.versions)}))
    return 0


def training_set(args) -> int:
    from vahini.offline.labels import LabelsError
    from vahini.offline.training_set import TrainingSetError, build_training_set

    settings = _settings(args)
    if args.archive:
        settings = settings.model_copy(update={"archive": settings.archive.model_copy(update={"url": args.archive})})
    _published_registry_required(settings)
    try:
        stats = build_training_set(settings, args.model, Path(args.labels), Path(args.out), args.version,
                                   progress=not args.no_progress, workers=args.workers or os.cpu_count() or 1,
                                   method=args.method)
    except (LabelsError, TrainingSetError) as exc:
        raise UserError(str(exc)) from None
    print(json.dumps({"out": args.out, "rows": stats.rows, "columns": stats.columns, "method": args.method,
                      "requests": stats.requests, "executor_runs": stats.runs}))
    return 0
