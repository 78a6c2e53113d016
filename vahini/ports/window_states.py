"""Port of the window state store: each user's windowed-count state (buckets, the
offset of the last event counted, the values last written), durable, so that
neither a crash nor a hot tier that loses its memory can count an event twice or
lose one. The state is an opaque blob to the store (streams.window_buckets)."""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence


class WindowStates(Protocol):
    def read_many(self, users: Sequence[str], timeout_s: float | None = None) -> dict[str, bytes]:
        """The stored state of each user that has one."""
        ...

    def write_many(self, states: Mapping[str, bytes], ttl_s: int, timeout_s: float | None = None) -> None:
        """Store each user's state; it expires `ttl_s` after this write (a user idle that long
        has every count at zero)."""
        ...

    def close(self) -> None:
        ...
