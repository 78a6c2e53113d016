"""Fast key-value tier in front of the store: the feature cache, and later the
interaction store's hot tier. Values are opaque bytes with a per-key TTL.

`set_if_newer` is the one conditional write. Its values start with a version
header: VERSION_DIGITS decimal digits, then one tag byte. An item is written
only where the key is absent or holds a lower (version, tag), so a slow writer
can never put back a value older than one written after it.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol, Sequence

VERSION_DIGITS = 20
HEADER_LEN = VERSION_DIGITS + 1


def version_header(version: int, tag: bytes) -> bytes:
    return b"%020d" % version + tag


def version_of(value: bytes) -> tuple[int, int]:
    """(version, tag byte) of a value written through set_if_newer."""
    return int(value[:VERSION_DIGITS]), value[VERSION_DIGITS]


class HotTier(Protocol):
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of `keys`; None where absent or expired."""

    def start_get_many(self, keys: Sequence[str]) -> Callable[[], list[bytes | None]]:
        """`get_many` in two steps: the read is sent now, and its values taken when the
        returned function is called (once), so a caller can work meanwhile."""

    def set_many(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        """Set every item with the same TTL in seconds (> 0)."""

    def set_if_newer(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        """Set each item (value starting with a version header) only where the key is
        absent or holds a lower (version, tag); atomically per key."""

    def delete_many(self, keys: Sequence[str]) -> None: ...

    def close(self) -> None: ...
