"""ModelProxy.GetFeatures on both stacks: the sample `home_ranker` graph (product ->
category -> user x category, a click sequence, transforms) executed into a float32
matrix, defaults and their counts, and precise status codes."""

from __future__ import annotations

import math
import time
import zlib

import grpc
import numpy as np
import pytest

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.model_proxy import levels
from vahini.serving.server import start_server
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry.loader import load_registry

COLUMNS = ["product.price", "log_price", "price_band", "brand=acme", "brand=globex", "brand=initech",
           "category_bucket", "days_listed", "stats.ctr_7d", "ctr_clipped", "stats.cvr_7d", "cvr_per_ctr",
           "user.account_age_days", "user.is_premium", "user_cat.clicks_30d", "user_cat.affinity",
           "clicks_on_category", *[f"recent_categories_{i}" for i in range(20)],
           *[f"stats.embedding_{d}" for d in range(16)]]
DAY_MS = 86_400_000


@pytest.fixture(params=STACKS)
def served(request, tmp_path, unique):
    settings = with_sample_registry(stack_settings(request.param, request, tmp_path, unique))
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield pb_grpc.FeatureServiceStub(channel), mpb_grpc.ModelProxyStub(channel), unique, settings
    channel.close()
    running.stop(0)


def value(**kw) -> pb.Value:
    return pb.Value(**kw)


def persist(stub, entity: str, keys: dict, group: str, values: dict) -> None:
    stub.Persist(pb.PersistRequest(updates=[pb.FeatureUpdate(entity=entity, keys=keys, group=group, values=values,
                                                             event_time_ms=int(time.time() * 1000))]))


def context(user: str, products: list[str]) -> dict:
    return {"user_id": mpb.ContextIds(ids=[user]), "product_ids": mpb.ContextIds(ids=products)}


def test_the_graph_resolves_into_levels():
    graph = load_registry(SAMPLE_REGISTRY).models["home_ranker"]
    assert [[lookup.name for lookup in level] for level in levels(graph)] == [["product", "stats", "user"],
                                                                              ["user_cat"]]


def clicks(settings, user: str, categories: list[str]) -> None:
    """Store clicks in the cold tier, the first of `categories` the newest."""
    from vahini import wiring
    from vahini.ports.interaction_store import StoredInteraction

    now = int(time.time() * 1000)
    cold = wiring.cold_interactions(settings)
    cold.write([StoredInteraction(f"e{i}-{user}", user, f"px{i}", c, "CLICK", now - i * 1000)
                for i, c in enumerate(categories)])
    cold.close()


def bucket(category: str) -> int:
    return 1 + zlib.crc32(category.encode()) % 1000


def test_get_features_builds_the_matrix_through_the_graph_with_defaults_counted(served):
    features, proxy, u, settings = served
    user, p1, p2, p3 = f"u{u}", f"p1{u}", f"p2{u}", f"p3{u}"
    now = int(time.time() * 1000)
    persist(features, "product", {"product_id": p1}, "product_core",
            {"category_id": value(string_value="shoes"), "price": value(float_value=10.5),
             "brand": value(string_value="globex"), "listed_at_ms": value(int_value=now - 3 * DAY_MS)})
    persist(features, "product", {"product_id": p2}, "product_core",
            {"category_id": value(string_value="bags"), "price": value(float_value=60.0),
             "brand": value(string_value="zeta")})
    persist(features, "product", {"product_id": p1}, "product_stats",
            {"ctr_7d": value(float_value=0.25), "cvr_7d": value(float_value=0.05),
             "embedding": value(vector_value=pb.FloatVector(values=[0.5] * 16))})
    persist(features, "product", {"product_id": p2}, "product_stats", {"ctr_7d": value(float_value=0.9)})
    persist(features, "user", {"user_id": user}, "user_profile",
            {"account_age_days": value(int_value=30), "is_premium": value(bool_value=True)})
    persist(features, "user_category", {"user_id": user, "category_id": "shoes"}, "user_category_affinity",
            {"clicks_30d": value(int_value=5), "affinity": value(float_value=0.75)})
    clicks(settings, user, ["shoes", "hats", "shoes", "bags"])

    reply = proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context=context(user, [p1, p2, p3])))
    assert reply.model == "home_ranker" and reply.version == 1 and list(reply.columns) == COLUMNS
    assert list(reply.row_ids) == [p1, p2, p3] and list(reply.shape) == [3, len(COLUMNS)]
    m = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
    col = {c: m[:, i] for i, c in enumerate(COLUMNS)}
    assert col["product.price"].tolist() == [10.5, 60.0, 0.0]
    assert col["stats.ctr_7d"].tolist() == [0.25, pytest.approx(0.9), 0.0]
    assert col["user.account_age_days"].tolist() == [30, 30, 30]  # a context lookup, broadcast to every row
    assert col["user.is_premium"].tolist() == [1.0, 1.0, 1.0]
    # product -> category -> user x category: p1 is in shoes (stored), p2 in bags (not), p3 has no category.
    assert col["user_cat.clicks_30d"].tolist() == [5, 0, 0]
    assert col["user_cat.affinity"].tolist() == [0.75, 0.0, 0.0]
    assert m[0, COLUMNS.index("stats.embedding_0"):].tolist() == [0.5] * 16
    assert reply.counts["product.price"].missing == 1
    assert reply.counts["user_cat.affinity"].missing == 2
    assert reply.counts["stats.embedding_3"].missing == 2
    assert "user.account_age_days" not in reply.counts
    # transforms
    assert col["log_price"].tolist() == pytest.approx([math.log1p(10.5), math.log1p(60.0), 0.0])
    assert col["price_band"].tolist() == [1, 2, 0]  # boundaries [10, 50, 200]; p3 takes the default price 0
    assert m[:, COLUMNS.index("brand=acme"):COLUMNS.index("brand=initech") + 1].tolist() == \
        [[0, 1, 0], [0, 0, 0], [0, 0, 0]]  # globex; an unknown brand and a missing one: all zero
    assert col["category_bucket"].tolist() == [bucket("shoes"), bucket("bags"), 0]
    assert col["days_listed"][0] == pytest.approx(3.0, abs=0.01) and col["days_listed"][1:].tolist() == [-1, -1]
    assert col["ctr_clipped"].tolist() == [0.25, 0.5, 0.0]
    assert col["cvr_per_ctr"].tolist() == [pytest.approx(0.2), 0.0, 0.0]  # p2: no cvr; p3: nothing
    assert reply.counts["cvr_per_ctr"].missing == 2 and reply.counts["days_listed"].missing == 2
    # the interaction store: clicked categories, newest first, padded with 0
    assert col["clicks_on_category"].tolist() == [2, 1, 0]  # shoes twice, bags once, p3 has no category
    recent = m[0, COLUMNS.index("recent_categories_0"):COLUMNS.index("recent_categories_19") + 1]
    assert recent.tolist() == [bucket("shoes"), bucket("hats"), bucket("shoes"), bucket("bags")] + [0] * 16
    assert (m[1:, COLUMNS.index("recent_categories_0")] == m[0, COLUMNS.index("recent_categories_0")]).all()
    dtypes = dict(zip(reply.columns, reply.dtypes))
    assert dtypes["price_band"] == "int32" and dtypes["recent_categories_7"] == "int32"
    assert dtypes["log_price"] == "float32"


@pytest.mark.parametrize("request_, code, detail", [
    (mpb.GetFeaturesRequest(model="nope", context=context("u", ["p"])), grpc.StatusCode.NOT_FOUND,
     "unknown model 'nope'"),
    (mpb.GetFeaturesRequest(model="home_ranker", context={"product_ids": mpb.ContextIds(ids=["p"])}),
     grpc.StatusCode.INVALID_ARGUMENT, "context.user_id: required"),
    (mpb.GetFeaturesRequest(model="home_ranker", context={"user_id": mpb.ContextIds(ids=["u", "v"]),
                                                          "product_ids": mpb.ContextIds(ids=["p"])}),
     grpc.StatusCode.INVALID_ARGUMENT, "context.user_id: one id expected, got 2"),
    (mpb.GetFeaturesRequest(model="home_ranker", context={**context("u", ["p", ""])}),
     grpc.StatusCode.INVALID_ARGUMENT, "context.product_ids[1]"),
    (mpb.GetFeaturesRequest(model="home_ranker", context={**context("u", ["p"]),
                                                          "shop_id": mpb.ContextIds(ids=["s"])}),
     grpc.StatusCode.INVALID_ARGUMENT, "context.shop_id"),
    (mpb.GetFeaturesRequest(model="home_ranker", context=context("u", [f"p{i}" for i in range(2001)])),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "2001 ids exceed the limit of 2000"),
    (mpb.GetFeaturesRequest(context=context("u", ["p"])), grpc.StatusCode.INVALID_ARGUMENT, "model: required"),
], ids=["unknown-model", "missing-context", "two-users", "empty-row-id", "unknown-context", "too-many-rows",
        "no-model"])
def test_bad_requests_get_precise_status_codes(served, request_, code, detail):
    _, proxy, _, _ = served
    with pytest.raises(grpc.RpcError) as info:
        proxy.GetFeatures(request_)
    assert info.value.code() == code and detail in info.value.details()


def test_vahini_query_prints_the_matrix_as_json_and_as_a_table(request, tmp_path, unique):
    import json
    import subprocess
    import sys

    from tests.streams.processes import settings_env

    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique))
    running = start_server(settings, port=0)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        persist(pb_grpc.FeatureServiceStub(channel), "product", {"product_id": "p1"}, "product_core",
                {"category_id": value(string_value="shoes"), "price": value(float_value=10.5)})

    def query(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vahini.cli", "query", "home_ranker", "--set", "user_id=u1",
                               "--set", "product_ids=p1,p2", "--target", f"127.0.0.1:{running.port}", *args],
                              env=settings_env(settings), capture_output=True, text=True, timeout=60)
    try:
        as_json = query("--json")
        assert as_json.returncode == 0, as_json.stderr
        out = json.loads(as_json.stdout)
        assert out["model"] == "home_ranker" and out["version"] == 1 and out["columns"] == COLUMNS
        assert out["row_ids"] == ["p1", "p2"]
        assert out["matrix"][0][0] == 10.5 and out["matrix"][1][0] == 0.0
        assert out["missing"]["product.price"] == 1 and out["missing"]["user.account_age_days"] == 2
        assert json.loads(query("--json", "--version", "1").stdout)["version"] == 1
        pinned_away = query("--version", "7")
        assert pinned_away.returncode == 1 and "NOT_FOUND: model 'home_ranker' has no version 7" in pinned_away.stderr
        table = query()
        assert table.returncode == 0 and f"home_ranker v1: 2 rows x {len(COLUMNS)} columns" in table.stdout
        assert "product.price" in table.stdout and "(1 defaulted)" in table.stdout
        bad = subprocess.run([sys.executable, "-m", "vahini.cli", "query", "nope", "--set", "user_id=u1",
                              "--target", f"127.0.0.1:{running.port}"], env=settings_env(settings),
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "NOT_FOUND: unknown model 'nope'" in bad.stderr
    finally:
        running.stop(0)


def test_the_client_sdk_returns_numpy_from_the_server(request, tmp_path, unique):
    """vahini-client against `vahini serve` (its retries and deadlines: clients/python/tests)."""
    from vahini_client import NO_RETRIES, VahiniClient

    settings = with_sample_registry(stack_settings("embedded", request, tmp_path, unique))
    running = start_server(settings, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            persist(pb_grpc.FeatureServiceStub(channel), "product", {"product_id": "p1"}, "product_core",
                    {"price": value(float_value=3.5)})
        with VahiniClient(f"127.0.0.1:{running.port}", timeout_s=5.0) as client:
            features = client.get_features("home_ranker", user_id="u1", product_ids=["p1", "p2"])
            assert features.columns == COLUMNS and features.row_ids == ["p1", "p2"]
            assert features.matrix.dtype == np.float32 and features.matrix[:, 0].tolist() == [3.5, 0.0]
            assert features.defaulted["product.price"]["missing"] == 1
        with VahiniClient(f"127.0.0.1:{running.port}", timeout_s=5.0, retry=NO_RETRIES) as client:
            with pytest.raises(grpc.RpcError) as info:  # the request itself is wrong
                client.get_features("nope", user_id="u1", product_ids=["p1"])
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        running.stop(0)


@pytest.mark.real_service
def test_a_store_outage_fails_or_serves_defaults_as_the_model_says(request, tmp_path, unique):
    import shutil

    from tests.faults import TcpProxy
    from vahini import wiring
    from vahini.registry import publish

    registry_dir = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, registry_dir)
    models = (registry_dir / "models.yaml").read_text()
    ranker = models.split("models:\n", 1)[1].split("  - name: home_ranker_scored", 1)[0]
    lenient = ranker.replace("name: home_ranker", "name: lenient_ranker", 1)
    (registry_dir / "models.yaml").write_text(models + lenient.replace("on_outage: fail", "on_outage: defaults", 1))
    settings = stack_settings("real", request, tmp_path, unique)
    config = wiring.config_store(settings)
    publish.apply(registry_dir, config)
    config.close()
    host, port = request.getfixturevalue("cassandra_endpoint").split(":")
    proxy = TcpProxy(host, int(port))
    keyspace = request.getfixturevalue("cassandra_keyspace")
    running = start_server(settings.model_copy(update={"feature_store": f"cassandra://127.0.0.1:{proxy.port}/{keyspace}"}),
                           port=0)
    stub = mpb_grpc.ModelProxyStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
    rows = [f"fresh{unique}-{i}" for i in range(3)]  # never read before: not in any cache
    proxy.cut()  # Cassandra refuses every connection
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context=context(f"u{unique}", rows)),
                             timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        reply = stub.GetFeatures(mpb.GetFeaturesRequest(model="lenient_ranker", context=context(f"u{unique}", rows)),
                                 timeout=30)
        assert "product_core" in reply.degraded and list(reply.shape) == [3, len(COLUMNS)]
        m = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
        assert m[:, COLUMNS.index("product.price")].tolist() == [0.0, 0.0, 0.0]
        assert reply.counts["product.price"].missing == 3
    finally:
        running.stop(0)


@pytest.mark.real_service
def test_each_level_of_the_graph_is_one_round_trip_to_the_cache(request, tmp_path, unique):
    import redis

    from tests.faults import PrivateRedis

    cache = PrivateRedis()  # a Redis of this test's own: every command on it is this server's
    settings = with_sample_registry(stack_settings("real", request, tmp_path, unique))
    running = start_server(settings.model_copy(update={"feature_cache": cache.url}), port=0)
    client = redis.Redis.from_url(cache.url)
    try:
        products = [f"x{unique}-{i}" for i in range(50)]
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            for i, p in enumerate(products[:5]):  # categories: so the second level has keys to read
                persist(pb_grpc.FeatureServiceStub(channel), "product", {"product_id": p}, "product_core",
                        {"category_id": value(string_value=f"c{i}")})
            client.config_resetstat()
            reply = mpb_grpc.ModelProxyStub(channel).GetFeatures(mpb.GetFeaturesRequest(
                model="home_ranker", context=context(f"u{unique}", products)), timeout=30)
        assert list(reply.shape) == [50, len(COLUMNS)]
        graph = load_registry(SAMPLE_REGISTRY).models["home_ranker"]
        # level 1: product_core, product_stats (entity product) and user_profile (entity user) in one MGET;
        # level 2: user_category_affinity
        assert client.info("commandstats")["cmdstat_mget"]["calls"] == len(levels(graph)) == 2
    finally:
        running.stop(0)
        client.close()
        cache.stop()


@pytest.mark.real_service
def test_the_click_history_is_read_while_the_features_are(request, tmp_path, unique):
    """The history's round trip overlaps the levels': its read reaches Redis first."""
    import threading

    import redis

    from tests.faults import PrivateRedis
    from vahini.ports.interaction_store import HistoryQuery, OpenSession, StoredInteraction
    from vahini import wiring

    shared = PrivateRedis()  # the feature cache and the session hot tier on one Redis: one command stream
    settings = with_sample_registry(stack_settings("real", request, tmp_path, unique))
    settings = settings.model_copy(update={"feature_cache": shared.url, "interactions": settings.interactions.model_copy(
        update={"hot_tier": shared.url})})
    user, now = f"u{unique}", int(time.time() * 1000)
    hot = wiring.interaction_hot_tier(settings)
    hot.load(OpenSession(user, "s", 0, now), [StoredInteraction(f"e-{unique}", user, "px", "c1", "CLICK", now)])
    assert hot.read(HistoryQuery(user)) is not None  # loads the read script, as any earlier read would have
    hot.close()
    running = start_server(settings, port=0)
    commands, watching = [], threading.Event()

    def monitor() -> None:  # every command up to the first level's MGET
        with redis.Redis.from_url(shared.url, socket_timeout=30).monitor() as m:
            watching.set()
            for event in m.listen():
                commands.append(event["command"])
                if event["command"].startswith("MGET"):
                    return
    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    watching.wait(10)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            reply = mpb_grpc.ModelProxyStub(channel).GetFeatures(mpb.GetFeaturesRequest(
                model="home_ranker", context=context(user, [f"x{unique}"])), timeout=30)
        watcher.join(30)
        matrix = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
        assert matrix[0, COLUMNS.index("recent_categories_0")] == bucket("c1")  # the click was read
        assert commands[-1].startswith("MGET") and any(c.startswith("EVALSHA") for c in commands), commands
    finally:
        running.stop(0)
        shared.stop()


@pytest.mark.parametrize("stack", STACKS)
def test_the_next_level_is_sent_as_soon_as_the_groups_its_keys_come_from_are_read(stack, request, tmp_path, unique):
    """product_core's category ids key the user x category read: that read goes out
    right after product_core is taken, while the first level's other groups wait to
    be decoded, and the matrix is the same as reading level by level would give."""
    from vahini.serving.model_proxy import ModelExecutor
    from vahini.serving.retrieval import FeatureReader
    from vahini.serving.server import open_read_side
    from vahini.feature_rows import row_of
    from vahini.validation import EventLimits, validate_feature_update

    events = []

    class Recorded:  # the reader's pending reads, recording which read is taken when
        def __init__(self, pending, reads):
            self._pending, self._reads = pending, reads

        def results(self, i):
            events.append(("take", self._reads[i].groups[0]))
            return self._pending.results(i)

    class RecordingReader(FeatureReader):
        def start_many(self, reads, timeout_s=None, registry=None, now_ms=None):
            events.append(("send", sorted(r.groups[0] for r in reads)))
            return Recorded(super().start_many(reads, timeout_s, registry, now_ms), reads)

    settings = with_sample_registry(stack_settings(stack, request, tmp_path, unique))
    side = open_read_side(settings)
    user, products, now = f"u{unique}", [f"p{i}-{unique}" for i in range(3)], int(time.time() * 1000)
    updates = [("product", {"product_id": p}, "product_core", {"category_id": f"c{i}", "price": 10.0 * (i + 1)})
               for i, p in enumerate(products)]
    updates += [("user_category", {"user_id": user, "category_id": "c1"}, "user_category_affinity",
                 {"clicks_30d": 7})]
    registry = side.registry()
    side.store.write([row_of(validate_feature_update({"entity": e, "keys": k, "group": g, "values": v,
                                                      "event_time_ms": now - 1000}, registry, now, EventLimits()))
                      for e, k, g, v in updates])
    try:
        recording = ModelExecutor(RecordingReader(side.store, side.cache, side.registry), side.registry,
                                  side.histories)
        matrix = recording.run("home_ranker", {"user_id": [user], "product_ids": products})
        plain = ModelExecutor(side.reader, side.registry, side.histories).run(
            "home_ranker", {"user_id": [user], "product_ids": products})
    finally:
        side.close()
    assert events[0] == ("send", ["product_core", "product_stats", "user_profile"])
    assert events[1] == ("take", "product_core")
    assert events[2] == ("send", ["user_category_affinity"])
    assert sorted(events[3:5]) == [("take", "product_stats"), ("take", "user_profile")]
    assert events[5:] == [("take", "user_category_affinity")]
    clicks_at = matrix.columns.index("user_cat.clicks_30d")
    assert matrix.values[:, clicks_at].tolist() == [0, 7, 0]
    assert matrix.values[:, matrix.columns.index("product.price")].tolist() == [10, 20, 30]
    np.testing.assert_array_equal(matrix.values, plain.values)
    assert matrix.counts == plain.counts


@pytest.mark.parametrize("stack", STACKS)
def test_a_chained_key_is_built_in_the_entitys_key_order_and_a_value_that_cannot_be_a_key_part_is_missing(
        stack, request, tmp_path, unique):
    """The lookup's `keys` may name the entity's key columns in any order; a category id
    holding the key separator cannot be part of a stored key: that row's user x category
    values are missing (defaults, counted), and the request still succeeds."""
    from tests.serving.test_model_scoring import publish_registry

    settings = stack_settings(stack, request, tmp_path, unique)
    publish_registry(settings, tmp_path, lambda text: text.replace(
        "keys: {user_id: context.user_id, category_id: product.category_id}",
        "keys: {category_id: product.category_id, user_id: context.user_id}", 1))
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    features, proxy = pb_grpc.FeatureServiceStub(channel), mpb_grpc.ModelProxyStub(channel)
    user, p1, p2 = f"u{unique}", f"p1{unique}", f"p2{unique}"
    persist(features, "product", {"product_id": p1}, "product_core", {"category_id": value(string_value="shoes")})
    persist(features, "product", {"product_id": p2}, "product_core", {"category_id": value(string_value="a|b")})
    persist(features, "user_category", {"user_id": user, "category_id": "shoes"}, "user_category_affinity",
            {"clicks_30d": value(int_value=5)})
    try:
        reply = proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context=context(user, [p1, p2])))
    finally:
        channel.close()
        running.stop(0)
    m = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
    assert m[:, list(reply.columns).index("user_cat.clicks_30d")].tolist() == [5, 0]
    assert reply.counts["user_cat.clicks_30d"].missing == 1
