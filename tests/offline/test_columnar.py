"""The columnar training-set method against its reference, the replay method (the Model
Proxy's executor run once per request): the same archive and labels give the same
rows, bit for bit, for graphs that use every kind of step, over data with the cases a
point-in-time read can meet: rows not written yet, expired, unreadable, features not
sent, chained keys that cannot be built, users without history."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vahini.adapters.parquet_archive import ParquetArchive
from vahini.demo import SAMPLE_REGISTRY
from vahini.feature_rows import row_of
from vahini.offline import columnar as columnar_method
from vahini.offline.labels import LabelsError
from vahini.offline.training_set import build_training_set
from vahini.ports.feature_store import FeatureRow
from vahini.ports.interaction_store import StoredInteraction
from vahini.registry import publish
from vahini.registry.loader import load_registry
from vahini.settings import Settings
from vahini import wiring
from vahini.validation import EventLimits, validate_feature_update

DAY_MS = 86_400_000
NOW = 1_780_000_000_000
EDGE_RANKER = """
  - name: edge_ranker
    context: [user_id, product_ids]
    rows: product_ids
    lookups:
      - {name: product, group: product_core, keys: {product_id: row}}
      - {name: user, group: user_profile, keys: {user_id: context.user_id}}
      - {name: user_cat, group: user_category_affinity, keys: {user_id: context.user_id, category_id: product.category_id}}
    sequences:
      - {name: recent_products, user: context.user_id, type: CLICK, field: product_id, length: 5}
      - {name: recent_categories, user: context.user_id, type: CLICK, field: category_id, length: 8}
    features:
      - {name: spend_over_price, from: user.avg_order_value, transform: ratio, over: product.price, default: -1}
      - user.is_premium
      - {name: city, from: user.city, transform: one_hot, values: [c1, c2]}
      - {name: user_hash, from: user.city, transform: hash, buckets: 7, dtype: int32}
      - {name: clicked_before, from: recent_products, transform: count_matching, match: row, dtype: int32}
      - {name: clicked_category, from: recent_categories, transform: count_matching, match: product.category_id}
      - {name: recent_products, from: recent_products, transform: hash, buckets: 50, dtype: int32}
      - {name: affinity, from: user_cat.affinity, transform: log1p, default: 7}
      - {name: listed_days, from: product.listed_at_ms, transform: age, unit: h}
      - user.embedding
"""


@pytest.fixture
def settings(tmp_path) -> Settings:
    registry = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, registry)
    models = registry / "models.yaml"
    models.write_text(models.read_text().replace("models:\n", "models:" + EDGE_RANKER, 1))
    settings = Settings(config_store=f"file://{tmp_path}/config", archive={"url": f"file://{tmp_path}/archive"})
    store = wiring.config_store(settings)
    publish.apply(registry, store)
    store.close()
    return settings


def _archive(settings: Settings, registry_dir: Path, seed: int) -> None:
    """Versions of every key over 60 days (user profiles expire after 30), some
    updates leaving features out, an unreadable row, and clicks, some without category."""
    rng = random.Random(seed)
    registry = load_registry(registry_dir)
    rows: list[FeatureRow] = []

    def update(entity, keys, group, values, t):
        event = {"entity": entity, "keys": keys, "group": group, "values": values, "event_time_ms": t}
        rows.append(row_of(validate_feature_update(event, registry, NOW, EventLimits())))

    for u in range(12):  # u12..u14 have no profile
        for _ in range(3):
            update("user", {"user_id": f"u{u}"}, "user_profile", {
                "account_age_days": rng.randrange(900), "is_premium": rng.random() < 0.3,
                "city": rng.choice(["c1", "c2", "c3"]), "avg_order_value": rng.choice([0.0, rng.uniform(1, 300)]),
                "embedding": [rng.uniform(-1, 1) for _ in range(16)]}, NOW - rng.randrange(60 * DAY_MS))
    for p in range(40):  # p40..p44 were never written
        for _ in range(3):
            values = {"category_id": f"cat{rng.randrange(6)}", "brand": rng.choice(["acme", "globex", "x"]),
                      "price": rng.choice([0.0, rng.uniform(1, 500)]), "in_stock": True,
                      "listed_at_ms": NOW - rng.randrange(90 * DAY_MS)}
            if rng.random() < 0.2:
                del values["category_id"]  # not sent: the chained key cannot be built
            update("product", {"product_id": f"p{p}"}, "product_core", values, NOW - rng.randrange(60 * DAY_MS))
        update("product", {"product_id": f"p{p}"}, "product_stats", {
            "ctr_7d": rng.choice([0.0, rng.uniform(0, 0.2)]), "cvr_7d": rng.uniform(0, 0.05),
            "rating": rng.uniform(1, 5), "embedding": [rng.uniform(-1, 1) for _ in range(16)]},
            NOW - rng.randrange(60 * DAY_MS))
    for u in range(14):
        for c in range(6):
            update("user_category", {"user_id": f"u{u}", "category_id": f"cat{c}"}, "user_category_affinity",
                   {"clicks_30d": rng.randrange(50), "orders_30d": rng.randrange(5), "affinity": rng.random()},
                   NOW - rng.randrange(60 * DAY_MS))
    rows.append(FeatureRow("product", "p3", "product_core", NOW - 10 * DAY_MS, b"\x07not a blob", 0))
    clicks = [StoredInteraction(f"e{u}-{i}", f"u{u}", f"p{rng.randrange(45)}",
                                rng.choice([f"cat{rng.randrange(6)}", None]), "CLICK",
                                NOW - rng.randrange(60 * DAY_MS)) for u in range(10) for i in range(rng.randrange(12))]
    ParquetArchive(settings.archive.url.removeprefix("file://")).append(rows, clicks)


def _labels(path: Path, seed: int, requests: int = 150) -> None:
    """Requests of one user and 1-6 products, at moments over 60 days; some share
    their user and moment, some repeat a product."""
    rng = random.Random(seed)
    users, products, moments = [], [], []
    for r in range(requests):
        user, moment = f"u{rng.randrange(15)}", NOW - rng.randrange(60 * DAY_MS)
        if r and rng.random() < 0.1:
            user, moment = users[-1], moments[-1]
        for _ in range(rng.randrange(1, 7)):
            users.append(user)
            moments.append(moment)
            products.append(f"p{rng.randrange(45)}")
    pq.write_table(pa.table({"user_id": users, "product_ids": products,
                             "event_time": pa.array(moments, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                             "label": [rng.random() < 0.3 for _ in users]}), path)


def _bits(table: pa.Table) -> dict[str, np.ndarray]:
    """Each column as raw bits: NaN equals NaN, -0.0 differs from 0.0."""
    out = {}
    for name in table.column_names:
        values = table[name].to_numpy(zero_copy_only=False)
        out[name] = values.view(np.uint32) if values.dtype == np.float32 else values
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("model", ["home_ranker", "edge_ranker"])
@pytest.mark.parametrize("groups", ["decoded whole", "decoded chunk by chunk"])
def test_the_columnar_method_builds_the_rows_the_executor_replays(settings, tmp_path, seed, model, groups,
                                                                  monkeypatch):
    if groups == "decoded chunk by chunk":
        monkeypatch.setattr(columnar_method, "WHOLE_GROUP_BYTES", 0)
    _archive(settings, tmp_path / "registry", seed)
    _labels(tmp_path / "labels.parquet", seed)
    built = {}
    for method in ("replay", "columnar"):
        out = tmp_path / f"{method}.parquet"
        build_training_set(settings, model, tmp_path / "labels.parquet", out, progress=False, chunk_rows=97,
                           method=method)
        built[method] = pq.read_table(out)
    replayed, columnar = _bits(built["replay"]), _bits(built["columnar"])
    assert list(columnar) == list(replayed)
    differing = {name: int((columnar[name] != replayed[name]).sum()) for name in replayed
                 if not np.array_equal(columnar[name], replayed[name])}
    assert differing == {}
    # The data reach the cases named above (else the comparison proves less than it says).
    matrix = built["columnar"]
    if model == "edge_ranker":
        assert 0 < pc_count(matrix, "affinity", 7.0) < matrix.num_rows  # chained keys missing, and found
        assert matrix["clicked_before"].to_numpy().max() > 0
        assert 0 < pc_count(matrix, "user.is_premium", 1.0)
    else:
        assert 0 < pc_count(matrix, "user.account_age_days", 0.0) < matrix.num_rows  # expired or missing users


def pc_count(table: pa.Table, column: str, value: float) -> int:
    return int((table[column].to_numpy() == value).sum())


@pytest.mark.parametrize("method", ["columnar", "replay"])
@pytest.mark.parametrize("ids, why", [
    (["u1,u2", "p2"], "has several ids in 'user_id': the model takes one"),
    (["u1", "p|2"], "has an id with '|' in 'product_ids'"),
])
def test_a_context_the_model_proxy_would_refuse_is_refused_with_its_row(settings, tmp_path, method, ids, why):
    _archive(settings, tmp_path / "registry", 1)
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u1", ids[0]], "product_ids": ["p1", "p1", ids[1]],
                             "event_time": pa.array([NOW] * 3, pa.int64())}), labels)
    with pytest.raises(LabelsError) as refused:
        build_training_set(settings, "home_ranker", labels, tmp_path / "out.parquet", progress=False, chunk_rows=2,
                           method=method)
    assert str(refused.value) == f"{labels}: row 3 {why}"
    assert not (tmp_path / "out.parquet").exists()
