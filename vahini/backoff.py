"""One backoff policy for retrying a dependency: exponential, capped, and jittered so
that workers that failed together (a shared outage) do not retry in lockstep."""

from __future__ import annotations

import random


class Backoff:
    """Delays of `first_s`, doubling up to `max_s`, each drawn from [half, all] of the
    current step ("equal jitter": never less than half the intended wait)."""

    def __init__(self, first_s: float, max_s: float, rng: random.Random | None = None):
        self._step, self._max_s = first_s, max_s
        self._uniform = (rng or random.Random()).uniform

    def next_s(self) -> float:
        delay = self._uniform(self._step / 2, self._step)
        self._step = min(self._step * 2, self._max_s)
        return delay
