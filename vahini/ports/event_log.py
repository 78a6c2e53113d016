"""A partitioned, replayable log of events: Kafka in production, SQLite embedded."""

from __future__ import annotations

from typing import Mapping, NamedTuple, Protocol, Sequence

TopicPartition = tuple[str, int]


class Record(NamedTuple):
    """One consumed record. A named tuple: workers build one per event, and a frozen
    dataclass costs several times as much to build."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


class LogProducer(Protocol):
    def send(self, topic: str, value: bytes, key: bytes | None = None,
             timestamp_ms: int | None = None, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Queue one record. Records with the same key go to the same partition."""

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every queued record is acknowledged; raise StoreUnavailable if any was
        not. Records that were not acknowledged are no longer queued: send them again."""

    def close(self) -> None: ...


class LogConsumer(Protocol):
    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` records, in offset order per partition."""

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Durably record, per partition, the offset of the next record to process."""

    def assignment(self) -> list[TopicPartition]: ...

    def position(self, tp: TopicPartition) -> int | None:
        """Offset of the next record this consumer will return for `tp`."""

    def lag(self) -> dict[TopicPartition, int]:
        """Per assigned partition, records between this consumer's position and the log end."""

    def close(self) -> None: ...


class EventLog(Protocol):
    def create_topic(self, topic: str, partitions: int) -> None:
        """Create `topic` if it does not exist (idempotent)."""

    def partitions(self, topic: str) -> int: ...

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next produced record will get."""

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is >= timestamp_ms (end offset if none)."""

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Per partition, the group's committed offset (absent when never committed)."""

    def producer(self) -> LogProducer: ...

    def exists(self, topic: str) -> bool:
        """Whether `topic` exists (without creating it, unlike `partitions`)."""
        ...

    def consumer(self, group: str, topics: Sequence[str],
                 start_offsets: Mapping[TopicPartition, int] | None = None,
                 co_partitioned: bool = False) -> LogConsumer:
        """A group member. Without `start_offsets` partitions are shared among the group's
        live members and start at the committed offset (else the earliest); with them,
        exactly those partitions are read from those offsets (replays). With
        `co_partitioned`, partition p of every topic goes to the same member, so topics
        keyed alike are read together."""

    def close(self) -> None: ...
