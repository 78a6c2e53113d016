"""Bounded in-process LRU with a short TTL, per feature group: absorbs hot keys
(a trending product read by every ranker call) without a network hop."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable


class TtlLru:
    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._items[key] = (value, self._clock() + self._ttl)
            self._items.move_to_end(key)
            if len(self._items) > self._max:
                self._items.popitem(last=False)

    def discard(self, keys) -> None:
        with self._lock:
            for key in keys:
                self._items.pop(key, None)
