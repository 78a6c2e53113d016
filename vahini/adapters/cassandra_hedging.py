"""Hedged reads: a read that a replica has not answered within the reads' observed
p99 is sent again to the next replica of its query plan, and the first answer wins.

A hung node (a GC pause, a stuck disk, a half-open network) keeps its sockets open,
so the driver goes on sending it a third of the reads until its heartbeat gives
up. A request of 100 keys almost always has one of them, and without a hedge it
waits out its whole deadline. Hedging costs one extra read for the slowest ~1% of
reads, and it is safe only for reads: a write sent twice may land twice out of
order (see docs/operations.md, "Hedged reads").

The delay follows the reads as they are: a rolling window of the latencies of the
reads that one replica answered alone. Reads that needed a hedge are left out, so
a hung node cannot pull the delay up after itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from cassandra.policies import ConstantSpeculativeExecutionPolicy, SpeculativeExecutionPolicy


@dataclass(frozen=True)
class HedgeOptions:
    percentile: float = 99.0  # of the observed read latencies: how long a read waits before its hedge
    min_delay_s: float = 0.002  # never hedge sooner: below this, a hedge only doubles the load
    max_delay_s: float = 0.1  # never wait longer, whatever the reads did lately
    initial_delay_s: float = 0.05  # until enough reads were seen
    max_hedges: int = 2  # extra replicas a read may be sent to (RF 3: the other two)
    sample_every: int = 8  # one read in this many is timed: a callback per read costs CPU


class ObservedLatency:
    """A rolling window of read latencies and the delay it gives, refreshed every
    `refresh_every` samples. Written from the driver's event loop thread and read
    from the callers': single list writes and float reads, safe under the GIL."""

    def __init__(self, options: HedgeOptions, window: int = 1024, refresh_every: int = 64,
                 clock=time.monotonic):
        self._options = options
        self._window = [0.0] * window
        self._count = 0
        self._refresh_every = refresh_every
        self._clock = clock
        self.delay_s = options.initial_delay_s

    def record(self, seconds: float) -> None:
        self._window[self._count % len(self._window)] = seconds
        self._count += 1
        if self._count % self._refresh_every == 0 and self._count >= self._refresh_every * 2:
            seen = self._window[:min(self._count, len(self._window))]
            observed = float(np.percentile(seen, self._options.percentile))
            self.delay_s = min(max(observed, self._options.min_delay_s), self._options.max_delay_s)

    def record_answer(self, _result, future, sent_at: float) -> None:
        """A ResponseFuture callback: time the read, unless it took more than one replica."""
        if len(future.attempted_hosts) == 1:
            self.record(self._clock() - sent_at)


class HedgedReads(SpeculativeExecutionPolicy):
    """The driver's speculative execution, with the delay taken from ObservedLatency."""

    def __init__(self, latency: ObservedLatency, max_hedges: int):
        self._latency = latency
        self._max_hedges = max_hedges

    def new_plan(self, keyspace, statement):
        return ConstantSpeculativeExecutionPolicy.ConstantSpeculativeExecutionPlan(self._latency.delay_s,
                                                                                   self._max_hedges)


# The server side of the same problem: a coordinator that sent a quorum read to a hung
# replica waits for the table's speculative_retry before asking the third one. Its
# default, 99p, is the table's own p99, which a hung replica drags up with it
# (CASSANDRA-14293), so Cassandra 4+ caps it. ScyllaDB takes no MIN().
CASSANDRA_SPECULATIVE_RETRY = "MIN(99p,50ms)"


def wanted_speculative_retry(setting: str, is_scylla: bool) -> str | None:
    """The speculative_retry the tables should have, or None to leave them alone."""
    if setting == "keep" or setting == "auto" and is_scylla:
        return None
    return CASSANDRA_SPECULATIVE_RETRY if setting == "auto" else setting


def same_speculative_retry(a: str, b: str) -> bool:
    """Cassandra writes values back in its own spelling: 99.0p, 99PERCENTILE, 50.0ms."""
    def canonical(value: str) -> str:
        v = value.lower().replace(" ", "").replace("percentile", "p")
        return v.replace(".0p", "p").replace(".0ms", "ms")
    return canonical(a) == canonical(b)
