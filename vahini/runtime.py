"""Process-level tuning for the long-running programs (workers, servers, replays)."""

from __future__ import annotations

import gc
import os
from typing import Sequence

from vahini.errors import BadSettings


def tune_gc_for_throughput() -> None:
    """Stream processing allocates dozens of short-lived, acyclic objects per event
    (decoded dicts, rows), so CPython's default cyclic-GC thresholds (gen0 every
    700 allocations) collect every few dozen events. Freezing what start-up built
    (registry, clients, modules) and raising the thresholds keeps collections rare
    and cheap: +20-30% events/s in benchmarks/ingest.py, with memory still bounded
    because reference counting frees the per-event objects immediately."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


def pin_to_cpus(cpus: Sequence[int], setting: str) -> None:
    """Confine every thread of this process, and the threads it starts later, to
    `cpus`. A CPU this process may not use is refused with the setting's name."""
    allowed = os.sched_getaffinity(0)
    unavailable = sorted(set(cpus) - allowed)
    if unavailable:
        raise BadSettings(f"{setting}: CPU(s) {', '.join(map(str, unavailable))} not available to this process "
                          f"(it may use {', '.join(map(str, sorted(allowed)))})")
    for thread in os.listdir("/proc/self/task"):  # a thread's affinity is its own; new ones inherit it
        try:
            os.sched_setaffinity(int(thread), set(cpus))
        except ProcessLookupError:  # the thread ended meanwhile
            pass
