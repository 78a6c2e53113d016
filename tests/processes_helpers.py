"""Polling for a condition instead of sleeping for a guess."""

from __future__ import annotations

import threading
import time
from typing import Callable


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(every_s)


class WorkerThread:
    """Runs a worker's `run(stop)` in a thread and remembers if it died; `close` stops it,
    closes `closables` in order, and fails the test if the worker had died."""

    def __init__(self, worker, *closables):
        self.worker = worker
        self._closables = closables
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as exc:  # the test asserts there was none
            self.failure = exc
            raise

    @property
    def stats(self):
        return self.worker.stats

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        self.worker.close()
        for closable in self._closables:
            closable.close()
        assert self.failure is None, f"worker died: {self.failure!r}"
