"""Feast's side of benchmarks/training_set.py, run in a process of its own: a Feast repo
over the Parquet files the benchmark wrote, then `get_historical_features` for the
labels (the user and product views, then user_category_affinity keyed by the category
found: the chained lookup by hand), written to Parquet.

    python -m benchmarks.training_set_feast REPO LABELS OUT OFFLINE_STORE"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEFINITIONS = '''
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource
from feast.types import Array, Bool, Float64, Int64, String

DATA = "{data}"
user = Entity(name="user", join_keys=["user_id"])
product = Entity(name="product", join_keys=["product_id"])
category = Entity(name="category", join_keys=["category_id"])


def source(name):
    return FileSource(name=name, path=f"{{DATA}}/{{name}}.parquet", timestamp_field="event_timestamp")


FOREVER = timedelta(days=3650)  # the group has no ttl_s
user_profile = FeatureView(name="user_profile", entities=[user], ttl=timedelta(days=30), source=source("user_profile"),
                           schema=[Field(name="account_age_days", dtype=Int64), Field(name="is_premium", dtype=Bool),
                                   Field(name="city", dtype=String), Field(name="avg_order_value", dtype=Float64),
                                   Field(name="embedding", dtype=Array(Float64))])
product_core = FeatureView(name="product_core", entities=[product], ttl=FOREVER, source=source("product_core"),
                           schema=[Field(name="category_id", dtype=String), Field(name="brand", dtype=String),
                                   Field(name="price", dtype=Float64), Field(name="in_stock", dtype=Bool),
                                   Field(name="listed_at_ms", dtype=Int64)])
product_stats = FeatureView(name="product_stats", entities=[product], ttl=timedelta(days=7),
                            source=source("product_stats"),
                            schema=[Field(name="ctr_7d", dtype=Float64), Field(name="cvr_7d", dtype=Float64),
                                    Field(name="rating", dtype=Float64), Field(name="embedding", dtype=Array(Float64))])
user_category_affinity = FeatureView(name="user_category_affinity", entities=[user, category],
                                     ttl=timedelta(days=30), source=source("user_category_affinity"),
                                     schema=[Field(name="clicks_30d", dtype=Int64), Field(name="orders_30d", dtype=Int64),
                                             Field(name="affinity", dtype=Float64)])
'''

FIRST = ["user_profile:account_age_days", "user_profile:is_premium", "user_profile:city",
         "user_profile:avg_order_value", "user_profile:embedding", "product_core:category_id", "product_core:brand",
         "product_core:price", "product_core:in_stock", "product_core:listed_at_ms", "product_stats:ctr_7d",
         "product_stats:cvr_7d", "product_stats:rating", "product_stats:embedding"]
SECOND = ["user_category_affinity:clicks_30d", "user_category_affinity:orders_30d", "user_category_affinity:affinity"]


def main(repo: Path, labels: Path, out: Path, offline_store: str) -> int:
    import pandas as pd
    from feast import FeatureStore

    (repo / "definitions.py").write_text(DEFINITIONS.format(data=repo / "data"))
    (repo / ".feastignore").write_text("data/\n")
    (repo / "feature_store.yaml").write_text(
        f"project: vahini_training\nregistry: data/registry.db\nprovider: local\n"
        f"online_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: {offline_store}\n"
        f"entity_key_serialization_version: 3\n")
    subprocess.run([str(Path(sys.executable).with_name("feast")), "apply"], cwd=repo, check=True,
                   stdout=subprocess.DEVNULL)
    store = FeatureStore(repo_path=str(repo))
    entity_df = pd.read_parquet(labels).rename(columns={"product_ids": "product_id", "event_time": "event_timestamp"})
    first = store.get_historical_features(entity_df=entity_df, features=FIRST, full_feature_names=True).to_df()
    keyed = first[["user_id", "product_core__category_id", "event_timestamp"]].rename(
        columns={"product_core__category_id": "category_id"})
    keyed = keyed.assign(row=range(len(keyed)))
    second = store.get_historical_features(entity_df=keyed, features=SECOND, full_feature_names=True).to_df()
    second = second.sort_values("row").drop(columns=["user_id", "category_id", "event_timestamp", "row"])
    first = first.reset_index(drop=True)
    pd.concat([first, second.reset_index(drop=True)], axis=1).to_parquet(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]))
