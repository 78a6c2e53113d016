"""Crash safety, scale-out and shutdown of real worker processes."""

import random
import time
import urllib.request

import pytest

from vahini import wiring
from tests.services import free_port
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.streams.helpers import send_raw, send_updates, stored_clicks, update, wait_for_commits
from tests.streams.processes import WorkerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_sample_registry(stack_settings(request.param, request, tmp_path, unique, batch_size=200,
                                               batch_linger_ms=5))


def versions(users: int, per_user: int, seed: int) -> tuple[list[dict], dict[str, int]]:
    """Updates in shuffled order; the newest per user carries the highest value."""
    t0 = int(time.time() * 1000) - 3_600_000
    updates = [update(f"u{u}", v, t0 + v) for u in range(users) for v in range(per_user)]
    random.Random(seed).shuffle(updates)
    return updates, {f"u{u}": per_user - 1 for u in range(users)}


def committed_total(settings) -> int:
    log = wiring.event_log(settings)
    total = sum(log.committed(settings.ingest.group, settings.topics.feature_updates).values())
    log.close()
    return total


def owns_partitions(metrics_port: int) -> bool:
    """A worker reports consumer lag for exactly the partitions it owns."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    except OSError:
        return False
    return any(line.startswith("vahini_consumer_lag{") for line in text.splitlines())


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)



def test_kill_9_mid_run_loses_nothing_and_the_restart_finishes(settings):
    updates, newest = versions(users=3000, per_user=8, seed=1)
    send_updates(settings, updates)
    total = len(updates)
    worker = WorkerProcess(settings)
    wait_until(lambda: committed_total(settings) >= total // 4, 120, "a quarter committed")
    worker.kill9()
    at_kill = committed_total(settings)
    assert at_kill < total, "worker finished before the kill; the test proves nothing"

    port = free_port()
    restarted = WorkerProcess(settings, metrics_port=port)
    wait_for_commits(settings, 180)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    summary = restarted.terminate()
    assert summary["events"] >= total - at_kill  # everything after the last commit was (re)processed
    assert stored_clicks(settings, list(newest)) == newest
    for name in ("vahini_ingest_events_total", "vahini_ingest_batch_size_bucket", "vahini_store_write_seconds_bucket",
                 "vahini_feature_freshness_seconds_bucket", "vahini_consumer_lag", "vahini_ingest_rows_written_total"):
        assert name in metrics, name
    events_line = next(l for l in metrics.splitlines() if l.startswith("vahini_ingest_events_total{"))
    assert float(events_line.split()[-1]) == summary["events"]


def test_two_workers_share_partitions_through_a_rebalance_without_loss(settings):
    first, newest_a = versions(users=1000, per_user=6, seed=2)
    send_updates(settings, first)
    a = WorkerProcess(settings)
    wait_until(lambda: committed_total(settings) > 0, 120, "worker A to commit")
    b_metrics = free_port()
    b = WorkerProcess(settings, metrics_port=b_metrics)
    second = [update(f"v{u}", v, int(time.time() * 1000) - 1000 + v) for u in range(1000) for v in range(6)]
    send_updates(settings, second)
    wait_until(lambda: owns_partitions(b_metrics), 60, "worker B to own partitions")
    summary_a = a.terminate()  # B must take A's partitions over
    third = [update(f"w{u}", 9, int(time.time() * 1000) - 10) for u in range(500)]
    send_updates(settings, third)
    try:
        wait_for_commits(settings, 180)
    except AssertionError as exc:  # the workers' own account of the rebalance, for whoever reads the failure
        raise AssertionError(f"{exc}\n--- worker A's log, last lines ---\n{a.logs()[-4000:]}"
                             f"\n--- worker B's log, last lines ---\n{b.logs()[-8000:]}") from None
    summary_b = b.terminate()
    total = len(first) + len(second) + len(third)
    assert summary_a["events"] > 0 and summary_b["events"] > 0
    assert summary_a["events"] + summary_b["events"] >= total
    expected = {**newest_a, **{f"v{u}": 5 for u in range(1000)}, **{f"w{u}": 9 for u in range(500)}}
    assert stored_clicks(settings, list(expected)) == expected


def test_sigterm_drains_and_commits_what_was_processed(settings):
    send_updates(settings, [update(f"s{u}", 1, int(time.time() * 1000) - 5) for u in range(300)])
    send_raw(settings, [b"garbage"])
    worker = WorkerProcess(settings)
    wait_for_commits(settings, 120)
    summary = worker.terminate()
    assert summary == {**summary, "events": 301, "rows_written": 300, "dead_lettered": 1}
    assert committed_total(settings) == 301


def test_a_replay_beside_live_ingestion_keeps_the_newest_values(settings):
    from vahini.streams.replay import replay

    old, newest = versions(users=800, per_user=4, seed=3)
    send_updates(settings, old)
    live = WorkerProcess(settings)
    wait_for_commits(settings, 120)
    t = int(time.time() * 1000)
    newer = [update(f"u{u}", 100 + u, t + u) for u in range(800)]
    send_updates(settings, newer[:400])
    # The replay rewrites every old value while live ingestion writes newer ones.
    stats = replay(settings, settings.topics.feature_updates, "earliest", None, "replay-beside-live", progress=False)
    send_updates(settings, newer[400:])
    wait_for_commits(settings, 120)
    live.terminate()
    assert stats.events >= len(old)
    assert stored_clicks(settings, list(newest)) == {f"u{u}": 100 + u for u in range(800)}


def test_a_running_worker_picks_up_a_new_feature_group_without_restart(settings, tmp_path):
    import shutil

    from vahini.streams.dead_letter import reason_of
    from tests.streams.helpers import dead_letters
    from vahini.demo import SAMPLE_REGISTRY
    from vahini.registry import publish

    t = int(time.time() * 1000) - 1000
    coupon = {"entity": "user", "keys": {"user_id": "cz"}, "group": "user_coupons",
              "values": {"coupons_30d": 4}, "event_time_ms": t, "producer_id": "test"}
    worker = WorkerProcess(settings)
    send_updates(settings, [coupon])
    wait_for_commits(settings, 120)
    (letter,) = dead_letters(settings, 1)
    assert reason_of(letter)["vahini.reason"] == "unknown_group"

    registry_dir = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, registry_dir)
    (registry_dir / "coupons.yaml").write_text(
        "feature_groups:\n  - name: user_coupons\n    entity: user\n    version: 1\n"
        "    features: [{name: coupons_30d, type: int32, default: 0}]\n")
    store = wiring.config_store(settings)
    publish.apply(registry_dir, store)
    store.close()
    feature_store = wiring.feature_store(settings)
    sent = 0

    def stored() -> bool:  # until the worker has the new group, its events are dead-lettered: keep sending
        nonlocal sent
        sent += 1
        send_updates(settings, [{**coupon, "event_time_ms": t + sent}])
        wait_for_commits(settings, 120)
        return ("cz", "user_coupons") in feature_store.read("user", ["cz"], ["user_coupons"])

    wait_until(stored, 30, "the running worker to pick up the new group")
    summary = worker.terminate()
    assert summary["rows_written"] == 1 and summary["dead_lettered"] == sent
    assert ("cz", "user_coupons") in feature_store.read("user", ["cz"], ["user_coupons"])
    feature_store.close()
