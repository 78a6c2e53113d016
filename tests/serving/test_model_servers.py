"""Score nodes against the model servers people run: Seldon MLServer (scikit-learn
runtime) and NVIDIA Triton (through PyTriton, on CPU). Each test compares the
scores Vahini returns with the model's own output on the matrix Vahini returned,
value for value, and the faults are the servers' own: a call they reject, a
server that hangs (SIGSTOP) and one that restarts."""

from __future__ import annotations

import shutil
import signal
import time

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.server import start_server
from tests.conftest_backends import stack_settings
from tests.model_servers import functions, servers
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import publish

pytestmark = [pytest.mark.real_service, pytest.mark.slow]

ROWS = 200
LOOKUPS = """    context: [user_id, product_ids]
    rows: product_ids
    lookups:
      - {name: product, group: product_core, keys: {product_id: row}}
      - {name: stats, group: product_stats, keys: {product_id: row}}
      - {name: user, group: user_profile, keys: {user_id: context.user_id}}
    features:
      - product.price
      - {name: log_price, from: product.price, transform: log1p}
      - stats.ctr_7d
      - stats.cvr_7d
      - stats.rating
      - user.is_premium
"""


def _running(server: servers.ModelServer):
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    yield from _running(servers.mlserver(tmp_path_factory.mktemp("mlserver")))


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    yield from _running(servers.triton(tmp_path_factory.mktemp("triton")))


def publish_models(settings, tmp_path, models: str) -> None:
    directory = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, directory, dirs_exist_ok=True)
    (directory / "models.yaml").write_text("models:\n" + models)
    store = wiring.config_store(settings)
    publish.apply(directory, store)
    store.close()


def persist_products(features: pb_grpc.FeatureServiceStub, products: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    now = int(time.time() * 1000)
    updates = []
    for i, p in enumerate(products):
        updates.append(pb.FeatureUpdate(entity="product", keys={"product_id": p}, group="product_core",
                                        event_time_ms=now, values={
                                            "price": pb.Value(float_value=float(rng.uniform(1, 500))),
                                            "category_id": pb.Value(string_value=f"c{i % 13}")}))
        updates.append(pb.FeatureUpdate(entity="product", keys={"product_id": p}, group="product_stats",
                                        event_time_ms=now, values={
                                            "ctr_7d": pb.Value(float_value=float(rng.uniform(0, 0.3))),
                                            "cvr_7d": pb.Value(float_value=float(rng.uniform(0, 0.05))),
                                            "rating": pb.Value(float_value=float(rng.uniform(1, 5)))}))
    features.Persist(pb.PersistRequest(updates=updates), timeout=60)


class Served:
    """Vahini's server on the real stack, with the model servers under their names."""

    def __init__(self, request, tmp_path, unique, models: str, endpoints: dict[str, str]):
        settings = stack_settings("real", request, tmp_path, unique)
        publish_models(settings, tmp_path, models)
        serving = settings.serving.model_copy(update={"model_endpoints": endpoints})
        self.running = start_server(settings.model_copy(update={"serving": serving}), port=0)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.running.port}")
        self.products = [f"p{i}-{unique}" for i in range(ROWS)]
        persist_products(pb_grpc.FeatureServiceStub(self.channel), self.products, seed=len(unique))
        self.proxy = mpb_grpc.ModelProxyStub(self.channel)
        self.user = f"u-{unique}"

    def ask(self, model: str, rows: int = ROWS, timeout_s: float = 30) -> mpb.GetFeaturesReply:
        context = {"user_id": mpb.ContextIds(ids=[self.user]), "product_ids": mpb.ContextIds(ids=self.products[:rows])}
        return self.proxy.GetFeatures(mpb.GetFeaturesRequest(model=model, context=context), timeout=timeout_s)

    def close(self) -> None:
        self.channel.close()
        self.running.stop(0)


def matrix_of(reply) -> np.ndarray:
    return np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))


def scores_of(reply) -> dict[str, np.ndarray]:
    return {s.node: np.frombuffer(s.values, "<f4") for s in reply.scores}


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_mlserver_scores_are_the_positive_class_probabilities_not_labels(request, tmp_path, unique, mlserver):
    models = "".join(f"  - name: {name}\n{LOOKUPS}    score:\n      - name: ctr\n        endpoint: "
                     f"{{target: mlserver, model: lr{extra}}}\n        timeout_ms: 5000\n"
                     for name, extra in (("proba", ", output: predict_proba, column: 1"),
                                         ("unnamed", ""), ("no_column", ", output: predict_proba")))
    served = Served(request, tmp_path, unique, models, {"mlserver": mlserver.target})
    try:
        reply = served.ask("proba")
        x = matrix_of(reply)
        assert x.shape == (ROWS, len(servers.MLSERVER_FEATURE_HIGHS)) and len(np.unique(x[:, 0])) == ROWS
        probabilities = servers.mlserver_predict_proba(mlserver, x, tmp_path)
        got = scores_of(reply)["ctr"]
        np.testing.assert_array_equal(got, probabilities[:, 1].astype(np.float32))
        assert 0 < got.min() < got.max() < 1 and len(np.unique(got)) > ROWS // 2  # probabilities, not labels
        # Without an output named, MLServer answers `predict` (0/1 labels): refused, never served as scores.
        with pytest.raises(grpc.RpcError) as unnamed:
            served.ask("unnamed")
        assert unnamed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "score node 'ctr'" in unnamed.value.details()
        assert "INT64 output 'predict'" in unnamed.value.details() and "output: predict_proba" in unnamed.value.details()
        # predict_proba is [N, 2]: which column is the score is the node's to say.
        with pytest.raises(grpc.RpcError) as no_column:
            served.ask("no_column")
        assert no_column.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"of shape [{ROWS}, 2]" in no_column.value.details() and "column: 1" in no_column.value.details()
    finally:
        served.close()


def test_triton_scores_200_rows_in_calls_of_at_most_max_batch_size_and_takes_two_named_inputs(
        request, tmp_path, unique, triton):
    models = f"""  - name: triton_ranker
{LOOKUPS}      - {{name: category_bucket, from: product.category_id, transform: hash, buckets: 1000, dtype: int32}}
    score:
      - name: p
        endpoint: {{target: triton, model: ranker64}}
        output: output_probability   # listed after output_label, as skl2onnx does
        column: 1
        batch_size: 64               # the model's max_batch_size
        timeout_ms: 5000
      - name: blend
        endpoint: {{target: triton, model: two_inputs, batch_size: 64}}
        inputs:
          - {{name: dense, columns: [product.price, stats.ctr_7d, p], datatype: FP64}}
          - {{name: ids, columns: [category_bucket], datatype: INT64}}
        timeout_ms: 5000
"""
    served = Served(request, tmp_path, unique, models, {"triton": triton.target})
    calls = lambda model, code="OK": metric("vahini_model_calls_total", endpoint="triton",  # noqa: E731
                                            model=model, code=code)
    rows = lambda model: metric("vahini_model_rows_scored_total", endpoint="triton", model=model)  # noqa: E731
    before = {m: (calls(m), rows(m)) for m in ("ranker64", "two_inputs")}
    try:
        reply = served.ask("triton_ranker")
        x, scores = matrix_of(reply), scores_of(reply)
        assert x.shape == (ROWS, 7)
        p = functions.ranker(x)["output_probability"][:, 1]
        np.testing.assert_array_equal(scores["p"], p)
        columns = list(reply.columns)
        dense = np.stack([x[:, columns.index("product.price")], x[:, columns.index("stats.ctr_7d")], scores["p"]],
                         axis=1).astype(np.float64)
        ids = x[:, [columns.index("category_bucket")]].astype(np.int64)
        np.testing.assert_array_equal(scores["blend"], functions.two_inputs(dense, ids)["score"][:, 0])
        for model in ("ranker64", "two_inputs"):  # 200 rows: calls of 64, 64, 64 and 8
            assert (calls(model) - before[model][0], rows(model) - before[model][1]) == (4, ROWS)
        # Without batch_size Triton refuses the 200 rows: the refusal names the endpoint.
    finally:
        served.close()


def test_a_call_the_model_server_rejects_is_failed_precondition_naming_the_endpoint_and_is_logged(
        request, tmp_path, unique, mlserver, triton, capsys):
    four_columns = LOOKUPS.replace("      - stats.rating\n      - user.is_premium\n", "")
    models = f"""  - name: too_few_columns
{four_columns}    score:
      - {{name: ctr, endpoint: {{target: mlserver, model: lr, output: predict_proba, column: 1}}, timeout_ms: 5000}}
  - name: unbatched
{LOOKUPS}    score:
      - {{name: p, endpoint: {{target: triton, model: ranker64, output: output_probability, column: 1}}}}
"""
    served = Served(request, tmp_path, unique, models, {"mlserver": mlserver.target, "triton": triton.target})
    failed = lambda: metric("vahini_model_calls_total", endpoint="mlserver", model="lr",  # noqa: E731
                            code="INTERNAL")
    before = failed()
    try:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as rejected:
                served.ask("too_few_columns")
            assert rejected.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "model endpoint mlserver (lr)" in rejected.value.details()
            assert "X has 4 features, but LogisticRegression is expecting 6" in rejected.value.details()
        assert failed() - before == 2
        with pytest.raises(grpc.RpcError) as too_many:
            served.ask("unbatched")
        assert too_many.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "model endpoint triton (ranker64)" in too_many.value.details()
        assert "batch-size must be <= 64" in too_many.value.details()
        captured = capsys.readouterr()  # structlog prints to stdout until vahini.logs.configure sends it to stderr
        logged = [line for line in (captured.out + captured.err).splitlines() if "model_call_failed" in line]
        # one line per endpoint and outcome within 10 s: the second rejection is held back
        assert len([line for line in logged if "mlserver" in line]) == 1
        assert len([line for line in logged if "ranker64" in line]) == 1
    finally:
        served.close()


def test_a_hung_model_server_is_unavailable_or_default_scores_and_serves_again_once_it_resumes(
        request, tmp_path, unique, triton):
    node = """    score:
      - name: p
        endpoint: {target: triton, model: ranker64, output: output_probability, column: 1, batch_size: 64}
        timeout_ms: 300
        default: -1
"""
    models = f"  - name: strict\n{LOOKUPS}{node}  - name: lenient\n    on_outage: defaults\n{LOOKUPS}{node}"
    served = Served(request, tmp_path, unique, models, {"triton": triton.target})
    try:
        healthy = scores_of(served.ask("strict"))["p"]
        triton.signal(signal.SIGSTOP)
        try:
            with pytest.raises(grpc.RpcError) as hung:
                served.ask("strict")
            # the node's own timeout fired, not the caller's 30 s deadline
            assert hung.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "model endpoint triton (ranker64): DEADLINE_EXCEEDED after at most 300 ms" in hung.value.details()
            lenient = served.ask("lenient")
            assert "score p" in lenient.degraded
            np.testing.assert_array_equal(scores_of(lenient)["p"], np.full(ROWS, -1, np.float32))
            assert matrix_of(lenient).shape == (ROWS, 6)  # the features are still served
        finally:
            triton.signal(signal.SIGCONT)
        np.testing.assert_array_equal(_first_success(served, "strict")["p"], healthy)
    finally:
        served.close()


def test_scores_come_back_after_the_model_server_restarts(request, tmp_path, unique, mlserver):
    models = f"""  - name: proba
{LOOKUPS}    score:
      - {{name: ctr, endpoint: {{target: mlserver, model: lr, output: predict_proba, column: 1}}, timeout_ms: 5000}}
"""
    served = Served(request, tmp_path, unique, models, {"mlserver": mlserver.target})
    try:
        before = scores_of(served.ask("proba"))["ctr"]
        mlserver.stop()
        with pytest.raises(grpc.RpcError) as down:
            served.ask("proba")
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "model endpoint mlserver (lr): UNAVAILABLE" in down.value.details()
        mlserver.start()
        np.testing.assert_array_equal(_first_success(served, "proba")["ctr"], before)
    finally:
        served.close()


def _first_success(served: Served, model: str, attempts: int = 60) -> dict[str, np.ndarray]:
    """The scores of the first call that succeeds, a call every half second; fails after `attempts`."""
    for _ in range(attempts):
        try:
            return scores_of(served.ask(model))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.5)
    pytest.fail(f"{model} still UNAVAILABLE after {attempts} tries")
