"""Typed errors. Callers decide by type: an invalid event is dead-lettered and
skipped, an unavailable store is retried, a config error is shown to a person."""

from __future__ import annotations

from dataclasses import dataclass


class VahiniError(Exception):
    """Base of every error Vahini raises on purpose."""

    retriable: bool = False
    outcome: str | None = None  # a short label for metrics and logs, e.g. the gRPC status a peer returned


class InvalidEvent(VahiniError):
    """An event that can never be processed; it goes to the dead-letter topic.

    `reason` is a stable, machine-readable code (see `Reason`); `detail` is for people.
    """

    def __init__(self, reason: str, detail: str, entity_key: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.entity_key = entity_key  # "entity:key" when the event could be decoded that far


class DecodeError(InvalidEvent):
    """Bytes that are not a decodable single-object-encoded Avro event."""

    def __init__(self, detail: str, reason: str = "undecodable"):
        super().__init__(reason, detail)


class UnknownSchemaError(DecodeError):
    """The fingerprint in the header names no schema this process knows."""

    def __init__(self, fingerprint: bytes):
        super().__init__(f"unknown schema fingerprint {fingerprint.hex()}", reason="unknown_schema")
        self.fingerprint = fingerprint


class Reason:
    """Dead-letter reason codes, one per way an event can be invalid."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown_schema"
    WRONG_EVENT_TYPE = "wrong_event_type"
    UNKNOWN_ENTITY = "unknown_entity"
    UNKNOWN_GROUP = "unknown_group"
    UNKNOWN_FEATURE = "unknown_feature"
    WRONG_TYPE = "wrong_type"
    WRONG_VECTOR_LENGTH = "wrong_vector_length"
    MISSING_KEY = "missing_key"
    UNKNOWN_KEY = "unknown_key"
    INVALID_KEY = "invalid_key"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_EVENT_TIME = "future_event_time"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"


class BadSettings(VahiniError, ValueError):
    """Settings that cannot work: an unknown backend scheme, a misspelt client property."""


class StoreUnavailable(VahiniError):
    """A backing service (Scylla, Redis, Kafka, ZooKeeper) cannot be reached now."""

    retriable = True


class NotAllowed(StoreUnavailable):
    """A backing service refused the caller's principal or its rights (credentials, ACLs).
    Commands report it and stop; workers treat it as an outage and retry, so they resume
    by themselves once an operator restores the credentials or the rights."""


class HotTierLost(VahiniError):
    """The interaction hot tier lost its data (its generation changed): what it held
    must be rebuilt from the log, and nothing read from it now may be trusted."""


class DeadlineExceeded(VahiniError):
    """The caller's deadline ran out before a store or cache call finished."""


class EndpointRejected(VahiniError):
    """A model endpoint answered, but not with scores: the model is unknown there, or
    the matrix does not fit it. The request is fine; the graph or the endpoint is not."""


class IndexUnsupported(VahiniError):
    """The engine cannot hold a registry's vector index (no VECTOR type or ANN search)."""

    def __init__(self, index: str, message: str):
        self.index = index
        super().__init__(f"index '{index}': {message}")


class NotFound(VahiniError):
    """A named thing (entity, feature group, model) is not in the registry."""


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a registry file, located for a person to fix."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(VahiniError):
    """A registry that must not be published; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
