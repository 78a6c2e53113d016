"""Shared pieces of the benchmarks: real-service settings, synthetic data, tables."""

from __future__ import annotations

import os

from vahini.settings import CacheSettings, Settings
from vahini.synthetic import MIX, Synthetic, synthesize  # noqa: F401 - the benchmarks' data, kept importable here

KAFKA = os.environ.get("VAHINI_BENCH_KAFKA", "127.0.0.1:9092")
CASSANDRA = os.environ.get("VAHINI_BENCH_CASSANDRA", "127.0.0.1:9042")
REDIS = os.environ.get("VAHINI_BENCH_REDIS", "redis://127.0.0.1:6379/0")
ZOOKEEPER = os.environ.get("VAHINI_BENCH_ZOOKEEPER", "127.0.0.1:2181")


def real_settings(run: str, keyspace: str, **overrides) -> Settings:
    """Settings of one benchmark run: its own keyspace, registry path and cache namespace."""
    overrides.setdefault("cache", CacheSettings(namespace=f"bench-{run}"))
    return Settings(event_log=f"kafka://{KAFKA}", feature_store=f"cassandra://{CASSANDRA}/{keyspace}",
                    feature_cache=REDIS, config_store=f"zk://{ZOOKEEPER}/vahini-bench-{run}", **overrides)


def local_service_pid(service: str) -> int | None:
    """The pid of a service `infra/services.sh` started on this machine (its pid file), or
    None when it is not running here: then the benchmark reports no CPU for it."""
    home = os.environ.get("VAHINI_INFRA_HOME", os.path.expanduser("~/.cache/vahini-infra"))
    try:
        pid = int(open(os.path.join(home, "run", f"{service}.pid")).read())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [f"\n{title}", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
