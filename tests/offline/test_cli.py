"""`vahini logs export`, `vahini replay --into archive` and `vahini training-set` as an
operator runs them, on the embedded stack: the happy path with a CSV labels file in
epoch milliseconds, the errors a labels file can have, and the README's snippet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from vahini.producer import EventProducer
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.server import start_server
from tests.conftest_backends import stack_settings
from tests.offline.helpers import with_logging
from tests.streams.helpers import ingest_until_caught_up
from tests.streams.processes import settings_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(request, tmp_path, unique):
    """A stack that served and logged three home_ranker requests, archived by a replay."""
    settings = with_logging(stack_settings("embedded", request, tmp_path, unique), tmp_path, unique)
    p = EventProducer.from_settings(settings, "test")
    for product, (category, price) in {"p1": ("c3", 19.5), "p2": ("c7", 250.0)}.items():
        p.feature_update("product", {"product_id": product}, "product_core", {"category_id": category, "price": price})
    p.feature_update("user", {"user_id": "u42"}, "user_profile", {"account_age_days": 400, "is_premium": True})
    p.flush()
    ingest_until_caught_up(settings)
    running = start_server(settings, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = mpb_grpc.ModelProxyStub(channel)
            for user in ("u42", "u7", "u42"):
                stub.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context={
                    "user_id": mpb.ContextIds(ids=[user]), "product_ids": mpb.ContextIds(ids=["p1", "p2"])}))
    finally:
        running.stop(0)
    env = {**settings_env(settings), "VAHINI_ARCHIVE__URL": settings.archive.url,
           "VAHINI_TOPICS__FEATURE_LOG": settings.topics.feature_log}
    replayed = vahini(env, tmp_path, "replay", "--topic", settings.topics.feature_updates, "--from", "earliest",
                      "--into", "archive", "--no-progress")
    assert replayed.returncode == 0 and "records=3 rows=3" in replayed.stdout, replayed.stderr
    env["settings"] = settings  # for the tests that call the library; vahini() leaves it out
    return env


def vahini(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vahini.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={k: v for k, v in env.items() if k != "settings"}, timeout=120)


def test_export_then_a_csv_labels_file_gives_back_what_was_served(served, tmp_path):
    exported = vahini(served, tmp_path, "logs", "export", "home_ranker", "--out", "served.parquet", "--no-progress")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {"out": "served.parquet", "responses": 3, "rows": 6, "versions": [1]}
    log = pq.read_table(tmp_path / "served.parquet")
    assert log.column_names[:4] == ["request_id", "event_time", "user_id", "product_ids"]
    assert log["product_ids"].to_pylist() == ["p1", "p2"] * 3 and log["version"].to_pylist() == [1] * 6
    assert log["product.price"].to_pylist() == [19.5, 250.0] * 3

    labels = log.select(["user_id", "product_ids"]).append_column(
        "event_time", log["event_time"].cast("int64")).append_column("clicked", log["version"])
    pacsv.write_csv(labels, tmp_path / "labels.csv")
    built = vahini(served, tmp_path, "training-set", "home_ranker", "--labels", "labels.csv", "--out", "t.parquet",
                   "--version", "1", "--no-progress")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["rows"] == 6
    training = pq.read_table(tmp_path / "t.parquet")
    assert training.column_names[:4] == ["user_id", "product_ids", "event_time", "clicked"]
    for column in log.column_names[4:-1]:  # the matrix columns; not version
        assert np.array_equal(training[column].to_numpy(), log[column].to_numpy()), column


def test_exports_and_training_sets_refuse_what_they_cannot_do_with_a_reason(served, tmp_path):
    assert vahini(served, tmp_path, "logs", "export", "home_ranker", "--out", "x.parquet", "--since",
                  "2999-01-01").stderr.count("no logged responses of model 'home_ranker'") == 1
    late = vahini(served, tmp_path, "logs", "export", "home_ranker", "--out", "x.parquet", "--since", "someday")
    assert late.returncode == 2 or (late.returncode == 1 and "--since 'someday'" in late.stderr), late.stderr
    cases = {
        "product_ids,event_time\np1,1796640000000\n": "missing column(s) user_id",
        "user_id,product_ids,event_time\nu1,p1,1796640000000\n,p2,1796640000000\n": "row 2 has no 'user_id'",
        "user_id,product_ids,event_time\nu1,p1,yesterday\n": "'event_time' is string",
        "user_id,product_ids,event_time\nu1,p1,\n": "row 1 has no 'event_time'",
    }
    for text, message in cases.items():
        (tmp_path / "bad.csv").write_text(text)
        refused = vahini(served, tmp_path, "training-set", "home_ranker", "--labels", "bad.csv", "--out", "o.parquet")
        assert refused.returncode == 1 and message in refused.stderr, (text, refused.stderr)
    unknown = vahini(served, tmp_path, "training-set", "home_ranker", "--labels", "bad.csv", "--out", "o.parquet",
                     "--version", "99")
    assert unknown.returncode == 1 and "no model 'home_ranker' version 99" in unknown.stderr, unknown.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_the_readme_snippet_reads_an_export(served, tmp_path):
    assert vahini(served, tmp_path, "logs", "export", "home_ranker", "--out", "served.parquet").returncode == 0
    text = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text[text.index("## Training data"):], re.S).group(1)
    ran = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "p1" in ran.stdout and "19.5" in ran.stdout and "250.0" in ran.stdout


@pytest.mark.parametrize("method", ["columnar", "replay"])
def test_worker_processes_build_the_same_rows_in_the_same_order(served, tmp_path, method):
    from vahini.offline.training_set import build_training_set

    assert vahini(served, tmp_path, "logs", "export", "home_ranker", "--out", "served.parquet").returncode == 0
    settings = served["settings"]
    one = build_training_set(settings, "home_ranker", tmp_path / "served.parquet", tmp_path / "one.parquet",
                             progress=False, chunk_rows=2, method=method)
    two = build_training_set(settings, "home_ranker", tmp_path / "served.parquet", tmp_path / "two.parquet",
                             progress=False, chunk_rows=2, workers=2, method=method)
    assert one.rows == two.rows == 6
    assert pq.read_table(tmp_path / "two.parquet").equals(pq.read_table(tmp_path / "one.parquet"))
    assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name or p.name.startswith(".")) == []
