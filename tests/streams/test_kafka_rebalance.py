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
    log = wiring.event_log(Settings(event_log=f"kafka://{kafka_bootstrap}", kafka_session_timeout_ms=6000,
                                    kafka_group_instance_id=f"worker-{unique}"))
    topic, group = f"fenced-{unique}", f"g-{unique}"
    log.create_topic(topic, 2)
    producer = log.producer()
    member = log.consumer(group, [topic])

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
        impostor = log.consumer(group, [topic])  # the same static id: fences `member`
        wait_for(lambda: impostor.poll_batch(100, 0.2) is not None and bool(impostor.assignment()), 60,
                 "the impostor to take the partitions")
        impostor.close()
        send(20)
        wait_for(all_committed, 90, "the fenced member to rejoin and commit the new records", every_s=0.1)
    finally:
        member.close()
        producer.close()
        log.close()
