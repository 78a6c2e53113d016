"""Polling for a condition instead of sleeping for a guess."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(every_s)
