"""Where published configuration (the registry) lives and is watched from."""

from __future__ import annotations

from typing import Callable, Protocol

Cancel = Callable[[], None]


class ConfigStore(Protocol):
    def put(self, name: str, data: bytes) -> None:
        """Replace the document `name` atomically: readers see the old or the new, never a mix."""

    def get(self, name: str) -> bytes | None: ...

    def watch(self, name: str, callback: Callable[[bytes | None], None]) -> Cancel:
        """Call `callback` with each new value of `name` (from another thread), until cancelled."""

    def close(self) -> None: ...
