"""Fast key-value tier in front of the store: the feature cache, and later the
interaction store's hot tier. Values are opaque bytes with a per-key TTL."""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence


class HotTier(Protocol):
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of `keys`; None where absent or expired."""

    def set_many(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        """Set every item with the same TTL in seconds (> 0)."""

    def delete_many(self, keys: Sequence[str]) -> None: ...

    def close(self) -> None: ...
