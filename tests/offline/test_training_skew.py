"""Zero training-serving skew, proven on both stacks: the Model Proxy serves a graph with
chained lookups, a sequence, transforms, defaults and a TTL running out, while features
and interactions change between requests, logging every response; the training set
built for the same (context, row, moment) triples equals what was served, bit for bit."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vahini.offline.export import export_feature_log
from vahini.offline.training_set import build_training_set
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.server import start_server
from vahini.streams.app import Backends, build_worker
from tests.conftest_backends import STACKS
from tests.offline.helpers import RunningArchiveWorker, wait_until_archived, with_logging
from tests.processes_helpers import WorkerThread, wait_for
from tests.streams.helpers import wait_for_commits
from tests.streams.interaction_helpers import Reader, RunningInteractionWorker, interaction_settings, producer

DAY_MS = 86_400_000
PROFILE_TTL_MS = 2_592_000 * 1000  # user_profile's ttl_s
CATEGORIES = ["shoes", "bags"]


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    return with_logging(interaction_settings(request.param, request, tmp_path, unique), tmp_path, unique)


@pytest.fixture
def ids(unique):
    """Users and products of this test alone: the real stack's keyspace is shared by the tests."""
    return {"u1": f"u1-{unique}", "u2": f"u2-{unique}", "products": [f"p{i}-{unique}" for i in range(1, 5)],
            "unknown": f"p-unknown-{unique}"}


def _change_everything(p, ids: dict, r: int, now: int) -> None:
    """Round r's feature updates and clicks: products change category (the chained
    lookup's key), prices, stats (every other round), the user's profile and affinities."""
    for i, product in enumerate(ids["products"]):
        p.feature_update("product", {"product_id": product}, "product_core", {
            "category_id": CATEGORIES[(r + i) % 2], "brand": ["acme", "globex", "initech", "other"][(r + i) % 4],
            "price": 9.99 * (r + 1) + i, "in_stock": True, "listed_at_ms": now - (i + 1) * DAY_MS - 3_600_000 * r},
            now - 200)
        if r % 2 == 0:
            p.feature_update("product", {"product_id": product}, "product_stats", {
                "ctr_7d": 0.013 * (r + i + 1), "cvr_7d": 0.0021 * (r + 1), "rating": 4.5,
                "embedding": [0.1 * (r + k) for k in range(16)]}, now - 200)
    p.feature_update("user", {"user_id": ids["u1"]}, "user_profile", {
        "account_age_days": 100 + r, "is_premium": r % 2 == 1, "city": "pune", "avg_order_value": 42.0,
        "embedding": [0.0] * 16}, now - 200)
    for c, category in enumerate(CATEGORIES):
        p.feature_update("user_category", {"user_id": ids["u1"], "category_id": category}, "user_category_affinity",
                         {"clicks_30d": 2 * r + c, "orders_30d": r, "affinity": 0.17 * (r + c)}, now - 200)
    for user in (ids["u1"], ids["u2"]):
        p.interaction(f"{user}-click-{r}", user, ids["products"][r % 4], "CLICK", now - 100,
                      category_id=CATEGORIES[r % 2])
    p.flush()


def _serve(stub, user: str, products: list[str]) -> mpb.GetFeaturesResponse:
    return stub.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context={
        "user_id": mpb.ContextIds(ids=[user]), "product_ids": mpb.ContextIds(ids=products)}), timeout=10)


def test_a_training_set_equals_what_was_served_bit_for_bit(settings, ids, tmp_path):
    started = int(time.time() * 1000)
    p = producer(settings)
    # u2's profile lives 15 s more: served live in the first rounds, expired in the last.
    p.feature_update("user", {"user_id": ids["u2"]}, "user_profile", {"account_age_days": 7, "is_premium": True},
                     started - PROFILE_TTL_MS + 15_000)
    backends = Backends.open(settings)
    backends.event_log.create_topic(settings.topics.feature_updates, settings.topics.partitions)
    features = WorkerThread(build_worker(settings, backends), backends)
    interactions, archive = RunningInteractionWorker(settings), RunningArchiveWorker(settings)
    reader = Reader(settings)
    running = start_server(settings, port=0)
    served: list[mpb.GetFeaturesResponse] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = mpb_grpc.ModelProxyStub(channel)
            for r in range(4):
                now = int(time.time() * 1000)
                _change_everything(p, ids, r, now)
                wait_for_commits(settings, 60)
                u1, u2 = ids["u1"], ids["u2"]
                wait_for(lambda: f"{u1}-click-{r}" in reader.ids(u1) and f"{u2}-click-{r}" in reader.ids(u2), 60,
                         f"round {r}'s clicks in the interaction store")
                served.append(_serve(stub, u1, [*ids["products"], ids["unknown"]]))
                served.append(_serve(stub, u2, [ids["products"][0], ids["products"][2], ids["unknown"]]))
                time.sleep(1.1)
            wait_for(lambda: time.time() * 1000 > started + 16_000, 30, "u2's profile to expire")
            served.append(_serve(stub, ids["u2"], [ids["products"][1], ids["products"][3]]))
    finally:
        running.stop(0)  # flushes the feature log
        reader.close()
        interactions.close()
        features.close()
    try:
        wait_until_archived(settings)
    finally:
        archive.close()

    exported, training = tmp_path / "served.parquet", tmp_path / "training.parquet"
    stats = export_feature_log(settings, "home_ranker", exported, progress=False)
    assert stats.responses == len(served) and stats.rows == sum(len(s.row_ids) for s in served)
    log = pq.read_table(exported)
    columns = list(served[0].columns)
    _assert_the_log_holds_what_was_served(log, served, columns)

    labels = log.append_column("clicked", pa.array(np.arange(log.num_rows) % 2 == 0))
    pq.write_table(labels, tmp_path / "labels.parquet")
    for method in ("columnar", "replay"):  # the default, and the executor it is held to
        built = build_training_set(settings, "home_ranker", tmp_path / "labels.parquet", training, progress=False,
                                   method=method)
        rebuilt = pq.read_table(training)
        assert built.rows == log.num_rows and rebuilt.column_names == labels.column_names
        for name in columns:  # every value, bit for bit (float32 compared as its bits)
            assert _bits(rebuilt[name]) == _bits(log[name]), (method, name)
        assert rebuilt["clicked"].equals(labels["clicked"]) and rebuilt["request_id"].equals(log["request_id"])

    # The run covered what it claims: a category change moved the chained lookup's
    # key, the sequence grew, and u2's profile was served live and then expired.
    age = log["user.account_age_days"].to_numpy()
    u2 = np.array(log["user_id"].to_pylist()) == ids["u2"]
    assert 7 in age[u2] and 0 in age[u2]
    assert len(set(log["user_cat.clicks_30d"].to_pylist())) > 3
    assert len(set(log["clicks_on_category"].to_pylist())) > 1 and np.any(log["recent_categories_3"].to_numpy())


def _assert_the_log_holds_what_was_served(log: pa.Table, served: list, columns: list[str]) -> None:
    request_ids = log["request_id"].to_pylist()
    for response in served:
        rows = [i for i, rid in enumerate(request_ids) if rid == response.request_id]
        assert len(rows) == len(response.row_ids)
        logged = np.stack([log[c].to_numpy()[rows].astype(np.float32) for c in columns], axis=1)
        assert logged.astype("<f4").tobytes() == response.matrix


def _bits(column: pa.ChunkedArray) -> bytes:
    values = column.to_numpy()
    return values.astype(values.dtype.newbyteorder("<")).tobytes()
