"""`vahini serve` and `vahini get` as an operator runs them."""

import json
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from tests.services import free_port
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.streams.processes import settings_env



@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_sample_registry(stack_settings(request.param, request, tmp_path, unique))


def test_serve_answers_exposes_metrics_and_stops_cleanly_on_sigterm(settings):
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vahini.serving", "--port", str(port),
                             "--metrics-port", str(metrics_port)], env=settings_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status == \
            health_pb2.HealthCheckResponse.SERVING
        stub = pb_grpc.FeatureServiceStub(channel)
        stub.Persist(pb.PersistRequest(updates=[pb.FeatureUpdate(
            entity="user", keys={"user_id": "cli"}, group="user_activity",
            values={"clicks_1d": pb.Value(int_value=12)}, event_time_ms=int(time.time() * 1000))]))
        stub.Retrieve(pb.RetrieveRequest(entity="user", keys=["cli"], groups=[pb.GroupSelector(group="user_activity")]))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert 'vahini_cache_lookups_total{result="miss",tier="redis"}' in metrics
        assert "vahini_retrieve_seconds_bucket" in metrics
        channel.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    got = subprocess.run([sys.executable, "-m", "vahini.cli", "get", "--entity", "user", "--keys", "cli,nobody",
                          "--groups", "user_activity", "--json"], env=settings_env(settings), capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert out["cli"]["user_activity"]["features"]["clicks_1d"] == {"value": 12, "status": "present"}
    assert out["cli"]["user_activity"]["schema_version"] == 1 and out["cli"]["user_activity"]["event_time_ms"]
    assert out["nobody"]["user_activity"]["features"]["clicks_1d"] == {"value": 0, "status": "missing"}
    assert out["nobody"]["user_activity"]["event_time_ms"] is None


def test_serve_pins_every_thread_to_the_cpus_it_is_given(settings):
    import os

    cpu = max(os.sched_getaffinity(0))  # one this test may use (of two or more: the highest, not the default set)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vahini.serving", "--port", str(port), "--cpus", str(cpu)],
                            env=settings_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            pb_grpc.FeatureServiceStub(channel).Retrieve(pb.RetrieveRequest(
                entity="user", keys=["pinned"], groups=[pb.GroupSelector(group="user_activity")]))
        threads = os.listdir(f"/proc/{proc.pid}/task")  # gRPC's, the clients', the handlers': all started by now
        assert len(threads) > 5
        assert {tid: os.sched_getaffinity(int(tid)) for tid in threads} == {tid: {cpu} for tid in threads}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    started = next(json.loads(line) for line in err.splitlines() if '"event": "serving"' in line)
    assert started["cpus"] == [cpu]


@pytest.mark.parametrize("cpus, message", [
    ("4096", "serving.cpus: CPU(s) 4096 not available to this process (it may use "),
    ("0,x", "--cpus: '0,x' is not a comma-separated list of CPU numbers"),
])
def test_serve_refuses_cpus_it_cannot_have_in_one_line(request, tmp_path, unique, cpus, message):
    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique))
    got = subprocess.run([sys.executable, "-m", "vahini.serving", "--port", str(free_port()), "--cpus", cpus],
                         env=settings_env(settings), capture_output=True, text=True, timeout=60)
    assert got.returncode == 1
    assert got.stderr.startswith(f"vahini serve: {message}") and "Traceback" not in got.stderr, got.stderr


def _get(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vahini.cli", "get", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--entity", "user", "--keys", "u1", "--groups", "user_hobbies"], "unknown feature group 'user_hobbies'"),
    (["--entity", "shop", "--keys", "u1", "--groups", "user_activity"], "unknown entity 'shop'"),
    (["--entity", "user", "--keys", "u1|x", "--groups", "user_activity"],
     "key 'u1|x' of entity 'user' has 2 part(s); it needs 1: user_id"),
    (["--entity", "user_category", "--keys", "u1", "--groups", "user_category_affinity"],
     "key 'u1' of entity 'user_category' has 1 part(s); it needs 2: user_id|category_id, in that order"),
    (["--entity", "user_category", "--keys", "u1|", "--groups", "user_category_affinity"], "has an empty part"),
])
def test_get_with_a_bad_argument_prints_one_line_and_exits_non_zero(request, tmp_path, unique, args, message):
    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique))
    got = _get(settings, *args)
    assert got.returncode == 1
    assert got.stderr.count("\n") == 1 and "Traceback" not in got.stderr
    assert message in got.stderr


def test_get_without_a_published_registry_says_to_apply_one(request, tmp_path, unique):
    settings = stack_settings("embedded", request, tmp_path, unique)
    got = _get(settings, "--entity", "user", "--keys", "u1", "--groups", "user_activity")
    assert got.returncode == 1
    assert got.stderr.strip() == (f"vahini get: no registry in {settings.config_store}: "
                                  f"run 'vahini apply DIR' first")


def test_get_prints_float32_at_float32_precision(request, tmp_path, unique):
    from tests.streams.helpers import ingest_until_caught_up
    from vahini.producer import EventProducer

    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique))
    producer = EventProducer.from_settings(settings)
    producer.feature_update("user", {"user_id": "f"}, "user_profile", {"embedding": [0.1] * 16})
    producer.close()
    ingest_until_caught_up(settings)
    got = _get(settings, "--entity", "user", "--keys", "f", "--groups", "user_profile", "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["f"]["user_profile"]["features"]["embedding"]["value"] == [0.1] * 16


def test_a_running_embedded_server_serves_a_superseded_value_only_from_its_lru(request, tmp_path, unique):
    """The worker runs in another process than `vahini serve`: its fence in the shared
    embedded hot tier, and the LRU's bound, are all that keep the server fresh. After the
    new value is ingested, every answer with the old one must be an LRU hit (the server's
    own counters say which tier answered), and the first LRU miss must bring the new one."""
    import re
    import urllib.request

    from tests.processes_helpers import wait_for
    from tests.streams.helpers import ingest_until_caught_up, send_updates, update

    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique))
    t = int(time.time() * 1000) - 60_000
    profile = dict(group="user_profile")  # cached in Redis-like hot tier and in a 1 s in-process LRU
    send_updates(settings, [update("fresh", 0, t, **profile, account_age_days=1)])
    ingest_until_caught_up(settings)
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vahini.serving", "--port", str(port), "--metrics-port",
                             str(metrics_port)], env=settings_env(settings), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def lru() -> tuple[float, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        return tuple(float(re.search(rf'^vahini_cache_lookups_total{{result="{result}",tier="lru"}} (\S+)$', text,
                                     re.M).group(1)) for result in ("hit", "miss"))
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.FeatureServiceStub(channel)
        request_ = pb.RetrieveRequest(entity="user", keys=["fresh"], groups=[pb.GroupSelector(
            group="user_profile", features=["account_age_days"])])

        def age() -> int:
            from vahini.serving.convert import array_of
            return int(array_of(stub.Retrieve(request_).groups[0].features[0].tensor)[0])
        assert age() == 1 and age() == 1  # now in the server's LRU and the shared hot tier
        send_updates(settings, [update("fresh", 0, t + 1, **profile, account_age_days=2)])
        ingest_until_caught_up(settings)  # another process: only the fence and the LRU bound reach the server
        answers = []

        def answered_new() -> bool:
            before = lru()
            value = age()
            after = lru()
            answers.append((value, after[0] - before[0], after[1] - before[1]))  # (value, LRU hits, LRU misses)
            return value == 2
        wait_for(answered_new, 30, "the server to serve the new value")
        stale = [a for a in answers if a[0] == 1]
        assert all(hits == 1 and misses == 0 for _, hits, misses in stale), answers
        assert answers[-1][2] == 1, answers  # the new value came once the LRU missed
        channel.close()
    finally:
        proc.terminate()
        proc.wait(30)
