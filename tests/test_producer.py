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
    lines += ["null", "[1, 2]", json.dumps({"entity": "user", "group": "user_activity", "values": {}}),
              json.dumps({"entity": "user", "keys": {"user_id": "t"}, "group": "user_activity",
                          "values": {"clicks_1d": 1}, "event_time_ms": "yesterday"})]
    path = tmp_path / "updates.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert main(["produce", "--kind", "feature-update", "--no-progress", str(path)]) == 1
    captured = capsys.readouterr()
    assert "sent 5 event(s), rejected 6" in captured.out
    assert f"{path}:3: rejected: not JSON" in captured.err and f"{path}:5: rejected: wrong_type" in captured.err
    assert f"{path}:8: rejected: not a JSON object: null" in captured.err
    assert f"{path}:9: rejected: not a JSON object: list" in captured.err
    assert f"{path}:10: rejected: malformed: missing field 'keys'" in captured.err
    assert f"{path}:11: rejected: malformed: field 'event_time_ms' is str 'yesterday', expected long" in captured.err
    assert "Error" not in captured.err  # no Python exception names leak into messages
    assert len(read_all(settings, settings.topics.feature_updates, 5)) == 5


@pytest.mark.parametrize("kind, line, topic", [
    ("feature-update", {"entity": "user", "keys": {"user_id": "n1"}, "group": "user_activity",
                        "values": {"clicks_1d": 1}}, "feature_updates"),
    ("interaction", {"event_id": "e1", "user_id": "n1", "product_id": "p1", "category_id": None, "type": "CLICK",
                     "attributes": {}}, "interactions"),
    ("session", {"user_id": "n1", "session_id": "s1", "type": "START"}, "sessions"),
])
def test_event_time_is_optional_for_every_kind_and_means_now(settings, tmp_path, monkeypatch, kind, line, topic):
    for key, value in {"EVENT_LOG": settings.event_log, "CONFIG_STORE": settings.config_store,
                       f"TOPICS__{topic.upper()}": getattr(settings.topics, topic)}.items():
        monkeypatch.setenv(f"VAHINI_{key}", value)
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps({**line, "event_time_ms": None}) + "\n")
    before = int(time.time() * 1000)
    assert main(["produce", "--kind", kind, "--no-progress", str(path)]) == 0
    codec = AvroCodec(SchemaCatalog.default())
    records = read_all(settings, getattr(settings.topics, topic), 2)
    assert len(records) == 2
    assert all(codec.decode(r.value)[1]["event_time_ms"] >= before for r in records)
