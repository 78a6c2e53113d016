"""A circuit breaker for a dependency that may hang rather than refuse.

Closed, calls go through. The first call that fails with StoreUnavailable (a
timeout, typically) opens it; while open, calls fail at once with
`CircuitOpen`, so no request waits on a peer known to be unhealthy. A background
probe retries every `probe_interval_s`; the first that succeeds runs
`on_recover` and closes the breaker."""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

from vahini import metrics
from vahini.errors import StoreUnavailable
from vahini.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class CircuitOpen(StoreUnavailable):
    """The dependency is being bypassed until a probe succeeds."""


class CircuitBreaker:
    def __init__(self, name: str, probe: Callable[[], object], probe_interval_s: float,
                 on_recover: Callable[[], None] = lambda: None):
        self.name = name
        self._probe = probe
        self._interval_s = probe_interval_s
        self._on_recover = on_recover
        self._open = threading.Event()
        self._closed_for_good = threading.Event()
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def call(self, operation: str, fn: Callable[..., T], *args) -> T:
        if self._open.is_set():
            metrics.CACHE_BYPASSED.labels(self.name, operation).inc()
            raise CircuitOpen(f"{self.name} is bypassed until it answers again")
        try:
            return fn(*args)
        except StoreUnavailable as exc:
            self.trip(str(exc))
            raise

    def call_in_two_steps(self, operation: str, start: Callable[..., Callable[[], T]], *args) -> Callable[[], T]:
        """`call` of a call made in two steps (`start` sends, the function it returns
        answers): a failure of either step opens the breaker."""
        finish = self.call(operation, start, *args)

        def answer() -> T:
            try:
                return finish()
            except StoreUnavailable as exc:
                self.trip(str(exc))
                raise
        return answer

    def trip(self, reason: str) -> None:
        with self._lock:
            if self._open.is_set() or self._closed_for_good.is_set():
                return
            self._open.set()
        metrics.CACHE_CIRCUIT_OPEN.labels(self.name).set(1)
        metrics.CACHE_CIRCUIT_OPENED.labels(self.name).inc()
        log.warning("circuit_opened", dependency=self.name, reason=reason, probe_every_s=self._interval_s)
        threading.Thread(target=self._probe_until_healthy, name=f"probe-{self.name}", daemon=True).start()

    def _probe_until_healthy(self) -> None:
        while not self._closed_for_good.wait(self._interval_s):
            try:
                self._probe()
                self._on_recover()
            except Exception as exc:  # noqa: BLE001 - any failure means: still unhealthy
                log.debug("circuit_probe_failed", dependency=self.name, error=str(exc))
                continue
            self._open.clear()
            metrics.CACHE_CIRCUIT_OPEN.labels(self.name).set(0)
            log.info("circuit_closed", dependency=self.name)
            return

    def close(self) -> None:
        """Stop probing (on shutdown)."""
        self._closed_for_good.set()
