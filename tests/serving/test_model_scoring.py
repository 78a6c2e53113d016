"""Model nodes: the Model Proxy sends the matrix to a KServe v2 endpoint (the
reference model server), chains two models, splits traffic sticky per user, and
handles an endpoint that hangs or rejects the call as the model's on_outage says."""

from __future__ import annotations

import shutil

import grpc
import numpy as np
import pytest

from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.reference_model import LinearModel, start_model_server
from vahini.serving.server import start_server
from tests.conftest_backends import STACKS, stack_settings
from tests.faults import TcpProxy
from tests.serving.test_model_proxy import context, persist, value
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import publish

MODELS = {"ctr_model": LinearModel((0.5, 2.0, 1.0, -0.25), 0.1),
          "rank_a": LinearModel((0.1, 0.2, 0.3, 0.4, 3.0), -1.0),
          "rank_b": LinearModel(None, 0.5)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def expected(model: str, x: np.ndarray) -> np.ndarray:
    m = MODELS[model]
    w = np.full(x.shape[1], 1 / x.shape[1]) if m.weights is None else np.asarray(m.weights)
    return sigmoid(x.astype(np.float64) @ w + m.bias)


def publish_registry(settings, tmp_path, edit=lambda text: text) -> None:
    d = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, d, dirs_exist_ok=True)
    (d / "models.yaml").write_text(edit((SAMPLE_REGISTRY / "models.yaml").read_text()))
    store = wiring.config_store(settings)
    publish.apply(d, store)
    store.close()


@pytest.fixture
def model_server():
    server, port, servicer = start_model_server(MODELS)
    yield port, servicer
    server.stop(0)


def serve(settings, endpoint: str):
    serving = settings.serving.model_copy(update={"model_endpoints": {"reference": endpoint}})
    running = start_server(settings.model_copy(update={"serving": serving}), port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    return running, channel


@pytest.mark.parametrize("stack", STACKS)
def test_two_chained_models_score_every_row_and_the_split_is_sticky_per_user(stack, request, tmp_path, unique,
                                                                             model_server):
    port, servicer = model_server
    settings = stack_settings(stack, request, tmp_path, unique)
    publish_registry(settings, tmp_path)
    running, channel = serve(settings, f"127.0.0.1:{port}")
    products = [f"p{i}-{unique}" for i in range(4)]
    try:
        from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
        features = pb_grpc.FeatureServiceStub(channel)
        for i, p in enumerate(products[:3]):
            persist(features, "product", {"product_id": p}, "product_core", {"price": value(float_value=10.0 * i)})
            persist(features, "product", {"product_id": p}, "product_stats", {"ctr_7d": value(float_value=0.1 * i)})
        proxy = mpb_grpc.ModelProxyStub(channel)
        reply = proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker_scored",
                                                         context=context(f"u-{unique}", products)), timeout=30)
        x = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
        scores = {s.node: (s.endpoint, np.frombuffer(s.values, "<f4")) for s in reply.scores}
        assert list(scores) == ["ctr", "rank"] and scores["ctr"][0] == "reference/ctr_model"
        ctr = scores["ctr"][1]
        assert ctr.tolist() == pytest.approx(expected("ctr_model", x).tolist(), rel=1e-5)
        rank_model = scores["rank"][0].split("/")[1]
        chained = np.hstack([x, ctr.reshape(-1, 1)])  # the first model's scores: a column of the second's input
        assert scores["rank"][1].tolist() == pytest.approx(expected(rank_model, chained).tolist(), rel=1e-5)
        assert len(set(ctr.tolist())) > 1  # rows differ, so a row mix-up would show

        chosen = {}
        for i in range(200):
            user = f"user{i}"
            for _ in range(2):
                reply = proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker_scored",
                                                                 context=context(user, products[:1])), timeout=30)
                endpoint = next(s.endpoint for s in reply.scores if s.node == "rank")
                assert chosen.setdefault(user, endpoint) == endpoint  # sticky: the same user, the same endpoint
        share_b = sum(e.endswith("rank_b") for e in chosen.values()) / len(chosen)
        assert 0.04 <= share_b <= 0.2, share_b  # 10% configured
        assert servicer.calls == 2 * (1 + 400)
    finally:
        channel.close()
        running.stop(0)


def test_a_hanging_endpoint_fails_the_request_or_serves_default_scores_as_the_model_says(request, tmp_path, unique,
                                                                                          model_server):
    port, _ = model_server
    settings = stack_settings("embedded", request, tmp_path, unique)

    def with_lenient_copy(text: str) -> str:
        scored = text.split("  - name: home_ranker_scored\n", 1)[1]
        lenient = scored.replace("    rows: product_ids\n", "    rows: product_ids\n    on_outage: defaults\n", 1)
        return text + "  - name: lenient_scored\n" + lenient.replace("timeout_ms: 200", "timeout_ms: 200\n"
                                                                       "        default: -1", 1)
    publish_registry(settings, tmp_path, with_lenient_copy)
    hanging = TcpProxy("127.0.0.1", port)
    running, channel = serve(settings, f"127.0.0.1:{hanging.port}")
    proxy = mpb_grpc.ModelProxyStub(channel)
    ask = lambda model: proxy.GetFeatures(  # noqa: E731
        mpb.GetFeaturesRequest(model=model, context=context("u1", ["p1", "p2"])), timeout=30)
    try:
        assert len(ask("home_ranker_scored").scores) == 2  # through the proxy, while it passes traffic
        hanging.hang()
        with pytest.raises(grpc.RpcError) as info:
            ask("home_ranker_scored")
        # UNAVAILABLE, not the caller's 30 s DEADLINE_EXCEEDED: the node's own 200 ms timeout fired
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "model endpoint reference (ctr_model)" in info.value.details()
        reply = ask("lenient_scored")
        assert "score ctr" in reply.degraded and "score rank" in reply.degraded
        scores = {s.node: np.frombuffer(s.values, "<f4").tolist() for s in reply.scores}
        assert scores == {"ctr": [-1.0, -1.0], "rank": [0.0, 0.0]}  # each node's default
        assert list(reply.shape) == [2, 4]  # the features are still served
    finally:
        hanging.resume()
        channel.close()
        running.stop(0)


def test_an_endpoint_that_rejects_the_call_is_failed_precondition_naming_it(request, tmp_path, unique, model_server):
    port, _ = model_server
    settings = stack_settings("embedded", request, tmp_path, unique)
    publish_registry(settings, tmp_path, lambda text: text.replace("model: ctr_model", "model: no_such_model"))
    running, channel = serve(settings, f"127.0.0.1:{port}")
    try:
        with pytest.raises(grpc.RpcError) as info:
            mpb_grpc.ModelProxyStub(channel).GetFeatures(mpb.GetFeaturesRequest(
                model="home_ranker_scored", context=context("u1", ["p1"])), timeout=30)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "NOT_FOUND: unknown model 'no_such_model'" in info.value.details()
    finally:
        channel.close()
        running.stop(0)


def test_vahini_model_server_answers_model_infer_as_a_user_would(tmp_path):
    import json
    import subprocess
    import sys

    from vahini.serving.api import kserve_v2_pb2 as kpb
    from vahini.serving.api import kserve_v2_pb2_grpc as kpb_grpc
    from tests.services import free_port

    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"weights": [1.0, -2.0], "bias": 0.5}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vahini.cli", "dev", "model-server", "--port", str(port),
                             "--model", "even", "--model", f"tuned={weights}"], stdout=subprocess.PIPE, text=True)
    try:
        assert "model server on 127.0.0.1" in proc.stdout.readline()
        stub = kpb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        x = np.array([[1.0, 0.5], [0.0, 2.0]], np.float32)
        for model in ("even", "tuned"):
            reply = stub.ModelInfer(kpb.ModelInferRequest(
                model_name=model, inputs=[kpb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32",
                                                                                shape=[2, 2])],
                raw_input_contents=[x.tobytes()]), timeout=10)
            scores = np.frombuffer(reply.raw_output_contents[0], "<f4")
            w, b = ((0.5, 0.5), 0.0) if model == "even" else ((1.0, -2.0), 0.5)
            assert scores.tolist() == pytest.approx(sigmoid(x @ np.array(w) + b).tolist(), rel=1e-6)
        assert stub.ModelReady(kpb.ModelReadyRequest(name="tuned"), timeout=10).ready
        assert not stub.ModelReady(kpb.ModelReadyRequest(name="other"), timeout=10).ready
    finally:
        proc.terminate()
        proc.wait(10)


def test_vahini_query_blames_the_model_endpoint_not_tls_when_the_endpoint_is_down(request, tmp_path, unique):
    import subprocess
    import sys

    from tests.services import free_port
    from tests.streams.processes import settings_env

    settings = stack_settings("embedded", request, tmp_path, unique)
    publish_registry(settings, tmp_path)
    running, channel = serve(settings, f"127.0.0.1:{free_port()}")  # nothing listens at the model endpoint

    def query(target: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vahini.cli", "query", "home_ranker_scored", "--set",
                               "user_id=u1", "--set", "product_ids=p1", "--target", target],
                              env=settings_env(settings), capture_output=True, text=True, timeout=60)
    try:
        endpoint_down = query(f"127.0.0.1:{running.port}")
        assert endpoint_down.returncode == 3 and "UNAVAILABLE: model endpoint reference (ctr_model)" \
            in endpoint_down.stderr
        assert "--ca-file" not in endpoint_down.stderr  # Vahini answered: the connection to it is fine
        vahini_down = query(f"127.0.0.1:{free_port()}")
        assert vahini_down.returncode == 3 and "if the server uses TLS, give --ca-file" in vahini_down.stderr
    finally:
        channel.close()
        running.stop(0)
