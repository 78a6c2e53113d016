"""vahini-client against a running `vahini serve` on the embedded stack: data goes in
through the vahini CLI (apply, produce, ingest), and comes back through the client.
Needs Vahini installed beside the client (the project's .venv has both)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

from vahini_client import NO_RETRIES, RetryPolicy, VahiniClient, protos_match
from vahini_client._proto import model_proxy_pb2 as mpb
from vahini_client._proto import model_proxy_pb2_grpc as mpb_grpc
from vahini_client.compat import CLIENT_FILES, mismatches

NOW_MS = int(time.time() * 1000)
FEATURES = [
    {"entity": "user", "keys": {"user_id": "u42"}, "group": "user_profile",
     "values": {"city": "Pune", "is_premium": True, "account_age_days": 400, "embedding": [0.5] * 16}},
    {"entity": "product", "keys": {"product_id": "p1"}, "group": "product_core",
     "values": {"category_id": "c3", "brand": "acme", "price": 19.5}},
    {"entity": "product", "keys": {"product_id": "p2"}, "group": "product_core",
     "values": {"category_id": "c7", "brand": "globex", "price": 250.0}},
]
CLICKS = [{"event_id": f"e{i}", "user_id": "u42", "product_id": f"p{i}", "category_id": "c3", "type": "CLICK",
           "event_time_ms": NOW_MS - 60_000 * (5 - i)} for i in range(5)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vahini(workdir: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "vahini.cli", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("VAHINI_")})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`vahini serve` on the embedded stack of a fresh directory, with the sample registry,
    three feature rows and five clicks of u42 ingested. Yields its address and process."""
    from importlib.util import find_spec

    samples = Path(find_spec("vahini").origin).parent / "samples" / "registry"
    workdir = tmp_path_factory.mktemp("vahini")
    vahini(workdir, "apply", str(samples))
    (workdir / "features.jsonl").write_text("".join(json.dumps(f) + "\n" for f in FEATURES))
    (workdir / "clicks.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CLICKS))
    vahini(workdir, "produce", "features.jsonl")
    vahini(workdir, "produce", "clicks.jsonl", "--kind", "interaction")
    vahini(workdir, "ingest", "features", "--stop-at-end")
    vahini(workdir, "ingest", "interactions", "--stop-at-end")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vahini.cli", "serve", "--port", str(port)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={k: v for k, v in os.environ.items() if not k.startswith("VAHINI_")})
    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
    yield address, proc
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    proc.wait(30)


def test_retrieve_returns_each_feature_with_its_status(server):
    with VahiniClient(server[0]) as client:
        got = client.retrieve("user", ["u42", "nobody"], ["user_profile"])
    profile = got.groups["user_profile"]
    assert got.keys == ["u42", "nobody"] and profile.schema_version == 1
    assert profile.values["city"] == ["Pune", "unknown"]
    assert profile.values["account_age_days"].tolist() == [400, 0]
    assert profile.values["embedding"].shape == (2, 16) and profile.values["embedding"][0].tolist() == [0.5] * 16
    assert profile.status_names("city") == ["present", "missing"]
    assert profile.event_time_ms[0] > 0 and profile.event_time_ms[1] == 0


def test_retrieve_of_chosen_features_only(server):
    with VahiniClient(server[0]) as client:
        got = client.retrieve("product", ["p2", "p1"], {"product_core": ["price", "brand"]})
    core = got.groups["product_core"]
    assert list(core.values) == ["price", "brand"]
    assert core.values["price"].tolist() == [250.0, 19.5] and core.values["brand"] == ["globex", "acme"]


def test_get_features_builds_the_models_matrix(server):
    with VahiniClient(server[0]) as client:
        got = client.get_features("home_ranker", user_id="u42", product_ids=["p1", "p2"])
    assert got.model == "home_ranker" and got.version == 1 and got.row_ids == ["p1", "p2"]
    assert got.matrix.dtype == np.float32 and got.matrix.shape == (2, len(got.columns))
    column = got.columns.index
    assert got.matrix[:, column("product.price")].tolist() == [19.5, 250.0]
    assert got.matrix[:, column("user.account_age_days")].tolist() == [400.0, 400.0]
    assert got.matrix[:, column("brand=acme")].tolist() == [1.0, 0.0]
    assert got.defaulted["stats.ctr_7d"]["missing"] == 2 and "product.price" not in got.defaulted
    # all five clicks were on category c3, p1's: count_matching over the last 20 clicked categories
    assert got.matrix[:, column("clicks_on_category")].tolist() == [5.0, 0.0]
    frame = got.to_pandas()
    assert list(frame.index) == ["p1", "p2"] and frame.loc["p2", "product.price"] == 250.0


def test_history_is_newest_first_from_the_cold_tier(server):
    with VahiniClient(server[0]) as client:
        got = client.history("u42", types=["CLICK"], limit=3)
    assert got.user_id == "u42" and got.source == "cold"
    assert [i.event_id for i in got.interactions] == ["e4", "e3", "e2"]
    assert {i.type for i in got.interactions} == {"CLICK"} and got.interactions[0].category_id == "c3"


def test_persist_then_retrieve(server):
    with VahiniClient(server[0]) as client:
        assert client.persist([{"entity": "user", "keys": {"user_id": "u7"}, "group": "user_profile",
                                "values": {"city": "Goa", "is_premium": False}}]) == 1
        got = client.retrieve("user", ["u7"], {"user_profile": ["city", "is_premium"]}).groups["user_profile"]
    assert got.values["city"] == ["Goa"] and got.values["is_premium"].tolist() == [False]
    assert got.status_names("city") == ["present"]


def test_a_bad_request_raises_the_servers_status(server):
    with VahiniClient(server[0]) as client:
        with pytest.raises(grpc.RpcError) as unknown:
            client.get_features("no_such_model", user_id="u42")
        with pytest.raises(grpc.RpcError) as bad_key:
            client.retrieve("user_category", ["u42"], ["user_category_affinity"])
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "no_such_model" in unknown.value.details()
    assert bad_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "u42" in bad_key.value.details()


def test_a_hung_server_costs_a_call_its_deadline_and_no_more(server):
    address, proc = server
    with VahiniClient(address, timeout_s=0.5) as client:
        assert client.retrieve("user", ["u42"], ["user_profile"]).groups  # the connection is up
        proc.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(grpc.RpcError) as hung:
                client.retrieve("user", ["u42"], ["user_profile"])
        finally:
            proc.send_signal(signal.SIGCONT)
        assert hung.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert client.retrieve("user", ["u42"], ["user_profile"], timeout_s=10).groups["user_profile"]


def test_the_client_and_the_server_agree_on_the_protos(server):
    with VahiniClient(server[0]) as client:
        assert protos_match(client) == []
    changed = dict(CLIENT_FILES)
    from google.protobuf import descriptor_pb2
    proto = descriptor_pb2.FileDescriptorProto.FromString(changed["model_proxy.proto"])
    proto.message_type[0].field.add(name="added_later", number=99, type=9, label=1)
    changed["model_proxy.proto"] = proto.SerializeToString()
    assert mismatches(dict(CLIENT_FILES), changed) == ["model_proxy.proto"]


class FlakyProxy(mpb_grpc.ModelProxyServicer):
    """Answers UNAVAILABLE to the first `failures` calls, then an empty matrix: to watch
    the client's retry policy at work (gRPC's own retries, from the service config)."""

    def __init__(self, failures: int):
        self.failures, self.calls = failures, 0

    def GetFeatures(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "store down")
        return mpb.GetFeaturesResponse(model=request.model, shape=[0, 0])


@pytest.mark.parametrize("policy, failures, succeeds, calls", [
    (RetryPolicy(max_attempts=3), 2, True, 3),
    (RetryPolicy(max_attempts=3), 3, False, 3),
    (NO_RETRIES, 1, False, 1),
])
def test_unavailable_is_retried_by_the_retry_policy(policy, failures, succeeds, calls):
    servicer = FlakyProxy(failures)
    flaky = grpc.server(futures.ThreadPoolExecutor(2))
    mpb_grpc.add_ModelProxyServicer_to_server(servicer, flaky)
    port = flaky.add_insecure_port("127.0.0.1:0")
    flaky.start()
    try:
        with VahiniClient(f"127.0.0.1:{port}", timeout_s=10, retry=policy) as client:
            if succeeds:
                assert client.get_features("m", user_id="u").model == "m"
            else:
                with pytest.raises(grpc.RpcError) as failed:
                    client.get_features("m", user_id="u")
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert servicer.calls == calls
    finally:
        flaky.stop(0)
