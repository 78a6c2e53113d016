"""What every config-store watcher does with a callback that raises: log it, count
it, and keep watching, so one bad document never stops later reloads."""

from __future__ import annotations

from typing import Callable

from vahini import metrics
from vahini.logs import get_logger

log = get_logger(__name__)


def guarded(name: str, callback: Callable[[bytes | None], None]) -> Callable[[bytes | None], None]:
    def call(data: bytes | None) -> None:
        try:
            callback(data)
        except Exception as exc:  # noqa: BLE001 - a watcher thread must outlive any callback
            metrics.CONFIG_WATCH_ERRORS.labels(name).inc()
            log.error("config_watch_callback_failed", document=name, error=f"{type(exc).__name__}: {exc}")
    return call
