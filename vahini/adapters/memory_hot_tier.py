"""In-process hot tier: a dict with per-key expiry and an entry bound.
Lives and dies with the process; for the embedded demo and single-process use."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from functools import partial
from typing import Callable, Mapping, Sequence

from vahini.ports.hot_tier import version_of


class MemoryHotTier:
    def __init__(self, max_entries: int = 1_000_000):
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = time.monotonic()
        out: list[bytes | None] = []
        with self._lock:
            for key in keys:
                item = self._items.get(key)
                if item is not None and item[1] <= now:
                    del self._items[key]
                    item = None
                out.append(None if item is None else item[0])
        return out

    def start_get_many(self, keys: Sequence[str]) -> Callable[[], list[bytes | None]]:
        return partial(self.get_many, keys)  # an embedded read: nothing to overlap, read when asked

    def set_many(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        with self._lock:
            self._put(items, time.monotonic() + ttl_s)

    def _put(self, items: Mapping[str, bytes], expires: float) -> None:
        for key, value in items.items():
            self._items[key] = (value, expires)
            self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def set_if_newer(self, items: Mapping[str, bytes], ttl_s: float) -> None:
        now = time.monotonic()
        with self._lock:
            newer = {}
            for key, value in items.items():
                current = self._items.get(key)
                if current is None or current[1] <= now or version_of(value) > version_of(current[0]):
                    newer[key] = value
            self._put(newer, now + ttl_s)

    def delete_many(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._items.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._items.clear()
