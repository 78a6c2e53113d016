"""Where published configuration (the registry) lives and is watched from."""

from __future__ import annotations

from typing import Callable, Hashable, Protocol

Cancel = Callable[[], None]
Version = Hashable  # opaque: compare only with what get_versioned returned


class ConcurrentModification(Exception):
    """The document changed between get_versioned and replace; re-read and retry."""


class ConfigStore(Protocol):
    def put(self, name: str, data: bytes) -> None:
        """Replace the document `name` atomically: readers see the old or the new, never a mix."""

    def get(self, name: str) -> bytes | None: ...

    def get_versioned(self, name: str) -> tuple[bytes | None, Version]:
        """The document and a version token for a later `replace` (a token exists for a missing document too)."""

    def replace(self, name: str, data: bytes, expected: Version) -> None:
        """Compare-and-set: write only if the document is still at `expected`; else ConcurrentModification."""

    def watch(self, name: str, callback: Callable[[bytes | None], None]) -> Cancel:
        """Call `callback` with each new value of `name` (from another thread), until cancelled."""

    def close(self) -> None: ...
