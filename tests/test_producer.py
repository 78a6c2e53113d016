"""The producer API and its CLI twin, on the embedded log and on Kafka."""

import json
import time

import pytest

from vahini import wiring
from vahini.cli import main
from vahini.codecs.avro import FEATURE_UPDATE, INTERACTION, AvroCodec, SchemaCatalog
from vahini.errors import InvalidEvent
from vahini.producer import EventProducer
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_sample_registry(stack_settings(request.param, request, tmp_path, unique))


def read_all(settings, topic, n, timeout_s=20):
    log = wiring.event_log(settings)
    consumer = log.consumer("reader", [topic], {(topic, p): 0 for p in range(log.partitions(topic))})
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.poll_batch(1000, 0.5))
    consumer.close()
    log.close()
    return out


def test_events_of_one_entity_or_user_share_a_partition(settings):
    p = EventProducer.from_settings(settings)
    for i in range(40):
        p.feature_update("user", {"user_id": f"u{i % 5}"}, "user_activity", {"clicks_1d": i})
        p.interaction(f"e{i}", f"u{i % 5}", f"p{i}", "CLICK")
    p.flush()
    codec = AvroCodec(SchemaCatalog.default())
    for topic, schema in ((settings.topics.feature_updates, FEATURE_UPDATE), (settings.topics.interactions, INTERACTION)):
        records = read_all(settings, topic, 40)
        assert len(records) == 40
        partition_of = {}
        for r in records:
            name, event = codec.decode(r.value)
            assert name == schema
            user = event["keys"]["user_id"] if schema == FEATURE_UPDATE else event["user_id"]
            assert partition_of.setdefault(user, r.partition) == r.partition


@pytest.mark.parametrize("kwargs, reason", [
    (dict(entity="shop", keys={"shop_id": "s"}, group="user_activity", values={}), "unknown_entity"),
    (dict(entity="user", keys={"user_id": "u"}, group="nope", values={}), "unknown_group"),
    (dict(entity="user", keys={"user_id": "u"}, group="user_activity", values={"likes": 1}), "unknown_feature"),
    (dict(entity="user", keys={"user_id": "u"}, group="user_activity", values={"clicks_1d": "1"}), "wrong_type"),
    (dict(entity="user", keys={}, group="user_activity", values={}), "missing_key"),
    (dict(entity="user", keys={"user_id": "u"}, group="user_activity", values={"clicks_1d": 2**40}), "out_of_range"),
    (dict(entity="user", keys={"user_id": "u"}, group="user_profile", values={"embedding": [0.1]}),
     "wrong_vector_length"),
])
def test_invalid_events_are_refused_before_sending(settings, kwargs, reason):
    p = EventProducer.from_settings(settings)
    topic = settings.topics.feature_updates
    p.feature_update("user", {"user_id": "ok"}, "user_activity", {"clicks_1d": 1})
    p.flush()
    before = end_offsets(settings, topic)
    with pytest.raises(InvalidEvent) as info:
        p.feature_update(**kwargs)
    assert info.value.reason == reason
    p.flush()
    assert end_offsets(settings, topic) == before  # the log's end did not move: nothing was appended


def end_offsets(settings, topic) -> dict[int, int]:
    log = wiring.event_log(settings)
    try:
        return log.end_offsets(topic)
    finally:
        log.close()


def test_cli_produce_sends_valid_lines_and_reports_bad_ones(settings, tmp_path, monkeypatch, capsys):
    for key, value in {"EVENT_LOG": settings.event_log, "CONFIG_STORE": settings.config_store,
                       "TOPICS__FEATURE_UPDATES": settings.topics.feature_updates}.items():
        monkeypatch.setenv(f"VAHINI_{key}", value)
    lines = [json.dumps({"entity": "user", "keys": {"user_id": f"u{i}"}, "group": "user_activity",
                         "values": {"clicks_1d": i}, "event_time_ms": 1_700_000_000_000}) for i in range(5)]
    lines.insert(2, "{not json")
    lines.insert(4, json.dumps({"entity": "user", "keys": {"user_id": "x"}, "group": "user_activity",
                                "values": {"clicks_1d": "many"}, "event_time_ms": 1}))
    path = tmp_path / "updates.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert main(["produce", "--kind", "feature-update", "--no-progress", str(path)]) == 1
    captured = capsys.readouterr()
    assert "sent 5 event(s), rejected 2" in captured.out
    assert f"{path}:3: rejected: not JSON" in captured.err and f"{path}:5: rejected: wrong_type" in captured.err
    assert len(read_all(settings, settings.topics.feature_updates, 5)) == 5
