"""A real gRPC client that knows nothing of our proto (grpcurl) can list, describe,
health-check and call the FeatureService through server reflection."""

import base64
import json
import os
import shutil
import subprocess
import time

import pytest

from vahini.serving.server import start_server
from tests.conftest_backends import stack_settings, with_sample_registry


def grpcurl() -> str:
    path = os.environ.get("VAHINI_GRPCURL") or shutil.which("grpcurl")
    if path and os.access(path, os.X_OK):
        return path
    message = "grpcurl not found: run infra/grpcurl.sh install and set VAHINI_GRPCURL"
    if os.environ.get("VAHINI_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def address(tmp_path, unique):
    settings = with_sample_registry(stack_settings("embedded", None, tmp_path, unique))
    running = start_server(settings, port=0)
    yield f"127.0.0.1:{running.port}"
    running.stop(0)


def call(*args: str) -> str:
    result = subprocess.run([grpcurl(), "-plaintext", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_lists_describes_and_health_checks(address):
    services = call(address, "list").split()
    assert {"vahini.v1.FeatureService", "grpc.health.v1.Health"} <= set(services)
    described = call(address, "describe", "vahini.v1.FeatureService")
    assert "rpc Retrieve ( .vahini.v1.RetrieveRequest ) returns ( .vahini.v1.RetrieveResponse );" in described
    health = json.loads(call("-d", '{"service": "vahini.v1.FeatureService"}', address, "grpc.health.v1.Health/Check"))
    assert health == {"status": "SERVING"}


def test_grpcurl_persists_and_retrieves_with_json(address):
    now = int(time.time() * 1000)
    persist = {"updates": [{"entity": "user", "keys": {"user_id": "curl"}, "group": "user_activity",
                            "values": {"clicks_1d": {"intValue": "31"}}, "eventTimeMs": str(now)}]}
    assert json.loads(call("-d", json.dumps(persist), address, "vahini.v1.FeatureService/Persist")) == \
        {"rows_written": 1}
    request = {"entity": "user", "keys": ["curl"], "groups": [{"group": "user_activity", "features": ["clicks_1d"]}]}
    reply = json.loads(call("-d", json.dumps(request), address, "vahini.v1.FeatureService/Retrieve"))
    column = reply["groups"][0]["features"][0]
    assert column["name"] == "clicks_1d" and column["tensor"]["dtype"] == "<i4" and column["tensor"]["shape"] == ["1"]
    assert int.from_bytes(base64.b64decode(column["tensor"]["data"]), "little") == 31
    assert base64.b64decode(column["status"]) == b"\x00"  # PRESENT


def test_grpcurl_sees_and_calls_the_interaction_service(address):
    assert "vahini.v1.InteractionService" in call(address, "list").split()
    described = call(address, "describe", "vahini.v1.InteractionService")
    assert "rpc GetInteractions ( .vahini.v1.GetInteractionsRequest )" in described
    reply = json.loads(call("-d", '{"user_id": "nobody", "types": ["CLICK"], "limit": 5}', address,
                            "vahini.v1.InteractionService/GetInteractions"))
    assert reply == {"user_id": "nobody", "source": "cold"}  # no interactions: the empty list is left out
    health = json.loads(call("-d", '{"service": "vahini.v1.InteractionService"}', address,
                             "grpc.health.v1.Health/Check"))
    assert health == {"status": "SERVING"}
