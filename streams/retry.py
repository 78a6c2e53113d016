"""Retrying a step of a batch while the service it needs is down."""

from __future__ import annotations

import threading
from typing import Callable

from vahini.backoff import Backoff
from vahini.errors import VahiniError
from vahini.logs import get_logger
from vahini.streams import metrics

log = get_logger(__name__)


def retry(what: str, action: Callable[[], None], stop: threading.Event, backoff_max_s: float) -> bool:
    """Run `action` until it succeeds, backing off after each retriable error (raising
    the others; vahini.backoff: jittered, from 0.1 s up to backoff_max_s); False if
    `stop` is set first."""
    backoff = Backoff(0.1, backoff_max_s)
    while True:
        try:
            action()
            return True
        except VahiniError as exc:
            if not exc.retriable:
                raise
            metrics.RETRIES.labels(what).inc()
            delay = backoff.next_s()
            log.warning(f"{what}_failed", error=str(exc), retry_in_s=round(delay, 3))
            if stop.wait(delay):
                return False
