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

from serving.api import feature_service_pb2 as pb
from serving.api import feature_service_pb2_grpc as pb_grpc
from tests.services import free_port
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.streams.processes import settings_env



@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_sample_registry(stack_settings(request.param, request, tmp_path, unique))


def test_serve_answers_exposes_metrics_and_stops_cleanly_on_sigterm(settings):
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "serving", "--port", str(port),
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
                          "--groups", "user_activity"], env=settings_env(settings), capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert out["cli"]["user_activity.clicks_1d"] == {"value": 12, "status": "present"}
    assert out["nobody"]["user_activity.clicks_1d"] == {"value": 0, "status": "missing"}
