"""Event log on Apache Kafka through confluent-kafka (librdkafka)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable, Mapping, Sequence, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition as KTP
from confluent_kafka.admin import AdminClient, NewTopic

from vahini.backoff import Backoff
from vahini.errors import BadSettings, NotAllowed, StoreUnavailable
from vahini.metrics import COMMIT_FAILURES, PARTITION_MOVES
from vahini.logs import Throttle, get_logger
from vahini.ports.event_log import Record, TopicPartition

log = get_logger(__name__)


def _retrying(call, attempts: int = 50, delay_s: float = 0.1, refused: Callable[[], str | None] = lambda: None):
    """Retry broker calls that fail transiently (e.g. a new partition's leader is not elected yet);
    raise NotAllowed at once when the client has seen the broker refuse its credentials."""
    backoff = Backoff(delay_s, 1.0)
    for attempt in range(attempts):
        try:
            return call()
        except KafkaException as exc:
            if refused():
                raise NotAllowed(f"Kafka refused this client: {refused()}") from None
            transient = exc.args[0].retriable() or exc.args[0].code() in _TRANSIENT
            if not transient or attempt == attempts - 1:
                raise StoreUnavailable(f"Kafka request failed: {exc}") from exc
            time.sleep(backoff.next_s())


# The member lost its partitions (or the group moved on) before the commit landed.
# (A static member fenced by its own id is `_ends_consumer`: the handle is finished.)
_REBALANCE = {KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
              KafkaError._ASSIGNMENT_LOST}

# The group's coordinator is moving to another broker (or being looked up again).
_COORDINATOR_MOVING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                       KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError._WAIT_COORD, KafkaError._TRANSPORT,
                       KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT}

_TRANSIENT = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
              KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}


class KafkaEventLog:
    def __init__(self, bootstrap_servers: str, default_partitions: int = 8, replication_factor: int = 1,
                 session_timeout_ms: int = 15_000, extra: Mapping[str, Any] | None = None,
                 group_instance_id: str | None = None):
        self._base = {"bootstrap.servers": bootstrap_servers, **(extra or {})}
        self._refused: str | None = None
        try:
            self._admin = AdminClient(cast(dict, {**self._base, "error_cb": self._on_error}))
        except KafkaException as exc:  # e.g. a misspelt property in settings.kafka
            raise BadSettings(f"invalid Kafka client settings: {exc.args[0].str()}") from None
        self.default_partitions = default_partitions
        self.replication_factor = replication_factor
        self.session_timeout_ms = session_timeout_ms
        self.group_instance_id = group_instance_id
        self._meta: Consumer | None = None
        self._meta_lock = threading.Lock()

    def _on_error(self, err) -> None:
        if err.code() in _REFUSALS:
            self._refused = str(err)

    def _seen_refusal(self) -> str | None:
        self._admin.poll(0)  # serves error_cb, which librdkafka queues until polled
        return self._refused

    def _metadata_consumer(self) -> Consumer:
        if self._meta is None:
            self._meta = Consumer({**self._base, "group.id": f"vahini-meta-{uuid.uuid4()}",
                                   "enable.auto.commit": False})
        return self._meta

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create `topic` unless it exists: a principal without CREATE rights (ACLs) can
        still use a topic that an operator made."""
        if self.exists(topic):
            return
        futures = self._admin.create_topics(
            [NewTopic(topic, partitions or self.default_partitions, self.replication_factor)], request_timeout=30)
        try:
            futures[topic].result(timeout=30)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in _REFUSALS:
                raise NotAllowed(f"Kafka refused to create topic {topic}: {exc.args[0].str()}") from None
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StoreUnavailable(f"cannot create topic {topic}: {exc}") from exc
        self._wait_for_topic(topic)

    def _topic_metadata(self, topic: str):
        return _retrying(lambda: self._admin.list_topics(topic, timeout=10), attempts=3,
                         refused=self._seen_refusal).topics.get(topic)

    def _wait_for_topic(self, topic: str, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            meta = self._topic_metadata(topic)
            if (meta is not None and meta.error is None and meta.partitions
                    and all(p.leader >= 0 and p.error is None for p in meta.partitions.values())):
                return len(meta.partitions)
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"topic {topic} has no metadata after {timeout_s}s")
            time.sleep(0.1)

    def exists(self, topic: str) -> bool:
        # Metadata of every topic: asking for one by name makes a broker with
        # auto.create.topics.enable create it.
        meta = _retrying(lambda: self._admin.list_topics(timeout=10), attempts=3, refused=self._seen_refusal).topics.get(topic)
        return meta is not None and meta.error is None and bool(meta.partitions)

    def partitions(self, topic: str) -> int:
        meta = self._topic_metadata(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            self.create_topic(topic)
            return self._wait_for_topic(topic)
        return len(meta.partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        n = self.partitions(topic)
        with self._meta_lock:
            consumer = self._metadata_consumer()
            return {p: _retrying(lambda p=p: consumer.get_watermark_offsets(KTP(topic, p), timeout=10))[1]
                    for p in range(n)}

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        n = self.partitions(topic)
        ends = self.end_offsets(topic)
        with self._meta_lock:
            consumer = self._metadata_consumer()
            found = _retrying(lambda: consumer.offsets_for_times([KTP(topic, p, timestamp_ms) for p in range(n)],
                                                                 timeout=10))
        return {tp.partition: (tp.offset if tp.offset >= 0 else ends[tp.partition]) for tp in found}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        n = self.partitions(topic)
        probe = Consumer({**self._base, "group.id": group, "enable.auto.commit": False})
        try:
            tps = probe.committed([KTP(topic, p) for p in range(n)], timeout=10)
        finally:
            probe.close()
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}

    def producer(self) -> "KafkaLogProducer":
        return KafkaLogProducer(self._base)

    def consumer(self, group: str, topics: Sequence[str],
                 start_offsets: Mapping[TopicPartition, int] | None = None,
                 co_partitioned: bool = False) -> "KafkaLogConsumer":
        # Cooperative-sticky: a rebalance moves only the partitions that change owner, so a
        # coordinator failover or a member joining does not stop the whole group. A member
        # keeps reading a partition it keeps from its position, not from the last commit,
        # so KafkaLogConsumer re-sends a commit lost to the rebalance for the partitions it
        # keeps. Co-partitioned topics need range: partition p of every topic to one member.
        config = {**self._base, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": self.session_timeout_ms,
                  "heartbeat.interval.ms": max(500, self.session_timeout_ms // 5),
                  "partition.assignment.strategy": "range" if co_partitioned else "cooperative-sticky",
                  "error_cb": _Quieted()}
        if self.group_instance_id and start_offsets is None:
            config["group.instance.id"] = self.group_instance_id
        for topic in topics:
            self.partitions(topic)  # make sure it exists before subscribing
        return KafkaLogConsumer(config, list(topics), start_offsets)

    def close(self) -> None:
        if self._meta is not None:
            self._meta.close()


# Errors that no retry fixes: the broker refuses this principal or its rights.
_REFUSALS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
             KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
             KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}


class _ClientLog(logging.Handler):
    """librdkafka's own log lines (a request timed out, a broker failed), as structured
    `kafka_client_log` lines, each kind once per 5 s; `last` keeps the newest warning."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(f"vahini.kafka.client.{uuid.uuid4().hex[:8]}")
        self.logger.addHandler(self)
        self.logger.propagate = False
        self._throttle = Throttle()
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()  # "REQTMOUT [rdkafka#producer-1] [thrd:...]: ...: Timed out ..."
        self.last = message
        held_back = self._throttle.allow(message.split(" ", 1)[0])
        if held_back is not None:
            log.warning("kafka_client_log", message=message, repeated_since_last_log=held_back)


class _Quieted:
    """Logs a repeated client error once per `every_s`, with how many repeats it held
    back: a dead broker is reported on every reconnect attempt of every connection."""

    def __init__(self, every_s: float = 5.0, clock=time.monotonic):
        self._throttle = Throttle(every_s, clock)

    def __call__(self, err) -> None:
        held_back = self._throttle.allow((err.code(), err.str()))
        if held_back is not None:
            _log_client_error(err, held_back)


def _log_client_error(err, repeats_held_back: int = 0) -> None:
    """Errors librdkafka reports outside any one call (served during consume): a refusal
    (credentials, ACLs) is logged as an error, with the broker's reason."""
    if err.code() in _REFUSALS:
        log.error("kafka_consumer_refused", error=str(err), repeated_since_last_log=repeats_held_back)
    else:
        log.warning("kafka_client_error", error=str(err), repeated_since_last_log=repeats_held_back)


class KafkaLogProducer:
    """Idempotent producer with acks=all: a flushed record is on every in-sync replica.

    A partition leader that hangs holds the records in flight to it until
    request.timeout.ms passes; they are then sent again, in order and without
    duplicates (idempotence), to the leader the controller moved the partition to.
    librdkafka waits 30 s by default: here 10 s, which `kafka` settings may change."""

    # How often a flush that waits says so (kafka_produce_waiting), so a stall is never silent.
    WAITING_LOG_EVERY_S = 5.0

    def __init__(self, base: Mapping[str, Any]):
        self._client_log = _ClientLog()
        self._config = {"request.timeout.ms": 10_000, **base, "acks": "all", "enable.idempotence": True,
                        "linger.ms": 5, "compression.type": "lz4", "queue.buffering.max.messages": 500_000,
                        "error_cb": self._on_error, "logger": self._client_log.logger}
        self._producer = Producer(self._config)
        self._errors: list[str] = []
        self._refused: str | None = None
        self._fatal: str | None = None

    def _on_error(self, err) -> None:
        if err.fatal():  # e.g. the idempotence PID refused while the rights were revoked
            self._fatal = str(err)
        if err.code() in _REFUSALS:
            self._refused = str(err)
        self._client_log.last = str(err)  # librdkafka's own line about it is logged by _ClientLog

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self._errors.append(str(err))
            if err.code() in _REFUSALS:
                self._refused = str(err)

    def send(self, topic: str, value: bytes, key: bytes | None = None,
             timestamp_ms: int | None = None, headers: Sequence[tuple[str, bytes]] = (),
             partition: int | None = None) -> None:
        kwargs: dict[str, Any] = {"key": key, "on_delivery": self._on_delivery}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value, **kwargs)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)
            except KafkaException as exc:
                if not (exc.args[0].fatal() or exc.args[0].code() == KafkaError._FATAL):
                    raise StoreUnavailable(f"Kafka produce failed: {exc}") from exc
                # What this producer held is gone with it: the caller must send its batch again.
                self._fatal = None
                self._producer = Producer(self._config)
                raise StoreUnavailable(f"Kafka producer failed ({exc.args[0].str()}); replaced: send again") \
                    from None

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every record is acknowledged. Raise NotAllowed at once when the
        broker refuses the credentials or the rights (records not acknowledged are not
        written: resend them once that is fixed), StoreUnavailable on anything else."""
        started = time.monotonic()
        deadline, next_word = started + timeout_s, started + self.WAITING_LOG_EVERY_S
        self._refused = None  # only what the broker says during this flush counts
        remaining = self._producer.flush(0)
        while remaining and self._refused is None and self._fatal is None and time.monotonic() < deadline:
            remaining = self._producer.flush(min(0.5, max(deadline - time.monotonic(), 0)))
            if remaining and time.monotonic() >= next_word:
                next_word += self.WAITING_LOG_EVERY_S
                log.warning("kafka_produce_waiting", unacknowledged=remaining,
                            waited_s=round(time.monotonic() - started, 1), gives_up_in_s=round(
                                deadline - time.monotonic(), 1), last_client_error=self._client_log.last)
        if remaining and (self._fatal or self._refused):
            # The caller will send these again: drop the queued copies, so none is delivered later
            # beside the resent one once the broker accepts this client again.
            self._producer.purge(in_queue=True, in_flight=False, blocking=True)
            self._producer.flush(1.0)
        errors, self._errors = self._errors, []
        if self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            self._producer = Producer(self._config)  # a fatal error ends a producer: the caller resends to the new one
            raise StoreUnavailable(f"Kafka producer failed ({fatal}); replaced: {remaining} record(s) to send again")
        if self._refused is not None:
            raise NotAllowed(f"Kafka refused this producer: {self._refused}; {remaining} record(s) not written")
        if remaining or errors:
            raise StoreUnavailable(f"{remaining} records unacknowledged, {len(errors)} failed: {errors[:3]}")

    def close(self) -> None:
        self.flush()


def _report_moves(event: str, partitions) -> None:
    if partitions:
        PARTITION_MOVES.labels(event).inc(len(partitions))
        log.info(f"kafka_partitions_{event}", partitions=sorted(f"{p.topic}[{p.partition}]" for p in partitions))


class KafkaLogConsumer:
    """Commits are asynchronous: a synchronous commit blocks while the group's coordinator
    is unreachable (4.4 s behind a killed coordinator broker, measured on the cluster), and
    ingest with it. Every commit covers rows already durable, so one that does not land
    costs at most a replay; its offsets are held and sent again (see `commit`)."""

    # How often held offsets are sent again while no new commit comes.
    HELD_RETRY_S = 1.0
    # How long commits may fail while the group's coordinator moves before commit() raises
    # (and the worker stops taking new batches): bounds what a crash would replay.
    COORDINATOR_MOVE_MAX_S = 30.0

    def __init__(self, config: Mapping[str, Any], topics: list[str],
                 start_offsets: Mapping[TopicPartition, int] | None):
        self._config, self._topics = {**config, "on_commit": self._on_commit}, topics
        self._consumer = Consumer(self._config)
        self._fenced: str | None = None  # why librdkafka ended this consumer (a static member fenced)
        # Offsets a fenced consumer had made durable and not committed, for its replacement.
        self._carried: dict[TopicPartition, int] = {}
        # Offsets of commits that did not land, for partitions this member still owns.
        self._held: dict[TopicPartition, int] = {}
        self._held_retry_at = 0.0
        # Offsets sent and not yet confirmed (committed synchronously on close), and the
        # newest confirmed: an older commit's late failure must not hold an older offset.
        self._unconfirmed: dict[TopicPartition, int] = {}
        self._confirmed: dict[TopicPartition, int] = {}
        self._coordinator_lost_at: float | None = None
        # Set by a failed commit that waiting does not fix: the next commit is synchronous
        # and raises if it fails too.
        self._failure: KafkaError | None = None
        self._quiet = Throttle()  # a commit fails with every batch while the coordinator moves
        if start_offsets is not None:
            self._consumer.assign([KTP(t, p, o) for (t, p), o in start_offsets.items()])
        else:
            # The callbacks only report and forget: librdkafka then assigns or unassigns
            # by itself, as the group's protocol requires.
            self._subscribe()

    def _subscribe(self) -> None:
        self._consumer.subscribe(self._topics, on_assign=self._on_assigned,
                                 on_revoke=self._on_leaving("revoked"), on_lost=self._on_leaving("lost"))

    def _rejoin(self) -> None:
        """Replace a consumer librdkafka has ended. A static member is fenced when it
        rejoins (e.g. after its session lapsed on a loaded machine) while a request with
        its old member id is in flight; librdkafka makes that fatal. The new consumer
        joins with the same id. The offsets the old one had made durable and could not
        commit (its last commits fail once it is fenced) are carried over: where the new
        one is assigned those partitions again, it starts there and commits them, instead
        of replaying from the group's last commit."""
        carried = dict(self._unconfirmed)  # taken first: closing may report the partitions lost
        for tp, offset in self._held.items():
            carried[tp] = max(offset, carried.get(tp, -1))
        log.error("kafka_consumer_rejoining", reason=self._fenced, carried_partitions=len(carried))
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("kafka_consumer_close_failed", error=str(exc))
        self._held, self._unconfirmed, self._fenced, self._carried = {}, {}, None, carried
        self._consumer = Consumer(self._config)
        self._subscribe()

    def _on_assigned(self, consumer: Consumer, partitions) -> None:
        _report_moves("assigned", partitions)
        carried, self._carried = self._carried, {}
        if not any((p.topic, p.partition) in carried for p in partitions):
            return  # librdkafka assigns them from the group's commits
        # An assignment made here replaces librdkafka's: every partition is assigned, the
        # carried ones at their carried offsets (rows before them are durable).
        consumer.incremental_assign([KTP(p.topic, p.partition, carried.get((p.topic, p.partition), p.offset))
                                     for p in partitions])
        self._held.update({(p.topic, p.partition): carried[(p.topic, p.partition)]
                           for p in partitions if (p.topic, p.partition) in carried})
        self._held_retry_at = 0.0  # committed on the next poll, whether or not a batch comes

    def _on_leaving(self, event: str) -> Callable:
        def leaving(_consumer, partitions) -> None:
            # The partition's next owner reads from its last commit: nothing held is ours to send.
            for p in partitions:
                self._held.pop((p.topic, p.partition), None)
                self._unconfirmed.pop((p.topic, p.partition), None)
            _report_moves(event, partitions)
        return leaving

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        if self._fenced is not None:
            self._rejoin()
        if self._held and time.monotonic() >= self._held_retry_at:
            self._commit_held()
        out: list[Record] = []
        make = tuple.__new__  # Record(...) less the named tuple's Python-level __new__: one per event
        for msg in self._consumer.consume(num_messages=max_records, timeout=timeout_s):
            err = msg.error()
            if err is not None:
                if _ends_consumer(err):
                    self._fenced = err.str()
                    return out  # the next poll rejoins
                if err.code() == KafkaError.INVALID_SESSION_TIMEOUT:  # would be refused on every join
                    raise BadSettings(f"the broker refuses kafka_session_timeout_ms (outside its group.min/"
                                      f"max.session.timeout.ms): {err.str()}")
                if err.code() in _REFUSALS:  # retried on every poll; resumes once the broker allows it again
                    log.error("kafka_consumer_refused", error=str(err))
                else:
                    log.warning("kafka_consume_error", error=str(err))
                continue
            headers = msg.headers()
            out.append(make(Record, (msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                                     msg.timestamp()[1], tuple(headers) if headers else ())))
        return out

    def _commit_held(self) -> None:
        try:
            self.commit({})
        except StoreUnavailable:
            self._held_retry_at = time.monotonic() + self.HELD_RETRY_S  # kept; sent again later

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit `offsets` with any held back by an earlier commit that did not land.

        The commit is sent asynchronously; its outcome arrives with a later poll. One
        lost to a rebalance is held for the partitions this member keeps (a partition
        that moved is re-read by its new owner from the last commit). One failing while
        the group's coordinator moves is held for up to COORDINATOR_MOVE_MAX_S. Held
        offsets go with the next commit, or on their own within HELD_RETRY_S. After any
        other failure, or a coordinator gone longer, commits are synchronous and raise
        StoreUnavailable (retried by the worker) until one lands."""
        pending = {**self._held, **offsets}
        if not pending:
            return
        if self._fenced is not None:  # no commit can land: held, for the consumer that replaces this one
            self._hold(offsets)
            return
        if self._failure is not None:
            self._commit_now(pending)
            return
        try:
            self._consumer.commit(offsets=_ktps(pending), asynchronous=True)
        except KafkaException as exc:  # refused locally, e.g. nothing to commit to
            self._failed(exc.args[0], pending)
            self._raise_if_failed()
            return
        # Held offsets are sent now: held again only if this commit fails. Left held, a
        # retry could send them after this newer commit, and land after it.
        self._unconfirmed.update(pending)
        self._held = {}

    def _commit_now(self, pending: Mapping[TopicPartition, int]) -> None:
        try:
            self._consumer.commit(offsets=_ktps(pending), asynchronous=False)
        except KafkaException as exc:
            self._failed(exc.args[0], pending)
            self._raise_if_failed()
            return
        self._landed(pending)

    def _on_commit(self, err, partitions) -> None:
        """Outcome of an asynchronous commit, served during consume()."""
        offsets = {(tp.topic, tp.partition): tp.offset for tp in partitions}
        err = err or next((tp.error for tp in partitions if tp.error is not None), None)
        if err is None:
            self._landed(offsets)
        else:
            self._failed(err, offsets)

    def _landed(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._coordinator_lost_at, self._failure = None, None
        for tp, offset in offsets.items():
            self._confirmed[tp] = max(offset, self._confirmed.get(tp, -1))
            if self._held.get(tp, -1) <= offset:
                self._held.pop(tp, None)
            if self._unconfirmed.get(tp, -1) <= offset:
                self._unconfirmed.pop(tp, None)

    def _failed(self, error: KafkaError, offsets: Mapping[TopicPartition, int]) -> None:
        """Hold what did not land; decide whether waiting fixes it."""
        code = error.code()
        if _ends_consumer(error):
            self._fenced = error.str()  # the next poll rejoins, carrying what is held
        self._hold(offsets)
        if code in _REBALANCE or self._fenced is not None:
            COMMIT_FAILURES.labels("rebalance").inc()
            if (held_back := self._quiet.allow("rebalance")) is not None:
                log.warning("kafka_commit_lost_to_rebalance", error=str(error), held=len(self._held),
                            repeated_since_last_log=held_back)
            return
        COMMIT_FAILURES.labels("error").inc()
        if code in _COORDINATOR_MOVING:
            lost_at = self._coordinator_lost_at = self._coordinator_lost_at or time.monotonic()
            if time.monotonic() - lost_at < self.COORDINATOR_MOVE_MAX_S:
                if (held_back := self._quiet.allow("coordinator")) is not None:
                    log.warning("kafka_commit_held_while_coordinator_moves", error=str(error),
                                held=len(self._held), repeated_since_last_log=held_back)
                return
        log.error("kafka_commit_failed", error=str(error), retriable=error.retriable())
        self._failure = error

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise StoreUnavailable(f"Kafka offset commit failed: {self._failure}")

    def _hold(self, offsets: Mapping[TopicPartition, int]) -> None:
        # A fenced consumer's assignment is void; its replacement uses what it is assigned again.
        owned = None if self._fenced is not None else {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        for tp, offset in offsets.items():
            newer_sent_or_landed = max(self._confirmed.get(tp, -1) + 1, self._unconfirmed.get(tp, -1),
                                       self._held.get(tp, -1) + 1)
            if (owned is None or tp in owned) and offset >= newer_sent_or_landed:
                self._held[tp] = offset
        self._held_retry_at = time.monotonic() + self.HELD_RETRY_S

    def assignment(self) -> list[TopicPartition]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def position(self, tp: TopicPartition) -> int | None:
        pos = self._consumer.position([KTP(tp[0], tp[1])])[0].offset
        return pos if pos >= 0 else None

    def lag(self) -> dict[TopicPartition, int]:
        """Per assigned partition, records between this consumer's position and the log end.
        An idle partition (nothing fetched yet) counts from the group's committed offset,
        so the figure is current when the worker has nothing to do."""
        assigned = self._consumer.assignment()
        positions = {(tp.topic, tp.partition): self.position((tp.topic, tp.partition)) for tp in assigned}
        idle = [tp for tp in assigned if positions[(tp.topic, tp.partition)] is None]
        if idle:
            try:
                for tp in self._consumer.committed(idle, timeout=2):
                    positions[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else 0
            except KafkaException as exc:
                log.debug("kafka_committed_failed", error=str(exc))
        out = {}
        for tp in assigned:
            try:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=2, cached=False)
            except KafkaException:
                continue
            pos = positions[(tp.topic, tp.partition)]
            if high >= 0 and pos is not None:
                out[(tp.topic, tp.partition)] = max(0, high - max(pos, low))
        return out

    def close(self) -> None:
        """Commit what is held or unconfirmed, synchronously (a worker's drain ends here),
        then leave the group."""
        last = {**self._unconfirmed, **self._held}
        if last:
            try:
                self._commit_now(last)
            except StoreUnavailable as exc:  # the next owner replays them: durable rows, no loss
                log.warning("kafka_final_commit_failed", error=str(exc), partitions=len(last))
        self._consumer.close()


def _ends_consumer(error: KafkaError) -> bool:
    """librdkafka ends a consumer for good (a fatal error) when another member joins with
    its static id: that is the only fatal error a consumer has."""
    return error.code() in (KafkaError.FENCED_INSTANCE_ID, KafkaError._FATAL) or error.fatal()


def _ktps(offsets: Mapping[TopicPartition, int]) -> list[KTP]:
    return [KTP(t, p, o) for (t, p), o in offsets.items()]
