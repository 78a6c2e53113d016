"""librdkafka reports a dead broker on every reconnect attempt of every connection:
the worker's log must say it once per interval, with how many it held back."""

import json

from confluent_kafka import KafkaError

from vahini.adapters.kafka_event_log import _Quieted


def logged(capsys) -> list[dict]:
    captured = capsys.readouterr()
    return [json.loads(line) for line in (captured.out + captured.err).splitlines() if line.startswith("{")]


def test_a_repeated_client_error_is_logged_once_per_interval_with_its_count(capsys):
    from vahini.logs import configure

    configure("INFO", json_logs=True)
    now = [100.0]
    quieted = _Quieted(every_s=0.3, clock=lambda: now[0])  # the test's clock: no race with a slow machine
    refused = KafkaError(KafkaError._TRANSPORT, "127.0.0.3:9092/2: Connect failed: Connection refused")
    other = KafkaError(KafkaError._ALL_BROKERS_DOWN, "3/3 brokers are down")
    for _ in range(200):
        quieted(refused)
    quieted(other)
    first = logged(capsys)
    assert [(e["event"], e["repeated_since_last_log"]) for e in first] == [("kafka_client_error", 0)] * 2
    assert "Connection refused" in first[0]["error"] and "brokers are down" in first[1]["error"]

    now[0] += 0.29
    quieted(refused)
    assert logged(capsys) == []  # still within the interval
    now[0] += 0.02
    quieted(refused)
    (again,) = logged(capsys)
    assert again["repeated_since_last_log"] == 200 and "Connection refused" in again["error"]
