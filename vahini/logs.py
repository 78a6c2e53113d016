"""Structured logs: JSON lines for machines (default when not on a terminal),
key=value for people at a terminal."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO, cast

import structlog


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time of the write, not at configure time
    (it may be replaced later, e.g. by a test runner or a daemon's redirection)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", json_logs: bool | None = None) -> None:
    json_logs = (not sys.stderr.isatty()) if json_logs is None else json_logs
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str):
    return structlog.get_logger(name)


class Throttle:
    """Lets one log line per key through every `every_s`, and counts the ones held back."""

    def __init__(self, every_s: float = 5.0, clock=time.monotonic):
        self._every_s = every_s
        self._clock = clock
        self._last: dict[object, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: object) -> int | None:
        """How many were held back since the last one let through; None: hold this one back."""
        now = self._clock()
        with self._lock:
            logged_at, held_back = self._last.get(key, (None, 0))
            if logged_at is not None and now - logged_at < self._every_s:
                self._last[key] = (logged_at, held_back + 1)
                return None
            self._last[key] = (now, 0)
        return held_back


class RateLimitedLog:
    """Logs an event at most once per `interval_s` for each key (e.g. an endpoint and
    a status code), so a failing dependency cannot flood the log; the line that does
    go out says how many were held back since the last one (`suppressed`)."""

    def __init__(self, logger, interval_s: float = 10.0, clock=time.monotonic):
        self._log = logger
        self._throttle = Throttle(interval_s, clock)

    def warning(self, key: tuple, event: str, **fields) -> bool:
        """Log now unless this key was logged within the interval; True if it was logged."""
        held = self._throttle.allow(key)
        if held is None:
            return False
        self._log.warning(event, suppressed=held, **fields)
        return True
