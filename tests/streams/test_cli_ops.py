"""Operator commands as operators run them: `vahini replay` and `vahini produce` (Parquet)."""

import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.streams.helpers import send_raw, send_updates, stored_clicks, update
from tests.streams.processes import settings_env


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_sample_registry(stack_settings(request.param, request, tmp_path, unique))


def vahini(settings, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "vahini.cli", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=timeout)


def test_replay_shows_progress_and_a_summary(settings):
    t = int(time.time() * 1000) - 60_000
    send_updates(settings, [update(f"r{i}", i, t + i) for i in range(400)])
    send_raw(settings, [b"junk", b"more junk"])
    result = vahini(settings, "replay", "--topic", settings.topics.feature_updates, "--from", "earliest",
                    "--group", "ops-replay")
    assert result.returncode == 0, result.stderr
    assert "replay done: events=402 written=400 dead_lettered=2 seconds=" in result.stdout
    assert f"replay {settings.topics.feature_updates}: 100%" in result.stderr
    assert "remaining=" in result.stderr and "ev/s" in result.stderr
    assert stored_clicks(settings, ["r0", "r399"]) == {"r0": 0, "r399": 399}


def test_replay_rejects_a_position_it_cannot_read(settings):
    result = vahini(settings, "replay", "--topic", settings.topics.feature_updates, "--from", "yesterday-ish")
    assert result.returncode == 1 and "not earliest, latest, an offset" in result.stderr


def test_produce_bulk_loads_parquet_feature_rows(settings, tmp_path):
    table = pa.table({
        "entity": ["user"] * 3 + ["product"],
        "group": ["user_activity"] * 3 + ["product_core"],
        "user_id": ["pq1", "pq2", "pq3", None],
        "product_id": [None, None, None, "pp1"],
        "clicks_1d": [10, 20, 2**40, None],
        "price": [None, None, None, 99.5],
        "event_time_ms": [int(time.time() * 1000) - 1000] * 4,
    })
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path)
    result = vahini(settings, "produce", str(path))
    assert result.returncode == 1  # one row was rejected
    assert "sent 3 event(s), rejected 1" in result.stdout
    assert f"{path}:3: rejected: out_of_range" in result.stderr
    assert "produce: 100%" in result.stderr  # the progress bar
    ingest = vahini(settings, "replay", "--topic", settings.topics.feature_updates, "--from", "earliest",
                    "--group", settings.ingest.group, "--no-progress")
    assert ingest.returncode == 0, ingest.stderr
    assert stored_clicks(settings, ["pq1", "pq2", "pq3"]) == {"pq1": 10, "pq2": 20}


def test_dead_letters_are_listed_and_can_be_re_driven_once_fixed(settings, tmp_path):
    import json
    import shutil

    from vahini import wiring
    from vahini.demo import SAMPLE_REGISTRY
    from vahini.registry import publish

    t = int(time.time() * 1000) - 1000
    gift = {"entity": "user", "keys": {"user_id": "g1"}, "group": "user_gifts", "values": {"gifts": 2},
            "event_time_ms": t, "producer_id": "test"}
    send_updates(settings, [gift, update("ok", 1, t)])
    send_raw(settings, [b"\x00not avro"])
    result = vahini(settings, "replay", "--topic", settings.topics.feature_updates, "--from", "earliest",
                    "--group", settings.ingest.group, "--no-progress")
    assert "dead_lettered=2" in result.stdout, result.stderr

    shown = vahini(settings, "dead-letters", "--json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["total"] == 2 and summary["by_reason"] == {"unknown_group": 1, "undecodable": 1}
    assert len(summary["latest"]) == 2
    assert all(e["source"].startswith(f"{settings.topics.feature_updates}[") for e in summary["latest"])
    assert {e["reason"]: e["entity_key"] for e in summary["latest"]} == {"unknown_group": "user:g1",
                                                                         "undecodable": None}
    text = vahini(settings, "dead-letters").stdout
    assert "2 dead-lettered event(s)" in text and "unknown_group" in text

    registry_dir = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, registry_dir)
    (registry_dir / "gifts.yaml").write_text("feature_groups:\n  - name: user_gifts\n    entity: user\n"
                                             "    version: 1\n    features: [{name: gifts, type: int32}]\n")
    store = wiring.config_store(settings)
    publish.apply(registry_dir, store)
    store.close()
    redrive = vahini(settings, "replay", "--topic", settings.topics.dead_letter, "--from", "earliest",
                     "--group", "redrive", "--no-progress")
    # The garbage stays where it is, once: a re-drive never dead-letters what the topic already holds.
    assert "events=2 written=1 dead_lettered=0" in redrive.stdout, redrive.stderr
    assert "still invalid, left in" in redrive.stdout and "undecodable" in redrive.stdout
    again = vahini(settings, "replay", "--topic", settings.topics.dead_letter, "--from", "earliest",
                   "--group", "redrive-2", "--no-progress")
    assert "events=2 written=1 dead_lettered=0" in again.stdout, again.stderr
    assert json.loads(vahini(settings, "dead-letters", "--json").stdout)["total"] == 2
    feature_store = wiring.feature_store(settings)
    assert ("g1", "user_gifts") in feature_store.read("user", ["g1"], ["user_gifts"])
    feature_store.close()


def test_ingest_stop_at_end_exits_with_a_summary_and_dead_letters_limit_shows_the_newest(settings):
    import json

    def unknown_groups(prefix: str, n: int) -> list[dict]:
        t = int(time.time() * 1000) - 1000
        return [{**update(f"{prefix}{i}", 1, t), "group": f"{prefix}_group_{i}"} for i in range(n)]

    def ingest_to_end() -> dict:
        done = vahini(settings, "ingest", "features", "--stop-at-end")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    send_updates(settings, unknown_groups("early", 12) + [update("fine", 5, int(time.time() * 1000))])
    summary = ingest_to_end()
    assert (summary["events"], summary["rows_written"], summary["dead_lettered"]) == (13, 1, 12)
    send_updates(settings, unknown_groups("late", 3))  # spread over the partitions, after the early ones
    assert ingest_to_end()["dead_lettered"] == 3
    assert stored_clicks(settings, ["fine"]) == {"fine": 5}

    shown = json.loads(vahini(settings, "dead-letters", "--json", "--limit", "3").stdout)
    assert shown["total"] == 15
    assert sorted(e["detail"] for e in shown["latest"]) == [f"unknown feature group 'late_group_{i}'"
                                                            for i in range(3)]
    assert [e["failed_at_ms"] for e in shown["latest"]] == sorted(e["failed_at_ms"] for e in shown["latest"])


def test_replay_of_a_topic_that_does_not_exist_is_refused_not_created(settings):
    from vahini import wiring

    missing = settings.topics.dead_letter + "s"  # a misspelt name
    result = vahini(settings, "replay", "--topic", missing, "--from", "earliest")
    assert result.returncode == 1
    assert f"topic '{missing}' does not exist" in result.stderr
    log = wiring.event_log(settings)
    assert not log.exists(missing)  # and it was not created on the way
    log.close()


def test_ingest_interactions_takes_the_worker_flags_and_stops_at_end(settings):
    """The same worker flags as `ingest features`: --batch-size, --stop-at-end (with its
    JSON summary). The session ended, so it was flushed and the commit reaches the end."""
    import json

    from vahini.producer import EventProducer

    producer = EventProducer.from_settings(settings, "cli-test")
    t = int(time.time() * 1000) - 60_000
    for i in range(20):  # without a session: straight to the cold tier
        producer.interaction(f"solo-{i}", f"solo-u{i % 4}", f"p{i}", "CLICK", t + i)
    producer.session_event("sess-u", "s1", "START", t + 100)
    for i in range(5):
        producer.interaction(f"sess-{i}", "sess-u", f"p{i}", "CLICK", t + 101 + i)
    producer.session_event("sess-u", "s1", "END", t + 200)
    producer.flush()
    producer.close()
    done = vahini(settings, "ingest", "interactions", "--stop-at-end", "--batch-size", "7")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # Sessions and interactions are two topics here, read in no set order between them: the
    # session's clicks may come before its START (then they go cold), so only the sum is fixed.
    assert (summary["events"], summary["to_cold"] + summary["to_hot"]) == (27, 25), summary
    assert (summary["sessions_started"], summary["sessions_ended"], summary["dead_lettered"]) == (1, 1, 0)
