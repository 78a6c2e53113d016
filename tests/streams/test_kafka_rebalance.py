"""Under cooperative-sticky a member keeps reading the partitions it keeps from its
position, not from the last commit. So a commit lost to a rebalance must still land for
those partitions, or the group's committed offsets stay behind: lag that never clears,
and a replay after the next restart."""

from __future__ import annotations

import threading
import time

import pytest

from tests.processes_helpers import wait_for
from vahini import wiring
from vahini.metrics import COMMIT_FAILURES
from vahini.settings import Settings

pytestmark = pytest.mark.real_service

PARTITIONS = 4


class Churn:
    """A second member that joins the group, reads for a moment and leaves, over and
    over: every join and leave is a rebalance the first member's commits can race."""

    def __init__(self, log, group: str, topic: str):
        self._log, self._group, self._topic = log, group, topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            member = self._log.consumer(self._group, [self._topic])
            joined = time.monotonic()
            while time.monotonic() - joined < 0.3:
                member.poll_batch(100, 0.1)  # reads but never commits: its partitions are re-read
            member.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def lost_commits() -> float:
    return COMMIT_FAILURES.labels("rebalance")._value.get()


def read_and_commit(member, linger_s: float = 0.2) -> None:
    """One worker step: poll a batch, commit its offsets (the rows are durable)."""
    offsets = {}
    for r in member.poll_batch(100, linger_s):
        offsets[(r.topic, r.partition)] = r.offset + 1
    member.commit(offsets)


def static_member(kafka_bootstrap: str, unique: str, topic: str):
    """(log, group, producer, member): a member with a static id on a fresh 2-partition topic."""
    log = wiring.event_log(Settings(event_log=f"kafka://{kafka_bootstrap}", kafka_session_timeout_ms=6000,
                                    kafka_group_instance_id=f"worker-{unique}"))
    group = f"g-{unique}"
    log.create_topic(topic, 2)
    return log, group, log.producer(), log.consumer(group, [topic])


def fence(log, group: str, topic: str) -> None:
    """Join with the static id of the group's member, which fences it, then leave."""
    impostor = log.consumer(group, [topic])
    wait_for(lambda: impostor.poll_batch(100, 0.2) is not None and bool(impostor.assignment()), 60,
             "the impostor to take the partitions")
    impostor.close()


def test_a_commit_lost_to_a_rebalance_lands_for_the_partitions_the_member_keeps(kafka_bootstrap, unique):
    log = wiring.event_log(Settings(event_log=f"kafka://{kafka_bootstrap}", kafka_session_timeout_ms=6000))
    topic, group = f"rebalance-{unique}", f"g-{unique}"
    log.create_topic(topic, PARTITIONS)
    producer = log.producer()
    member = log.consumer(group, [topic])
    churn = Churn(log, group, topic)
    before, deadline = lost_commits(), time.monotonic() + 120
    try:
        # Produce and commit until one commit is lost; then produce nothing more, so no
        # later commit of new records can cover the lost one.
        while lost_commits() == before:
            assert time.monotonic() < deadline, "no commit was lost to a rebalance in 120 s of churn"
            for partition in range(PARTITIONS):
                producer.send(topic, b"x", partition=partition)
            producer.flush()
            read_and_commit(member, linger_s=0.02)  # many small commits: more of them race the churn
    finally:
        churn.stop()
    ends = log.end_offsets(topic)

    def all_committed() -> bool:
        read_and_commit(member)  # re-reads (and commits) partitions it gained from the churning member
        return log.committed(group, topic) == ends

    try:
        wait_for(all_committed, 30, f"the group's commits to reach the log end {ends}", every_s=0.2)
    finally:
        member.close()
        producer.close()
        log.close()


def test_a_fenced_static_member_rejoins_and_goes_on(kafka_bootstrap, unique):
    """librdkafka ends a static member for good when another joins with its id (on a loaded
    machine, its own rejoin can race a request sent with its old member id). The consumer
    must rejoin with a new librdkafka handle and go on from the group's commits."""
    topic = f"fenced-{unique}"
    log, group, producer, member = static_member(kafka_bootstrap, unique, topic)

    def send(n: int) -> None:
        for i in range(n):
            producer.send(topic, b"x", key=f"k{i}".encode())
        producer.flush()

    def all_committed() -> bool:
        read_and_commit(member)
        return log.committed(group, topic) == log.end_offsets(topic)

    try:
        send(20)
        wait_for(all_committed, 60, "the member to commit the first records", every_s=0.1)
        fence(log, group, topic)
        send(20)
        wait_for(all_committed, 90, "the fenced member to rejoin and commit the new records", every_s=0.1)
    finally:
        member.close()
        producer.close()
        log.close()


def test_a_fenced_static_member_does_not_replay_what_it_read_and_could_not_commit(kafka_bootstrap, unique):
    """A member fenced after reading a batch (made durable) cannot commit it. Its
    replacement starts where that batch ends and commits it, rather than reading it again
    from the group's last commit."""
    topic = f"fenced-carry-{unique}"
    log, group, producer, member = static_member(kafka_bootstrap, unique, topic)
    try:
        for i in range(20):
            producer.send(topic, f"first-{i}".encode(), key=f"k{i}".encode())
        producer.flush()
        first: list = []
        wait_for(lambda: first.extend(member.poll_batch(100, 0.2)) or len(first) >= 20, 60,
                 "the member to read the first 20 records")
        fence(log, group, topic)  # the impostor commits nothing: the group has no commit yet
        assert log.committed(group, topic) != log.end_offsets(topic)
        member.commit({(r.topic, r.partition): r.offset + 1 for r in first})  # durable; cannot land
        for i in range(5):
            producer.send(topic, f"second-{i}".encode(), key=f"k{i}".encode())
        producer.flush()
        read_after: list = []

        def second_batch_read() -> bool:
            read_after.extend(member.poll_batch(100, 0.2))
            return sum(r.value.startswith(b"second-") for r in read_after) >= 5

        wait_for(second_batch_read, 90, "the fenced member to rejoin and read the new records")
        assert [r.value for r in read_after if r.value.startswith(b"first-")] == []
        member.commit({(r.topic, r.partition): r.offset + 1 for r in read_after})
        wait_for(lambda: read_and_commit(member) or log.committed(group, topic) == log.end_offsets(topic), 60,
                 "the group's commits to reach the log end")
    finally:
        member.close()
        producer.close()
        log.close()
