"""The Live page's figures from the workers' and servers' Prometheus endpoints
(console.metrics_endpoints): ingest rate, freshness per group, cache hit rate,
circuit breakers and open sessions. Rates are the change since the previous read."""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

EVENT_COUNTERS = ("vahini_ingest_events", "vahini_interaction_events")  # families drop the _total
SCRAPE_TIMEOUT_S = 1.0


@dataclass
class Endpoint:
    url: str
    up: bool
    error: str = ""


@dataclass
class Live:
    endpoints: list[Endpoint] = field(default_factory=list)
    events_total: float = 0.0
    events_per_s: float | None = None  # None until two reads
    newest_event_s: dict[str, float] = field(default_factory=dict)  # per feature group
    cache: dict[str, tuple[float, float]] = field(default_factory=dict)  # tier -> (hits, lookups)
    circuits_open: dict[str, bool] = field(default_factory=dict)  # dependency -> open
    open_sessions: float = 0.0
    read_at_s: float = 0.0

    def hit_rate(self, tier: str) -> float | None:
        hits, lookups = self.cache.get(tier, (0.0, 0.0))
        return hits / lookups if lookups else None

    def age_s(self, group: str) -> float:
        return max(0.0, self.read_at_s - self.newest_event_s[group])


class LiveMetrics:
    def __init__(self, endpoints: list[str]):
        self._endpoints = endpoints
        self._lock = threading.Lock()
        self._previous: tuple[float, float] | None = None  # (monotonic s, events total)

    def read(self) -> Live:
        live = Live(read_at_s=time.time())
        for url in self._endpoints:
            try:
                text = _fetch(url)
            except OSError as exc:
                live.endpoints.append(Endpoint(url, False, str(exc)))
                continue
            live.endpoints.append(Endpoint(url, True))
            _add(live, text)
        with self._lock:
            now = time.monotonic()
            if self._previous is not None and now > self._previous[0] and live.events_total >= self._previous[1]:
                live.events_per_s = (live.events_total - self._previous[1]) / (now - self._previous[0])
            self._previous = (now, live.events_total)
        return live


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as reply:
        return reply.read().decode()


def _add(live: Live, text: str) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            if family.name in EVENT_COUNTERS and sample.name.endswith("_total"):
                live.events_total += value
            elif sample.name == "vahini_group_newest_event_timestamp_seconds":
                group = labels["group"]
                live.newest_event_s[group] = max(live.newest_event_s.get(group, 0.0), value)
            elif sample.name == "vahini_cache_lookups_total":
                hits, lookups = live.cache.get(labels["tier"], (0.0, 0.0))
                live.cache[labels["tier"]] = (hits + (value if labels["result"] == "hit" else 0.0), lookups + value)
            elif sample.name == "vahini_cache_circuit_open":
                dependency = labels["dependency"]
                live.circuits_open[dependency] = live.circuits_open.get(dependency, False) or value > 0
            elif sample.name == "vahini_open_sessions":
                live.open_sessions += value
