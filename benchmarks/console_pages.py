"""The console's pages at scale: each page's server time with 200 feature groups, 50
models and 64 partitions, on the embedded stack and on the real services.

    .venv/bin/python -m benchmarks.console_pages [--stack embedded|real|both] [--requests 30] [--rounds 3]

The registry has `--groups` groups of 8 features and `--models` models of 4 lookups
(one chained), a sequence and 24 columns; the feature topic has `--partitions`
partitions with the ingest group committed on each; the dead-letter topic holds
`--dead-letters` events. Every page is fetched over HTTP, as the browser does, with
a caller's token (the tokens file is on). The baseline, measured in the same run in
turns with the pages, is /healthz: the same server, routing and HTTP, no work. Each
page's p50 and p99 are printed, with p99 against the 300 ms budget and p50 against
the baseline's. `--rounds` slices share the machine's drift among the pages.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import real_settings, table
from vahini import wiring
from vahini.registry import publish
from vahini.serving.auth import token_sha256
from vahini.settings import IngestSettings, Settings, TopicSettings

BUDGET_MS = 300.0
TOKEN = "bench-operator"
PAGES = ("/healthz", "/registry", "/registry/diff", "/models", "/models/model_0", "/try", "/live", "/dead-letters")


def registry_yaml(groups: int, models: int) -> dict[str, str]:
    entities = "entities:\n  - {name: product, keys: [product_id]}\n  - {name: user, keys: [user_id]}\n" \
               "  - {name: category, keys: [category_id]}\n"
    group_lines = ["feature_groups:"]
    for g in range(groups):
        entity = ("product", "user")[g % 2]
        group_lines += [f"  - name: group_{g}", f"    entity: {entity}", "    version: 1", "    features:"]
        group_lines += [f"      - {{name: f{f}, type: float}}" for f in range(7)]
        group_lines.append("      - {name: category_id, type: string}")
    group_lines += ["  - name: category_stats", "    entity: category", "    version: 1", "    features:",
                    "      - {name: popularity, type: float}"]
    model_lines = ["models:"]
    for m in range(models):
        product_groups = [f"group_{(2 * (m + i)) % groups}" for i in range(2)]
        user_group = f"group_{(2 * m + 1) % groups}"
        model_lines += [f"  - name: model_{m}", "    context: [user_id, product_ids]", "    rows: product_ids",
                        "    lookups:",
                        f"      - {{name: p0, group: {product_groups[0]}, keys: {{product_id: row}}}}",
                        f"      - {{name: p1, group: {product_groups[1]}, keys: {{product_id: row}}}}",
                        f"      - {{name: u, group: {user_group}, keys: {{user_id: context.user_id}}}}",
                        "      - {name: cat, group: category_stats, keys: {category_id: p0.category_id}}",
                        "    sequences:",
                        "      - {name: clicks, user: context.user_id, type: CLICK, field: category_id, length: 5}",
                        "    features:"]
        model_lines += [f"      - {lookup}.f{f}" for lookup in ("p0", "p1", "u") for f in range(7)]
        model_lines += ["      - {name: log_pop, from: cat.popularity, transform: log1p}",
                        "      - {name: clicked, from: clicks, transform: count_matching, match: p0.category_id,"
                        " dtype: int32}", "      - cat.popularity"]
    return {"entities.yaml": entities, "groups.yaml": "\n".join(group_lines) + "\n",
            "models.yaml": "\n".join(model_lines) + "\n"}


def prepare(settings: Settings, args, workdir: Path) -> None:
    directory = workdir / "registry"
    directory.mkdir(parents=True)
    for name, text in registry_yaml(args.groups, args.models).items():
        (directory / name).write_text(text)
    store = wiring.config_store(settings)
    publish.apply(directory, store)
    (directory / "extra.yaml").write_text("feature_groups:\n  - name: extra\n    entity: user\n    version: 1\n"
                                          "    features: [{name: x, type: int32}]\n")
    publish.apply(directory, store)  # a second revision, for the diff page
    store.close()
    log = wiring.event_log(settings)
    topics = settings.topics
    for topic in (topics.feature_updates, topics.dead_letter):
        log.create_topic(topic, args.partitions)
    producer = log.producer()
    for i in range(args.partitions * 10):
        producer.send(topics.feature_updates, b"x", key=f"k{i}".encode())
    for i in range(args.dead_letters):
        producer.send(topics.dead_letter, b"\x00not avro", key=f"d{i}".encode(), headers=[
            ("vahini.reason", b"undecodable"), ("vahini.detail", b"not Avro"),
            ("vahini.source.topic", topics.feature_updates.encode()), ("vahini.source.partition", b"0"),
            ("vahini.source.offset", str(i).encode()), ("vahini.failed_at_ms", str(int(time.time() * 1000)).encode())])
    producer.flush()
    consumer = log.consumer(settings.ingest.group, [topics.feature_updates],
                            {(topics.feature_updates, p): 0 for p in range(args.partitions)})
    consumer.commit({(topics.feature_updates, p): 5 for p in range(args.partitions)})
    consumer.close()
    log.close()


def fetch_ms(url: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as reply:
        reply.read()
        assert reply.status == 200, (url, reply.status)
    return (time.perf_counter() - started) * 1000


def measure(settings: Settings, args) -> list[list]:
    from vahini.console.server import start_console

    console = start_console(settings, port=0)
    times: dict[str, list[float]] = {page: [] for page in PAGES}
    try:
        for page in PAGES:  # warm: templates compiled, connections open
            fetch_ms(console.url + page)
        for _ in range(args.rounds):
            for page in PAGES:
                times[page] += [fetch_ms(console.url + page) for _ in range(args.requests // args.rounds)]
    finally:
        console.stop()
    base = float(np.percentile(times["/healthz"], 50))
    rows = []
    for page in PAGES:
        p50, p99 = (float(np.percentile(times[page], q)) for q in (50, 99))
        rows.append([page, len(times[page]), f"{p50:.1f}", f"{p99:.1f}", f"{p99 / BUDGET_MS:.2f}",
                     f"{p50 / base:.1f}x"])
    return rows


def stack_settings(kind: str, run: str, workdir: Path, tokens: Path, partitions: int) -> Settings:
    topics = TopicSettings(feature_updates=f"bench-fu-{run}", interactions=f"bench-ia-{run}",
                           sessions=f"bench-ia-{run}", dead_letter=f"bench-dlq-{run}", partitions=partitions)
    common = {"topics": topics, "ingest": IngestSettings(group=f"bench-ingest-{run}")}
    if kind == "embedded":
        settings = Settings(event_log=f"sqlite:///{workdir}/events.db", feature_store=f"sqlite:///{workdir}/f.db",
                            feature_cache=f"sqlite:///{workdir}/hot.db", config_store=f"file://{workdir}/config",
                            **common)
    else:
        settings = real_settings(run, f"bench_console_{run}", **common)
    return settings.model_copy(update={"serving": settings.serving.model_copy(update={
        "auth": settings.serving.auth.model_copy(update={"tokens_file": tokens})})})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", choices=("embedded", "real", "both"), default="both")
    p.add_argument("--groups", type=int, default=200)
    p.add_argument("--models", type=int, default=50)
    p.add_argument("--partitions", type=int, default=64)
    p.add_argument("--dead-letters", type=int, default=1000)
    p.add_argument("--requests", type=int, default=30, help="per page, split over the rounds")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    for kind in (("embedded", "real") if args.stack == "both" else (args.stack,)):
        workdir = Path(tempfile.mkdtemp(prefix="bench-console-"))
        tokens = workdir / "callers.yaml"
        tokens.write_text(f"callers:\n  - name: operator\n    token_sha256: {token_sha256(TOKEN)}\n"
                          f"    allow: [Console.Read, Console.Operate]\n")
        settings = stack_settings(kind, uuid.uuid4().hex[:8], workdir, tokens, args.partitions)
        prepare(settings, args, workdir)
        print(table(f"console pages, {kind} stack: {args.groups} groups, {args.models} models, {args.partitions} "
                    f"partitions, {args.dead_letters} dead letters; ms per page over HTTP, baseline /healthz",
                    ["page", "requests", "p50 ms", "p99 ms", "p99 / 300 ms budget", "p50 / baseline"],
                    measure(settings, args)))


if __name__ == "__main__":
    main()
