"""Reading interaction histories: from the hot tier while the user's session is
open (it holds the loaded history plus everything since), else from the cold tier.
A hot tier that hangs or is down is bypassed by a circuit breaker: reads then come
from the cold tier, without what open sessions have not flushed yet."""

from __future__ import annotations

import time
from dataclasses import dataclass
from operator import attrgetter
from typing import Callable

from vahini.circuit import CircuitBreaker
from vahini.errors import InvalidEvent, Reason, StoreUnavailable
from vahini.logs import get_logger
from vahini.ports.interaction_store import TYPES, ColdInteractions, HistoryQuery, InteractionHotTier, StoredInteraction
from vahini.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class History:
    user_id: str
    source: str  # "hot" or "cold": which tier answered
    interactions: list[StoredInteraction]


class InteractionReader:
    def __init__(self, hot: InteractionHotTier, cold: ColdInteractions, settings: Settings):
        self._hot = hot
        self._cold = cold
        self._max_limit = settings.interactions.max_read_limit
        self._breaker = CircuitBreaker("interaction hot tier", hot.generation, settings.cache.probe_interval_s)

    def check(self, query: HistoryQuery) -> None:
        """Raise InvalidEvent (INVALID_ARGUMENT) for a query that cannot be answered."""
        if not query.user_id:
            raise InvalidEvent(Reason.MISSING_KEY, "user_id: required")
        unknown = [t for t in query.types if t not in TYPES]
        if unknown or not query.types:
            raise InvalidEvent(Reason.WRONG_TYPE, f"types: {unknown or 'none'}; allowed: {', '.join(TYPES)}")
        if not 1 <= query.limit <= self._max_limit:
            raise InvalidEvent(Reason.OUT_OF_RANGE, f"limit: {query.limit} is outside 1..{self._max_limit} "
                                                    f"(interactions.max_read_limit)")
        if query.since_ms is not None and query.until_ms is not None and query.since_ms >= query.until_ms:
            raise InvalidEvent(Reason.OUT_OF_RANGE, f"time range: since_ms {query.since_ms} is not before "
                                                    f"until_ms {query.until_ms}")

    def history(self, query: HistoryQuery, timeout_s: float | None = None) -> History:
        return self.start_history(query, timeout_s)()

    def start_history(self, query: HistoryQuery, timeout_s: float | None = None) -> Callable[[], History]:
        """`history` in two steps: the hot tier's read is sent now and taken when the
        returned function is called, so the Model Proxy overlaps it with its feature
        reads. The cold tier, when it answers instead, is read in the second step."""
        self.check(query)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            pending = self._breaker.call("interactions_read", self._hot.start_read, query)
        except StoreUnavailable as exc:
            log.debug("interaction_hot_tier_bypassed", error=str(exc))
            pending = None

        def finish() -> History:
            hot = None
            if pending is not None:
                try:
                    hot = self._breaker.call("interactions_read", pending)
                except StoreUnavailable as exc:
                    log.debug("interaction_hot_tier_bypassed", error=str(exc))
            if hot is not None:
                return History(query.user_id, "hot", hot)
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            return History(query.user_id, "cold", self._cold.read(query, left))
        return finish

    def close(self) -> None:
        """Stop probing and close both tiers."""
        self._breaker.close()
        self._hot.close()
        self._cold.close()


def last_ids(history: list[StoredInteraction], field: str, n: int, pad: str = "",
             type_: str | None = None) -> list[str]:
    """The newest `n` product or category ids (`field`: "product_id" or "category_id")
    of `history` (newest first), of one type if given, padded with `pad` to length n:
    a fixed-length sequence for a model input."""
    if field not in ("product_id", "category_id"):
        raise ValueError(f"field must be product_id or category_id, not {field!r}")
    of_type = history if type_ is None else [i for i in history if i.type == type_]
    return padded(list(map(attrgetter(field), of_type[:n])), n, pad)


def padded(ids: list[str | None], n: int, pad: str = "") -> list[str]:
    """The first n of `ids` (newest first), a missing id as `pad`, padded with `pad` to length n."""
    out = [v or pad for v in ids[:n]]
    return out + [pad] * (n - len(out))


def count_matching(history: list[StoredInteraction], field: str, value: str, last: int,
                   type_: str | None = None) -> int:
    """How many of the newest `last` interactions (of one type if given) have `field`
    equal to `value`: e.g. clicks on this category among the last 20 clicks."""
    return last_ids(history, field, last, "", type_).count(value) if value else 0
