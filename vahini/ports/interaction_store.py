"""Ports of the interaction store: a durable cold tier of every user's history, and
a hot tier holding the history of users whose session is open.

The cold tier is the record. The hot tier is loaded at a session's START, takes
the session's new interactions (marked dirty until flushed to the cold tier), and
is evicted when the session ends. The event log is the write-ahead log of what is
dirty: a worker never commits past an interaction that lives only in the hot tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Callable, Mapping, Protocol, Sequence

import msgspec

_ENCODE = msgspec.json.Encoder().encode

TYPES = ("CLICK", "ORDER", "WISHLIST")


class StoredInteraction(msgspec.Struct, frozen=True, array_like=True):
    """One interaction as the tiers store it. A msgspec struct encoded as a JSON array
    (the hot tier's format): lists of them decode straight from it, which is what a
    session's history read costs on the Model Proxy's path."""

    event_id: str
    user_id: str
    product_id: str
    category_id: str | None
    type: str
    event_time_ms: int
    attributes: dict[str, str] = {}

    def to_json(self) -> bytes:
        return _ENCODE(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> "StoredInteraction":
        return _DECODE_ONE(text)

    @classmethod
    def of_event(cls, event: Mapping) -> "StoredInteraction":
        """From a decoded Interaction event."""
        return cls(event["event_id"], event["user_id"], event["product_id"], event.get("category_id"),
                   event["type"], event["event_time_ms"], dict(event.get("attributes") or {}))


_DECODE_ONE = msgspec.json.Decoder(StoredInteraction).decode
_DECODE_MANY = msgspec.json.Decoder(list[StoredInteraction]).decode


def decode_many(blob: bytes) -> list[StoredInteraction]:
    """A JSON array of interactions (each itself an array), as the hot tier stores a history."""
    return _DECODE_MANY(blob)


# Sort key, descending: newest first, ties by event id (the same on every tier).
NEWEST_FIRST_KEY = attrgetter("event_time_ms", "event_id")
_EVENT_ID = attrgetter("event_id")


def newest_first(items: Sequence[StoredInteraction], limit: int | None = None) -> list[StoredInteraction]:
    """Newest first, each event id once. A session's history is read on every Model
    Proxy request: the key and the duplicate check run in C, not per item in Python."""
    ordered = sorted(items, key=NEWEST_FIRST_KEY, reverse=True)
    if len(set(map(_EVENT_ID, ordered))) < len(ordered):
        seen: set[str] = set()
        unique = []
        for item in ordered:
            if item.event_id not in seen:
                seen.add(item.event_id)
                unique.append(item)
        ordered = unique
    return ordered if limit is None else ordered[:limit]


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Interactions of one user: of `types`, newest first, at most `limit`, with
    since_ms <= event time < until_ms when given."""

    user_id: str
    types: tuple[str, ...] = TYPES
    limit: int = 100
    since_ms: int | None = None
    until_ms: int | None = None

    def admits(self, item: StoredInteraction) -> bool:
        return (item.type in self.types and (self.since_ms is None or item.event_time_ms >= self.since_ms)
                and (self.until_ms is None or item.event_time_ms < self.until_ms))


class ColdInteractions(Protocol):
    """Durable history. Writes are idempotent: an event id is stored once per user and
    type, whatever is replayed. Rows expire `retention` after their event time."""

    def write(self, items: Sequence[StoredInteraction], timeout_s: float | None = None) -> int:
        """Store `items` durably; return how many store writes (partition mutations) it took."""
        ...

    def read(self, query: HistoryQuery, timeout_s: float | None = None) -> list[StoredInteraction]:
        """Newest first, each event id once."""
        ...

    def read_many(self, queries: Sequence[HistoryQuery], timeout_s: float | None = None) -> list[list[StoredInteraction]]:
        """`read` of each query, done together (one result per query, in order): several
        users per request where the engine allows, for a worker starting many sessions.
        A slow replica then holds up every user of its request; serving uses `read`."""
        ...

    def trim(self, user_id: str, type_: str, keep_newest: int, timeout_s: float | None = None) -> int:
        """Delete all but the `keep_newest` newest of a user's interactions of a type; return writes made."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OpenSession:
    user_id: str
    session_id: str
    partition: int
    last_seen_ms: int


class InteractionHotTier(Protocol):
    """The histories of users with an open session. Appends are atomic and
    idempotent (an event id is held once). Everything a worker needs to carry a
    session across a restart or a rebalance lives here."""

    def session(self, user_id: str) -> OpenSession | None: ...

    def load(self, session: OpenSession, history: Sequence[StoredInteraction]) -> None:
        """Open `session` holding `history` (clean: already durable in the cold tier)."""
        ...

    def load_many(self, loads: Sequence[tuple[OpenSession, Sequence[StoredInteraction]]]) -> None:
        """`load` for many sessions at once: one round trip for a batch's session starts."""
        ...

    def append(self, user_id: str, items: Sequence[StoredInteraction], now_ms: int, partition: int) -> bool:
        """If the user has an open session, add `items` to it as dirty, mark the user seen
        at `now_ms` and return True; else change nothing and return False."""
        ...

    def append_many(self, appends: Mapping[str, tuple[int, Sequence[StoredInteraction]]], now_ms: int) -> set[str]:
        """`append` for many users at once ({user: (partition, items)}); the users appended to."""
        ...

    def touch(self, user_id: str, now_ms: int, partition: int) -> bool:
        """`append` with nothing to add: a session event of an open session."""
        ...

    def dirty(self, users: Sequence[str], generation: str) -> dict[str, list[StoredInteraction]]:
        """Each user's interactions not yet in the cold tier (users with none left out),
        read from the tier of `generation` only: raises HotTierLost if it lost its data
        (an empty answer from a restarted tier must never pass for "nothing to flush")."""
        ...

    def mark_flushed(self, flushed: Mapping[str, Sequence[str]]) -> None:
        """{user: event ids now durable in the cold tier}."""
        ...

    def evict(self, users: Sequence[str]) -> set[str]:
        """Drop each user's session and history unless something is still dirty; the users evicted."""
        ...

    def sessions(self, partition: int) -> list[OpenSession]:
        """Open sessions of users whose events are in `partition`."""
        ...

    def read(self, query: HistoryQuery) -> list[StoredInteraction] | None:
        """The user's history if a session is open (newest first), else None."""
        ...

    def start_read(self, query: HistoryQuery) -> Callable[[], list[StoredInteraction] | None]:
        """`read` in two steps: the read is sent now and its answer taken when the returned
        function is called, so a caller can wait on its other reads meanwhile."""
        ...

    def read_many(self, queries: Sequence[HistoryQuery]) -> list[list[StoredInteraction] | None]:
        """`read` of each query, done together."""
        ...

    def schedule(self, due: Mapping[str, tuple[int, int]]) -> None:
        """Set each user's window timer: {user: (partition, due_ms)}."""
        ...

    def take_due(self, partitions: Sequence[int], now_ms: int) -> dict[str, int]:
        """Remove the window timers of `partitions` that are due; {user: partition}."""
        ...

    def trim(self, user_id: str, type_: str, keep_newest: int) -> None:
        """Keep the newest `keep_newest` clean interactions of a type; dirty ones always stay."""
        ...

    def generation(self) -> str:
        """A token written at first use. When it changes, the tier lost its data (a
        restart without persistence) and workers must rebuild it from the log."""
        ...

    def close(self) -> None: ...
