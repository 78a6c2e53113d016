"""Vector search on both stacks: FeatureService.Search, a model graph whose rows come
from a `candidates:` step, freshness through the event log, removals and expiry,
precise status codes, and `vahini search`."""

from __future__ import annotations

import json
import shutil
import time

import grpc
import numpy as np
import pytest

from tests.conftest_backends import STACKS, stack_settings
from tests.processes_helpers import WorkerThread
from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.ports.vector_index import scores
from vahini.producer import EventProducer
from vahini.registry import publish
from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.server import start_server
from vahini.streams.app import Backends, build_worker

DIM = 16  # product_stats.embedding and user_profile.embedding in the sample registry
WEEK_MS = 7 * 86_400_000  # product_stats' ttl_s

EXTRA = """\
indexes:
  - name: INDEX
    group: product_stats
    feature: embedding
    metric: cosine
    filters: [product_core.in_stock, product_core.category_id]
models:
  - name: near_ranker
    context: [user_id]
    on_outage: OUTAGE
    lookups:
      - {name: user, group: user_profile, keys: {user_id: context.user_id}}
      - {name: product, group: product_core, keys: {product_id: row}}
      - {name: user_cat, group: user_category_affinity,
         keys: {user_id: context.user_id, category_id: product.category_id}}
    candidates: {name: near, index: INDEX, query: user.embedding, k: 20, filters: {in_stock: true}}
    rows: near
    features:
      - near.ctr_7d
      - product.price
      - user_cat.affinity
"""


def registry_with_index(tmp_path, index: str, outage: str = "fail"):
    directory = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, directory)
    (directory / "vectors.yaml").write_text(EXTRA.replace("INDEX", index).replace("OUTAGE", outage))
    return directory


def publish_with_index(settings, tmp_path, index: str, outage: str = "fail"):
    config = wiring.config_store(settings)
    publish.apply(registry_with_index(tmp_path, index, outage), config)
    config.close()
    return settings


@pytest.fixture(params=STACKS)
def served(request, tmp_path, unique):
    settings = publish_with_index(stack_settings(request.param, request, tmp_path, unique), tmp_path, f"near_{unique}")
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield Served(pb_grpc.FeatureServiceStub(channel), mpb_grpc.ModelProxyStub(channel), f"near_{unique}", unique,
                 settings, running.port)
    channel.close()
    running.stop(0)


KEYS = {"user": lambda key: {"user_id": key}, "product": lambda key: {"product_id": key},
        "user_category": lambda key: dict(zip(("user_id", "category_id"), key.split("|")))}


class Served:
    def __init__(self, features, proxy, index, unique, settings, port):
        self.features, self.proxy, self.index, self.unique, self.settings, self.port = (
            features, proxy, index, unique, settings, port)

    def persist(self, updates: list[tuple[str, str, dict]], event_time_ms: int | None = None) -> None:
        now = event_time_ms or int(time.time() * 1000)
        self.features.Persist(pb.PersistRequest(updates=[
            pb.FeatureUpdate(entity=entity, keys=KEYS[entity](key), group=group,
                             values={n: value(v) for n, v in values.items()}, event_time_ms=now)
            for entity, group, key, values in updates]))

    def search(self, k: int, vector=None, key: str = "", **filters) -> tuple[list[str], list[float]]:
        reply = self.features.Search(pb.SearchRequest(index=self.index, k=k, key=key, vector=vector or [],
                                                      filters={n: value(v) for n, v in filters.items()}), timeout=30)
        return list(reply.keys), list(reply.scores)


def value(v) -> pb.Value:
    if isinstance(v, bool):
        return pb.Value(bool_value=v)
    if isinstance(v, int):
        return pb.Value(int_value=v)
    if isinstance(v, float):
        return pb.Value(float_value=v)
    if isinstance(v, str):
        return pb.Value(string_value=v)
    return pb.Value(vector_value=pb.FloatVector(values=[float(x) for x in v]))


def catalogue(served: Served, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = {f"p{i}-{served.unique}": rng.standard_normal(DIM).astype(np.float32) for i in range(n)}
    served.persist([("product", "product_stats", key, {"embedding": v.tolist(), "ctr_7d": float(i) / 100})
                    for i, (key, v) in enumerate(vectors.items())])
    return vectors


def nearest(query, vectors: dict[str, np.ndarray], k: int) -> list[str]:
    keys = list(vectors)
    s = scores("cosine", np.asarray(query, np.float32), np.stack([vectors[key] for key in keys]))
    return [keys[i] for i in np.argsort(-s, kind="stable")[:k]]


def test_search_by_vector_and_by_key_answers_the_nearest_with_exact_scores(served):
    vectors = catalogue(served, 200, seed=1)
    query = np.random.default_rng(2).standard_normal(DIM).astype(np.float32)
    keys, got = served.search(10, vector=query.tolist())
    truth = nearest(query, vectors, 10)
    assert len(set(keys) & set(truth)) >= 9
    expected = scores("cosine", query, np.stack([vectors[key] for key in keys]))
    assert np.allclose(got, expected, atol=1e-6) and got == sorted(got, reverse=True)
    anchor = next(iter(vectors))
    keys, got = served.search(5, key=anchor)  # the key's own stored vector is the query
    assert keys[0] == anchor and got[0] == pytest.approx(1.0, abs=1e-6)


def test_filters_keep_only_matching_products(served):
    vectors = catalogue(served, 60, seed=3)
    out = [key for i, key in enumerate(vectors) if i % 2]
    served.persist([("product", "product_core", key, {"in_stock": False, "category_id": "c1"}) for key in out])
    query = np.ones(DIM, np.float32).tolist()
    in_stock, _ = served.search(100, vector=query, in_stock=True)
    assert set(in_stock) == set(vectors) - set(out)  # never written: in stock, the feature's default
    assert set(served.search(100, vector=query, in_stock=False, category_id="c1")[0]) == set(out)
    assert served.search(100, vector=query, category_id="c2")[0] == []


def test_a_ranker_sends_only_a_user_and_gets_the_nearest_in_stock_products_ranked(served):
    vectors = catalogue(served, 80, seed=4)
    user, taste = f"u{served.unique}", np.random.default_rng(5).standard_normal(DIM).astype(np.float32)
    served.persist([("user", "user_profile", user, {"embedding": taste.tolist()})])
    sold_out = nearest(taste, vectors, 3)
    served.persist([("product", "product_core", key, {"in_stock": False}) for key in sold_out]
                   + [("product", "product_core", key, {"price": 10.0 + i, "category_id": f"c{i % 3}"})
                      for i, key in enumerate(vectors) if key not in sold_out])
    served.persist([("user_category", "user_category_affinity", f"{user}|c1", {"affinity": 0.75})])
    reply = served.proxy.GetFeatures(mpb.GetFeaturesRequest(model="near_ranker", context={
        "user_id": mpb.ContextIds(ids=[user])}), timeout=30)
    in_stock = {k: v for k, v in vectors.items() if k not in sold_out}
    assert len(reply.row_ids) == 20
    assert len(set(reply.row_ids) & set(nearest(taste, in_stock, 20))) >= 19
    assert not set(reply.row_ids) & set(sold_out)
    m = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
    assert list(reply.columns) == ["near.ctr_7d", "product.price", "user_cat.affinity"]
    order = list(vectors)
    for row, key in zip(m, reply.row_ids):
        i = order.index(key)
        assert row[0] == np.float32(i / 100) and row[1] == np.float32(10.0 + i)
        assert row[2] == np.float32(0.75 if i % 3 == 1 else 0.0)  # the chained user x category lookup


def test_a_user_without_an_embedding_gets_no_rows(served):
    catalogue(served, 10, seed=6)
    reply = served.proxy.GetFeatures(mpb.GetFeaturesRequest(model="near_ranker", context={
        "user_id": mpb.ContextIds(ids=[f"nobody{served.unique}"])}), timeout=30)
    assert list(reply.row_ids) == [] and list(reply.shape) == [0, 3] and reply.degraded == ""


@pytest.mark.parametrize("case", ["unknown index", "wrong dimension", "unknown filter", "filter type", "k zero",
                                  "k too big", "both queries", "key without vector", "float filter"])
def test_bad_searches_get_precise_status_codes(served, case):
    ones = [1.0] * DIM
    request = {
        "unknown index": (pb.SearchRequest(index="nope", k=5, vector=ones), grpc.StatusCode.NOT_FOUND, "unknown index"),
        "wrong dimension": (pb.SearchRequest(index=served.index, k=5, vector=[1.0, 2.0]),
                            grpc.StatusCode.INVALID_ARGUMENT, "holds vectors of 16 dimensions; the query has 2"),
        "unknown filter": (pb.SearchRequest(index=served.index, k=5, vector=ones, filters={"brand": value("x")}),
                           grpc.StatusCode.INVALID_ARGUMENT, "has no filter 'brand'"),
        "filter type": (pb.SearchRequest(index=served.index, k=5, vector=ones, filters={"in_stock": value("maybe")}),
                        grpc.StatusCode.INVALID_ARGUMENT, "filter 'in_stock' is a bool"),
        "k zero": (pb.SearchRequest(index=served.index, k=0, vector=ones), grpc.StatusCode.INVALID_ARGUMENT,
                   "k must be 1 to 1000"),
        "k too big": (pb.SearchRequest(index=served.index, k=1001, vector=ones), grpc.StatusCode.INVALID_ARGUMENT,
                      "k must be 1 to 1000"),
        "both queries": (pb.SearchRequest(index=served.index, k=5, vector=ones, key="p1"),
                         grpc.StatusCode.INVALID_ARGUMENT, "either a query vector or the key"),
        "key without vector": (pb.SearchRequest(index=served.index, k=5, key=f"never{served.unique}"),
                               grpc.StatusCode.NOT_FOUND, "has no live product_stats.embedding"),
        "float filter": (pb.SearchRequest(index=served.index, k=5, vector=ones, filters={"in_stock": value(1.5)}),
                         grpc.StatusCode.INVALID_ARGUMENT, "a filter equals a bool, an int or a string"),
    }[case]
    with pytest.raises(grpc.RpcError) as info:
        served.features.Search(request[0], timeout=30)
    assert info.value.code() == request[1] and request[2] in info.value.details()


def test_vahini_search_prints_the_hits(served, capsys):
    from vahini.cli import main

    vectors = catalogue(served, 30, seed=8)
    anchor = next(iter(vectors))
    served.persist([("product", "product_core", anchor, {"in_stock": True})])
    assert main(["search", served.index, "--key", anchor, "--k", "3", "--where", "in_stock=true",
                 "--target", f"127.0.0.1:{served.port}", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metric"] == "cosine" and printed["index"] == served.index
    assert [h["key"] for h in printed["hits"]] == served.search(3, key=anchor, in_stock=True)[0]
    assert printed["hits"][0] == {"key": anchor, "score": pytest.approx(1.0, abs=1e-6)}
    assert main(["search", served.index, "--vector", "1,2", "--target", f"127.0.0.1:{served.port}"]) != 0
    capsys.readouterr()
    user = f"u{served.unique}"
    served.persist([("user", "user_profile", user, {"embedding": vectors[anchor].tolist()})])
    assert main(["query", "near_ranker", "--set", f"user_id={user}", "--target", f"127.0.0.1:{served.port}",
                 "--json"]) == 0
    matrix = json.loads(capsys.readouterr().out)
    assert matrix["row_ids"][0] == anchor and matrix["columns"] == ["near.ctr_7d", "product.price",
                                                                     "user_cat.affinity"]


def test_ingested_vectors_are_found_within_a_second_and_removed_or_expired_ones_never(served):
    """Through the event log and a feature worker, as producers send them."""
    settings = served.settings
    backends = Backends.open(settings)
    backends.event_log.create_topic(settings.topics.feature_updates, settings.topics.partitions)
    running = WorkerThread(build_worker(settings, backends), backends)
    producer = EventProducer.from_settings(settings)
    rng = np.random.default_rng(9)
    try:
        lags = []
        for i in range(5):
            key, vector = f"fresh{i}-{served.unique}", rng.standard_normal(DIM).astype(np.float32)
            sent = time.monotonic()
            producer.feature_update("product", {"product_id": key}, "product_stats", {"embedding": vector.tolist()})
            producer.flush()
            while served.search(1, vector=vector.tolist())[0] != [key]:
                assert time.monotonic() - sent < 10, f"{key} not found 10 s after it was produced"
                time.sleep(0.01)
            lags.append(time.monotonic() - sent)
        assert sorted(lags)[2] < 1.0, f"median time from produce to found: {sorted(lags)[2]:.3f} s ({lags})"

        removed = "fresh0-" + served.unique
        producer.feature_update("product", {"product_id": removed}, "product_stats", {"ctr_7d": 0.5})  # no embedding
        expiring, vector = f"expiring-{served.unique}", np.full(DIM, 3.0, np.float32)
        producer.feature_update("product", {"product_id": expiring}, "product_stats", {"embedding": vector.tolist()},
                                event_time_ms=int(time.time() * 1000) - WEEK_MS + 3000)  # expires in 3 s
        producer.flush()
        deadline = time.monotonic() + 10
        while removed in served.search(50, vector=np.ones(DIM).tolist())[0] or \
                served.search(1, vector=vector.tolist())[0] != [expiring]:
            assert time.monotonic() < deadline, "the removal or the expiring vector did not arrive in 10 s"
            time.sleep(0.05)
        expiry = time.time() + 3.5
        while time.time() < expiry + 1.5:  # before its expiry it may be found; after it, never
            found = expiring in served.search(5, vector=vector.tolist())[0]
            assert not (found and time.time() > expiry), "an expired vector was returned"
            assert removed not in served.search(50, vector=np.ones(DIM).tolist())[0], "a removed vector returned"
            time.sleep(0.1)
    finally:
        producer.close()
        running.close()


@pytest.mark.real_service
def test_a_search_while_the_store_is_down_is_unavailable_and_a_lenient_graph_serves_no_rows(request, tmp_path,
                                                                                             unique):
    from tests.faults import TcpProxy

    settings = publish_with_index(stack_settings("real", request, tmp_path, unique), tmp_path, f"near_{unique}",
                                  outage="defaults")
    host, port = request.getfixturevalue("cassandra_endpoint").split(":")
    proxy = TcpProxy(host, int(port))
    keyspace = request.getfixturevalue("cassandra_keyspace")
    running = start_server(settings.model_copy(update={"feature_store": f"cassandra://127.0.0.1:{proxy.port}/"
                                                                        f"{keyspace}"}), port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    features, models = pb_grpc.FeatureServiceStub(channel), mpb_grpc.ModelProxyStub(channel)
    try:
        features.Search(pb.SearchRequest(index=f"near_{unique}", k=5, vector=[1.0] * DIM), timeout=30)  # opens it
        proxy.cut()  # Cassandra refuses every connection
        with pytest.raises(grpc.RpcError) as info:
            features.Search(pb.SearchRequest(index=f"near_{unique}", k=5, vector=[1.0] * DIM), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        reply = models.GetFeatures(mpb.GetFeaturesRequest(model="near_ranker", context={
            "user_id": mpb.ContextIds(ids=[f"u{unique}"])}), timeout=30)
        assert list(reply.row_ids) == [] and reply.degraded
    finally:
        channel.close()
        running.stop(0)


@pytest.mark.real_service
def test_apply_refuses_an_index_the_engine_cannot_hold_with_its_file_and_line(request, tmp_path, unique, capsys):
    """The secured profile's node has vector columns turned off (infra/conf/cassandra-secure.yaml),
    as an engine without vector search: nothing is published."""
    from tests.streams.test_cassandra_security import role_with_keyspace, superuser
    from vahini.cli import main
    from vahini.settings import CassandraSettings

    endpoint, ca = request.getfixturevalue("cassandra_secure")
    role, password, keyspace = f"vahini_{unique}", f"pw-{unique}", f"vec_{unique}"
    cluster, admin = superuser(endpoint, ca)
    role_with_keyspace(admin, role, password, keyspace)
    try:
        settings = stack_settings("embedded", request, tmp_path, unique).model_copy(update={
            "feature_store": f"cassandra://{endpoint}/{keyspace}",
            "cassandra": CassandraSettings(username=role, password=password, ca_file=ca)})
        (tmp_path / "vahini.toml").write_text(
            f'feature_store = "{settings.feature_store}"\nconfig_store = "{settings.config_store}"\n'
            f'[cassandra]\nusername = "{role}"\npassword = "{password}"\nca_file = "{ca}"\n')
        directory = registry_with_index(tmp_path, f"near_{unique}")
        assert main(["--settings", str(tmp_path / "vahini.toml"), "apply", str(directory)]) == 1
        printed = capsys.readouterr().err
        assert f"{directory / 'vectors.yaml'}:2: index 'near_{unique}': this Cassandra/ScyllaDB cannot search " \
               f"vectors" in printed and "Cassandra 5.0+" in printed
        config = wiring.config_store(settings)
        assert publish.read_published(config) is None  # nothing published
        config.close()
    finally:
        admin.execute(f"DROP ROLE {role}")
        admin.execute(f"DROP KEYSPACE {keyspace}")
        cluster.shutdown()


def test_a_training_set_of_a_candidates_graph_is_refused_with_why(request, tmp_path, unique):
    from vahini.offline.errors import TrainingSetError
    from vahini.offline.training_set import build_training_set

    settings = publish_with_index(stack_settings("embedded", request, tmp_path, unique), tmp_path, f"near_{unique}")
    with pytest.raises(TrainingSetError, match="finds its rows by vector search .candidates: near.: training "
                                               "sets do not rebuild a past search yet"):
        build_training_set(settings, "near_ranker", tmp_path / "labels.parquet", tmp_path / "out.parquet",
                           progress=False)
