"""Contract of the EventLog port, run against the SQLite log and Kafka."""

import time

import pytest


def drain(consumer, n, timeout_s=20):
    """Poll until n records arrived (or fail)."""
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n:
        assert time.monotonic() < deadline, f"got {len(out)} of {n} records"
        out.extend(consumer.poll_batch(1000, 0.5))
    return out


def produce(log, topic, n, key=lambda i: f"k{i % 7}".encode()):
    p = log.producer()
    for i in range(n):
        p.send(topic, f"v{i}".encode(), key=key(i))
    p.flush()
    p.close()


def test_create_topic_is_idempotent_and_sets_partitions(event_log, unique):
    event_log.create_topic(f"t-{unique}", 3)
    event_log.create_topic(f"t-{unique}", 3)
    assert event_log.partitions(f"t-{unique}") == 3
    assert event_log.end_offsets(f"t-{unique}") == {0: 0, 1: 0, 2: 0}


def test_records_with_one_key_share_a_partition_in_offset_order(event_log, unique):
    topic = f"t-{unique}"
    event_log.create_topic(topic, 4)
    produce(event_log, topic, 70)
    c = event_log.consumer(f"g-{unique}", [topic])
    records = drain(c, 70)
    c.close()
    partitions_of_key: dict[bytes, set] = {}
    for r in records:
        partitions_of_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions_of_key.values())
    for p in {r.partition for r in records}:
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == sorted(offsets) == list(range(offsets[0], offsets[0] + len(offsets)))
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(70))
    assert sum(event_log.end_offsets(topic).values()) == 70


def test_a_new_member_resumes_from_the_committed_offsets(event_log, unique):
    topic, group = f"t-{unique}", f"g-{unique}"
    event_log.create_topic(topic, 2)
    produce(event_log, topic, 40)
    first = event_log.consumer(group, [topic])
    got = drain(first, 40)
    half = {}
    for r in sorted(got, key=lambda r: r.offset):
        if r.offset < 10:
            half[(r.topic, r.partition)] = r.offset + 1
    first.commit(half)
    first.close()
    assert event_log.committed(group, topic) == {p: o for (_, p), o in half.items()}
    second = event_log.consumer(group, [topic])
    again = drain(second, 40 - sum(half.values()))
    second.close()
    assert all(r.offset >= half[(r.topic, r.partition)] for r in again)


def test_replay_from_explicit_offsets_ignores_the_group(event_log, unique):
    topic = f"t-{unique}"
    event_log.create_topic(topic, 1)
    produce(event_log, topic, 20)
    c = event_log.consumer(f"replay-{unique}", [topic], start_offsets={(topic, 0): 15})
    records = drain(c, 5)
    c.close()
    assert [r.offset for r in records] == [15, 16, 17, 18, 19]


def test_offsets_for_time_finds_the_first_record_at_or_after(event_log, unique):
    topic = f"t-{unique}"
    event_log.create_topic(topic, 1)
    produce(event_log, topic, 5)
    time.sleep(0.05)
    middle = int(time.time() * 1000)
    time.sleep(0.05)
    produce(event_log, topic, 5)
    assert event_log.offsets_for_time(topic, middle) == {0: 5}
    assert event_log.offsets_for_time(topic, 0) == {0: 0}
    assert event_log.offsets_for_time(topic, middle + 3_600_000) == {0: 10}


def test_headers_and_binary_values_round_trip(event_log, unique):
    topic = f"t-{unique}"
    event_log.create_topic(topic, 1)
    p = event_log.producer()
    p.send(topic, b"\x00\xffraw", key=None, headers=[("reason", b"bad"), ("offset", b"7")])
    p.flush()
    c = event_log.consumer(f"g-{unique}", [topic])
    (r,) = drain(c, 1)
    c.close()
    assert r.value == b"\x00\xffraw" and r.key is None
    assert dict(r.headers) == {"reason": b"bad", "offset": b"7"}


def test_group_members_split_the_partitions(event_log, unique):
    topic, group = f"t-{unique}", f"g-{unique}"
    event_log.create_topic(topic, 4)
    produce(event_log, topic, 40)
    a, b = event_log.consumer(group, [topic]), event_log.consumer(group, [topic])
    deadline = time.monotonic() + 30
    while True:
        a.poll_batch(100, 0.2)
        b.poll_batch(100, 0.2)
        got_a, got_b = set(a.assignment()), set(b.assignment())
        if got_a and got_b and not got_a & got_b and len(got_a | got_b) == 4:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"assignments never split: {got_a} / {got_b}")
    a.close()
    b.close()


def test_lag_counts_records_not_yet_consumed(event_log, unique):
    topic = f"t-{unique}"
    event_log.create_topic(topic, 1)
    produce(event_log, topic, 10)
    c = event_log.consumer(f"g-{unique}", [topic], start_offsets={(topic, 0): 4})
    consumed = 0
    deadline = time.monotonic() + 20
    while consumed < 2:
        assert time.monotonic() < deadline
        consumed += len(c.poll_batch(2, 0.5))
    assert c.lag() == {(topic, 0): 10 - 4 - consumed}
    c.close()


def test_exists_tells_without_creating(event_log, unique):
    topic = f"exists-{unique}"
    assert not event_log.exists(topic)
    assert not event_log.exists(topic)  # asking does not create it
    event_log.create_topic(topic, 2)
    assert event_log.exists(topic)
