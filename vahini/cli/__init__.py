"""The `vahini` command. Each subcommand lives in its own function; heavy modules
are imported inside them so `vahini --help` stays instant."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vahini.cli import commands, registry_commands
from vahini.errors import BadSettings, InvalidEvent, NotAllowed, NotFound, StoreUnavailable

DESCRIPTION = """\
Vahini: real-time ML features. Producers send events to a log (Kafka, or an
embedded SQLite log); stream workers write them to a feature store (Scylla/
Cassandra, or SQLite) behind a cache (Redis/Dragonfly, or in-process memory);
rankers read them over gRPC.

Backends come from settings: VAHINI_* environment variables or a TOML file
(--settings). Without any, everything runs embedded under ./.vahini/.
"""

EPILOG = """\
examples:
  vahini demo                                    # end to end on embedded adapters
  vahini apply registry/                         # validate and publish a registry
  vahini produce --kind feature-update rows.jsonl
  vahini ingest features --batch-size 5000       # one worker; start more to scale
  vahini replay --topic vahini.feature-updates --from 2026-11-26T00:00:00Z
  vahini ingest interactions                     # the interaction store's worker
  vahini history u42 --type click --limit 10     # a user's interactions, hot or cold
  vahini serve --port 50051                      # gRPC FeatureService, InteractionService, ModelProxy
  vahini query home_ranker --set user_id=u42 --set product_ids=p1,p2
  vahini dev model-server --model ranker         # a reference KServe v2 model endpoint, for tests
  vahini registry show home_ranker               # what is published; `registry diff 1` what changed
  vahini console --port 8080                     # the operator console, in a browser
  vahini lag                                     # consumer lag of every worker group

exit codes: 0 done; 1 a user error (bad input, settings, names or rights; some
lines rejected); 2 a usage error (the command line); 3 a service it needs is
unavailable or too slow (retry later); 130 interrupted.
"""


GLOBAL_OPTIONS = ("settings", "log_level", "json_logs")


def _global_options() -> argparse.ArgumentParser:
    """The options every command takes, before or after its name (`vahini --settings x.toml
    get ...` and `vahini get ... --settings x.toml`). SUPPRESS: a command's parser sets
    them only when given there, so one given before the command is not reset."""
    g = argparse.ArgumentParser(add_help=False)
    g.add_argument("--settings", metavar="FILE", default=argparse.SUPPRESS,
                   help="TOML settings file (environment variables override it)")
    g.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING or ERROR (default: INFO)")
    g.add_argument("--json-logs", action="store_true", default=argparse.SUPPRESS,
                   help="log JSON lines even on a terminal")
    return g


_GLOBAL = _global_options()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vahini", description=DESCRIPTION, epilog=EPILOG, parents=[_GLOBAL],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"vahini {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_apply(sub)
    _add_registry(sub)
    _add_produce(sub)
    _add_demo(sub)
    _add_ingest(sub)
    _add_replay(sub)
    _add_dead_letters(sub)
    _add_lag(sub)
    _add_serve(sub)
    _add_console(sub)
    _add_get(sub)
    _add_history(sub)
    _add_query(sub)
    _add_search(sub)
    _add_logs(sub)
    _add_training_set(sub)
    _add_dev(sub)
    _add_model_server(sub, "model-server", "the old name of `vahini dev model-server`", _old_model_server)
    return p


def _add_apply(sub) -> None:
    a = sub.add_parser("apply", parents=[_GLOBAL], help="validate registry YAML files and publish them to the config store",
                       description="Validate every *.yaml in DIR (entities, feature groups, model graphs) and "
                                   "publish them atomically. Every problem is reported as file:line: what is "
                                   "wrong; nothing is published if anything is wrong. Prints what the publish "
                                   "changes; warns when a group or feature is removed or a type widens. A type "
                                   "change that would misread stored values is rejected.")
    a.add_argument("directory", type=Path, help="directory of registry *.yaml files")
    a.add_argument("--dry-run", action="store_true", help="validate and print what would change; publish nothing")
    a.set_defaults(run=commands.apply)


def _add_registry(sub) -> None:
    r = sub.add_parser("registry", parents=[_GLOBAL], help="show the published registry, or diff two revisions",
                       description="Each publish that changes the registry gets the next revision number "
                                   "(`vahini apply` prints it); earlier revisions are kept in the config store.")
    rsub = r.add_subparsers(dest="what", metavar="WHAT", required=True)
    show = rsub.add_parser("show", parents=[_GLOBAL], help="entities, feature groups and models; or one of them",
                           description="Without NAME: a line per entity, feature group and model. With the name "
                                       "of a group: its features, types, defaults, TTL and readable versions; of "
                                       "a model: its graph (lookups, sequences, columns, score nodes) and the "
                                       "versions a request may pin.")
    show.add_argument("name", nargs="?", help="a feature group or model")
    show.add_argument("--revision", type=int, help="an earlier revision (default: the latest)")
    show.add_argument("--json", action="store_true", help="the published document (or the group or model) as JSON")
    show.set_defaults(run=registry_commands.show)
    diff = rsub.add_parser("diff", parents=[_GLOBAL], help="what changed between two revisions",
                           description="Entities, feature groups, features and model versions added, removed "
                                       "or changed from revision OLD to NEW, worded as `vahini apply` words them.")
    diff.add_argument("old", type=int, help="the earlier revision")
    diff.add_argument("new", type=int, nargs="?", help="the later revision (default: the latest)")
    diff.add_argument("--json", action="store_true", help='{"from": OLD, "to": NEW, "changes": [...]}')
    diff.set_defaults(run=registry_commands.diff)


def _add_produce(sub) -> None:
    pr = sub.add_parser("produce", parents=[_GLOBAL], help="send events from a JSON-lines (or Parquet) file to the event log",
                        description="Each JSON line is one event of --kind, as in schemas/avro. Invalid events are "
                                    "reported with their line number and skipped; valid ones are sent keyed by "
                                    "entity or user. Parquet files hold feature rows: columns entity, group, the "
                                    "entity's key columns, feature columns and optionally event_time_ms. "
                                    "event_time_ms (epoch milliseconds) is optional for every kind: absent or null "
                                    "means now. docs/events.md shows one line of each kind.")
    pr.add_argument("file", type=Path)
    pr.add_argument("--kind", choices=["feature-update", "interaction", "session"], default="feature-update",
                    help="event kind of every JSON line (default: %(default)s); Parquet files are feature updates")
    pr.add_argument("--producer-id", default="vahini-cli", help="producer_id of feature updates (default: %(default)s)")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.set_defaults(run=commands.produce)


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", parents=[_GLOBAL], help="run the whole pipeline on embedded adapters (no servers needed)",
                       description="Publish the sample registry, produce synthetic users, products and "
                                   "interactions, ingest them with a worker, and read features back, all on "
                                   "the embedded adapters under --workdir. Needs no server.")
    d.add_argument("--workdir", type=Path, default=Path(".vahini/demo"), help="wiped and reused (default %(default)s)")
    d.add_argument("--users", type=int, default=10_000, help="synthetic users (default %(default)s)")
    d.add_argument("--products", type=int, default=50_000, help="synthetic products (default %(default)s)")
    d.add_argument("--categories", type=int, default=200, help="product categories (default %(default)s)")
    d.set_defaults(run=commands.demo)


def _add_ingest(sub) -> None:
    i = sub.add_parser("ingest", parents=[_GLOBAL], help="run a stream worker",
                       description="Run one stream worker in the foreground. Scale out by starting more "
                                   "processes with the same group.")
    isub = i.add_subparsers(dest="what", metavar="WHAT", required=True)
    f = isub.add_parser("features", parents=[_GLOBAL], help="consume FeatureUpdate topics into the feature store",
                        description="Consume in a consumer group, decode and validate in batches, merge per "
                                    "(key, group), write with event-time last-write-wins, invalidate the cache, "
                                    "then commit. Invalid events go to the dead-letter topic. SIGTERM drains "
                                    "and commits. Start more processes with the same --group to scale out.")
    f.add_argument("--topic", action="append", dest="topics", help="topic to consume (repeatable)")
    f.add_argument("--group", help="consumer group")
    f.add_argument("--batch-size", type=int, help="max events per batch")
    f.add_argument("--linger-ms", type=int, help="max wait to fill a batch")
    f.add_argument("--concurrency", type=int, help="in-flight store writes")
    f.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    f.add_argument("--stop-at-end", action="store_true",
                   help="exit 0 once the group has committed the log end seen at start (bulk loads, scripts); "
                        "prints a JSON summary")
    f.set_defaults(run=commands.ingest_features)
    n = isub.add_parser("interactions", parents=[_GLOBAL], help="consume interactions and session events into the interaction store",
                        description="Sessions drive users into and out of the hot tier: START loads the user's "
                                    "history from the cold tier; interactions of an open session go to the hot "
                                    "tier, others straight to the cold tier; END, or interactions."
                                    "inactivity_timeout_s without an event of the user, flushes the session to the "
                                    "cold tier and evicts it. Offsets are committed only up to the oldest "
                                    "interaction not yet in the cold tier, so a crash replays, never loses. "
                                    "Invalid events go to the dead-letter topic. SIGTERM stops cleanly.")
    n.add_argument("--group", help="consumer group (default: interactions.group)")
    n.add_argument("--batch-size", type=int, help="max events per batch (default: interactions.batch_size)")
    n.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    n.add_argument("--stop-at-end", action="store_true",
                   help="exit 0 once the group has committed the log end seen at start, and print a JSON "
                        "summary. An open session holds the commit until it ends (END, inactivity) or the "
                        "next checkpoint flushes it")
    n.set_defaults(run=commands.ingest_interactions)
    a = isub.add_parser("archive", parents=[_GLOBAL], help="keep every FeatureUpdate and interaction in the offline archive",
                        description="Consume the feature-update and interaction topics into the offline archive "
                                    "(archive.url): Parquet files partitioned by group and day, each row with its "
                                    "event time, which `vahini training-set` builds training sets from. Files are "
                                    "synced and renamed into place before offsets are committed: a crash loses "
                                    "nothing, and what is written twice is read once. Invalid events are skipped "
                                    "and counted (the online workers dead-letter them). Backfill with "
                                    "`vahini replay --into archive`.")
    a.add_argument("--group", help="consumer group (default: archive.group)")
    a.add_argument("--batch-size", type=int, help="records per poll (default: archive.batch_size)")
    a.add_argument("--flush-rows", type=int, help="records buffered before files are written (default: "
                                                  "archive.flush_rows)")
    a.add_argument("--archive", metavar="URL", help="where the files go, file://PATH (default: archive.url)")
    a.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    a.add_argument("--stop-at-end", action="store_true",
                   help="exit 0 once the group has committed the log end seen at start, and print a JSON summary")
    a.set_defaults(run=commands.ingest_archive)


def _add_replay(sub) -> None:
    r = sub.add_parser("replay", parents=[_GLOBAL], help="re-ingest a range of a topic (backfills, recovery)",
                       description="Re-ingest --topic from --from to --to (default: the end at start time) through "
                                   "the worker logic, under its own consumer group, with a progress bar. Safe while "
                                   "live ingestion runs: the newest value by event time wins. Positions: earliest, "
                                   "latest, an offset (applied to every partition), @<epoch ms> or an ISO-8601 time.")
    r.add_argument("--topic", required=True, help="topic to re-ingest (a feature-update topic, or the dead-letter "
                                                  "topic to re-drive events once the cause is fixed)")
    r.add_argument("--from", dest="start", required=True, metavar="POSITION", help="first position to re-ingest")
    r.add_argument("--to", dest="end", metavar="POSITION",
                   help="stop before this position (exclusive); default: the end of the topic when the replay starts")
    r.add_argument("--group", default=None, help="consumer group (default vahini-replay-<topic>, or "
                                                 "vahini-archive-replay-<topic> with --into archive)")
    r.add_argument("--into", choices=("store", "archive"), default="store",
                   help="store: the online store (default); archive: the offline archive, to backfill the "
                        "history training sets are built from")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(run=commands.replay)


def _add_dead_letters(sub) -> None:
    dl = sub.add_parser("dead-letters", parents=[_GLOBAL], help="show dead-lettered events: counts by reason and the latest ones",
                        description="Read the dead-letter topic and print how many events failed for each reason, "
                                    "then the latest --limit of them with where they came from and why. To re-drive "
                                    "them once fixed (e.g. after publishing a missing group): "
                                    "vahini replay --topic <dead-letter topic> --from earliest")
    dl.add_argument("--limit", type=int, default=20, help="latest entries to print (default %(default)s)")
    dl.add_argument("--json", action="store_true", help="print JSON instead of text")
    dl.set_defaults(run=commands.dead_letters)


def _add_lag(sub) -> None:
    lg = sub.add_parser("lag", parents=[_GLOBAL], help="consumer lag of the worker groups, read from the event log",
                        description="For each kind of worker (features: ingest.group; interactions: "
                                    "interactions.group; archive: archive.group), each partition of its topics: "
                                    "the end offset, what the group committed, and the lag between them. Groups "
                                    "that never committed on a topic are left out (that worker is not running). "
                                    "The console's Live page shows the same figures.")
    lg.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lg.set_defaults(run=commands.lag)


def _add_console(sub) -> None:
    c = sub.add_parser("console", parents=[_GLOBAL], help="serve the operator console: a web application",
                       description="Serve the operator console: the registry and its diffs, the model graphs "
                                   "drawn, Try it (a model's matrix, Retrieve, a user's history, over the gRPC "
                                   "server at console.target), live lag, freshness and cache figures, and the dead "
                                   "letters with a re-drive. TLS and callers come from serving.tls and "
                                   "serving.auth: a caller needs Console.Read to see and Console.Operate to act. "
                                   "SIGTERM or Ctrl-C stops it.")
    c.add_argument("--host", help="address to listen on (default: console.host, 127.0.0.1)")
    c.add_argument("--port", type=int, help="port to listen on (default: console.port, 8080)")
    c.set_defaults(run=commands.console)


def _add_serve(sub) -> None:
    s = sub.add_parser("serve", parents=[_GLOBAL], help="serve gRPC: FeatureService, InteractionService, ModelProxy",
                       description="Serve FeatureService (Retrieve, Persist), InteractionService (histories), "
                                   "ModelProxy (GetFeatures: a model's feature matrix and scores), gRPC health "
                                   "and reflection. Picks up "
                                   "registry publishes without a restart. Calls beyond serving.max_in_flight get "
                                   "RESOURCE_EXHAUSTED at once. A port already in use is refused (exit 1). SIGTERM "
                                   "drains in-flight calls.")
    s.add_argument("--host", help="address to listen on (default: serving.host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="port to listen on (default: serving.port, 50051)")
    s.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    s.add_argument("--cpus", help="comma-separated CPUs to pin the process to, e.g. 3 (default: serving.cpus, none); "
                                  "one process per core, pinned, answers with a lower p99")
    s.set_defaults(run=commands.serve)


def _add_get(sub) -> None:
    g = sub.add_parser("get", parents=[_GLOBAL], help="print features of some keys (for people; rankers use gRPC)",
                       description="Read through the same path as Retrieve (LRU, cache, store) and print, per key "
                                   "and group, the schema version, the event time and each feature's value and "
                                   "status (present, missing, expired, unreadable).")
    g.add_argument("--entity", required=True, help="entity name, as in the registry")
    g.add_argument("--keys", required=True, help="comma-separated entity keys (multi-column keys joined by |)")
    g.add_argument("--groups", required=True, help="comma-separated feature groups")
    g.add_argument("--target", help="HOST:PORT of a running server: ask it (FeatureService.Retrieve) instead of "
                                    "reading the stores directly")
    g.add_argument("--json", action="store_true", help="one JSON object: {key: {group: {schema_version, "
                   "event_time_ms, event_time, features: {name: {value, status}}}}}")
    _add_caller_arguments(g)
    g.set_defaults(run=commands.get)


def _add_caller_arguments(p) -> None:
    """How a command calls a server that has TLS and tokens on (docs/security.md)."""
    p.add_argument("--token-file", default=os.environ.get("VAHINI_TOKEN_FILE"),
                   help="file holding this caller's bearer token (default: $VAHINI_TOKEN_FILE)")
    p.add_argument("--ca-file", default=os.environ.get("VAHINI_CA_FILE"),
                   help="PEM CA that signed the server's certificate: connect with TLS (default: $VAHINI_CA_FILE)")
    p.add_argument("--cert-file", help="PEM client certificate, for servers that require mutual TLS")
    p.add_argument("--key-file", help="PEM key of --cert-file")


def _add_query(sub) -> None:
    q = sub.add_parser("query", parents=[_GLOBAL], help="ask a running Model Proxy for a model's feature matrix",
                       description="Call ModelProxy.GetFeatures on a running server (`vahini serve`) and print the "
                                   "matrix as a table, or with --json as one object: {model, version, columns, "
                                   "row_ids, matrix, missing, scores}. Context ids come from --set "
                                   "NAME=ID[,ID...].")
    q.add_argument("model", help="model name, as in the registry's models:")
    q.add_argument("--set", dest="context", action="append", default=[], metavar="NAME=IDS",
                   help="a context input, e.g. user_id=u42 or product_ids=p1,p2 (repeatable)")
    q.add_argument("--target", help="HOST:PORT of the server (default: serving.host:serving.port)")
    q.add_argument("--version", type=int, default=0, help="a published version of the model's graph (`vahini "
                   "apply` prints it; default: the latest)")
    q.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds (default %(default)s)")
    _add_caller_arguments(q)
    q.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    q.set_defaults(run=commands.query)


def _add_search(sub) -> None:
    s = sub.add_parser("search", parents=[_GLOBAL], help="ask a running server for the keys nearest a vector",
                       description="Call FeatureService.Search on a running server (`vahini serve`): the k keys of "
                                   "a registry index (indexes:) nearest the vector stored for --key, or nearest "
                                   "--vector, nearest first. Scores are cosine similarity, dot product, or Euclidean "
                                   "distance for an l2 index. Prints a table, or with --json one object: "
                                   "{index, metric, hits: [{key, score}, ...]}.")
    s.add_argument("index", help="index name, as in the registry's indexes:")
    s.add_argument("--key", default="", help="search with the vector stored for this entity key, e.g. p42")
    s.add_argument("--vector", help="search with this vector: comma-separated numbers, e.g. 0.1,0.3,-0.2")
    s.add_argument("--k", type=int, default=10, help="how many keys (default %(default)s; at most vectors.max_k)")
    s.add_argument("--where", action="append", default=[], metavar="FILTER=VALUE",
                   help="keep keys whose filter feature equals VALUE, e.g. in_stock=true (repeatable)")
    s.add_argument("--target", help="HOST:PORT of the server (default: serving.host:serving.port)")
    s.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds (default %(default)s)")
    _add_caller_arguments(s)
    s.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    s.set_defaults(run=commands.search)


def _add_history(sub) -> None:
    h = sub.add_parser("history", parents=[_GLOBAL], help="print users' interaction histories, newest first",
                       description="Read each user's interactions the way InteractionService does: from the hot "
                                   "tier while the user's session is open, else from the cold tier. --json prints "
                                   "one object a line: {user_id, source (hot or cold), interactions: [...]}.")
    h.add_argument("user_ids", nargs="+", metavar="USER_ID", help="one or more user ids")
    h.add_argument("--type", dest="types", action="append", choices=["click", "order", "wishlist"],
                   help="only this type (repeatable; default: every type)")
    h.add_argument("--limit", type=int, default=20, help="interactions per user (default %(default)s)")
    h.add_argument("--json", action="store_true", help="one JSON object a line instead of a table")
    h.add_argument("--target", help="HOST:PORT of a running server: ask it (InteractionService.GetInteractions) "
                                    "instead of reading the tiers directly")
    _add_caller_arguments(h)
    h.set_defaults(run=commands.history)


def _add_logs(sub) -> None:
    lg = sub.add_parser("logs", parents=[_GLOBAL], help="the feature log: responses the Model Proxy logged",
                        description="Models that declare `log: {sample: 0.05}` in the registry have that share of "
                                    "their responses published, as served, to topics.feature_log.")
    lsub = lg.add_subparsers(dest="what", metavar="WHAT", required=True)
    e = lsub.add_parser("export", parents=[_GLOBAL], help="a model's logged responses as Parquet, a row per served row",
                        description="Read the feature log and write MODEL's responses served in [--since, --until) "
                                    "to --out: one row per served row, with the columns request_id, event_time, "
                                    "one per context field (the rows field holds the row's id), one per matrix "
                                    "column named as in the reply, score.<node> per score node, and version. "
                                    "Read it with pandas (pd.read_parquet) or DuckDB (SELECT * FROM 'FILE'); "
                                    "add a label column and it is a labels file for `vahini training-set`.")
    e.add_argument("model", metavar="MODEL", help="the model whose responses to export")
    e.add_argument("--since", metavar="TIME", help="served at or after: ISO-8601 or epoch ms (default: the start)")
    e.add_argument("--until", metavar="TIME", help="served before: ISO-8601 or epoch ms (default: now)")
    e.add_argument("--out", required=True, metavar="FILE.parquet", help="the Parquet file to write")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(run=commands.logs_export)


def _add_training_set(sub) -> None:
    t = sub.add_parser("training-set", parents=[_GLOBAL],
                       help="point-in-time training rows for a model, built by the Model Proxy's own graph code",
                       description="For each row of --labels (Parquet or CSV: one column per context field of the "
                                   "model's graph, the rows field holding one id per row; an event_time column, a "
                                   "timestamp or epoch ms; any other columns, carried through), write the row the "
                                   "Model Proxy would have served at event_time: each group's value as of that "
                                   "moment with TTLs measured from it, chained lookups resolved as of it, sequences "
                                   "from the interactions before it, and the same transforms and defaults, from "
                                   "the offline archive (`vahini ingest archive`). The output has the labels' "
                                   "columns and one per matrix column, as `vahini logs export` writes them.")
    t.add_argument("model", metavar="MODEL", help="the model whose graph builds the rows")
    t.add_argument("--labels", required=True, metavar="FILE", help="the labels file: .parquet or .csv")
    t.add_argument("--out", required=True, metavar="FILE.parquet", help="the Parquet file to write")
    t.add_argument("--version", type=int, default=0, help="the version of the model's graph (default: the latest)")
    t.add_argument("--archive", metavar="URL", help="the archive to read, file://PATH (default: archive.url)")
    t.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes building shares of the labels side by side, each on a core (default 1; 0: one "
                        "per core). Each holds its own copy of the archive's tables: memory grows with N. It speeds "
                        "up --method replay; the columnar method is fastest in one process")
    t.add_argument("--method", choices=("columnar", "replay"), default="columnar",
                   help="columnar (default): every label row of a chunk at once, a point-in-time join per lookup; "
                        "replay: the Model Proxy's executor once per request, slower, the reference the columnar "
                        "method is tested against. Both give the same rows")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(run=commands.training_set)


def _add_dev(sub) -> None:
    d = sub.add_parser("dev", parents=[_GLOBAL], help="tools for development and tests, not for production",
                       description="Reference tools that stand in for other systems while you develop or test.")
    dsub = d.add_subparsers(dest="what", metavar="TOOL", required=True)
    _add_model_server(dsub, "model-server", "run the reference model server (KServe v2 gRPC, linear scorers)",
                      commands.model_server)


def _add_model_server(sub, name: str, help_: str, run) -> None:
    m = sub.add_parser(name, parents=[_GLOBAL], help=help_,
                       description="A tiny KServe v2 / Triton-protocol model server for demos and tests: each "
                                   "--model scores a float32 matrix as sigmoid(matrix . weights + bias). A model "
                                   "graph's score node points at it like at any Triton or KServe endpoint.")
    m.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    m.add_argument("--port", type=int, default=8500, help="port (default %(default)s; 0 picks a free one)")
    m.add_argument("--model", dest="models", action="append", required=True, metavar="NAME[=WEIGHTS.json]",
                   help='a model: NAME weighs every column equally; NAME=FILE reads {"weights": [...], '
                        '"bias": 0.0} (repeatable)')
    m.set_defaults(run=run)


def _old_model_server(args) -> int:
    print("vahini model-server: this is now `vahini dev model-server`; the old name goes in the next release",
          file=sys.stderr)
    return commands.model_server(args)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vahini")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    for name in GLOBAL_OPTIONS:  # not given anywhere
        if not hasattr(args, name):
            setattr(args, name, None)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.run(args) or commands.OK
    except KeyboardInterrupt:
        return commands.INTERRUPTED
    except (commands.UserError, BadSettings, NotFound, NotAllowed) as exc:
        print(f"vahini {args.command}: {exc}", file=sys.stderr)
        return commands.USER_ERROR
    except InvalidEvent as exc:
        print(f"vahini {args.command}: {exc.detail}", file=sys.stderr)
        return commands.USER_ERROR
    except commands.Unavailable as exc:
        print(f"vahini {args.command}: {exc}", file=sys.stderr)
        return commands.UNAVAILABLE
    except StoreUnavailable as exc:
        print(f"vahini {args.command}: a backing service is unavailable: {exc}", file=sys.stderr)
        return commands.UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
