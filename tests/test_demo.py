"""`vahini demo` on a fresh directory with no server: the embedded default works end to end."""

import json
import subprocess
import sys

from vahini.demo import DemoSize, run_demo


def test_demo_ingests_everything_it_produced(tmp_path, capsys):
    summary = run_demo(tmp_path / "demo", DemoSize(users=300, products=500, categories=20,
                                                   interactions=200, sessions=50))
    assert summary["feature_updates"] == 300 * 6 + 500 * 2
    assert summary["ingested_events"] == summary["rows_written"] == summary["feature_updates"]
    assert summary["dead_lettered"] == 0
    assert summary["interaction_events"] == 200 + 50 * 2 + 6  # the stream, then u42's live session
    # The live session's clicks all went to the hot tier, and its flush wrote fewer times than
    # writing each click through would have (one partition mutation per user and bucket).
    assert summary["interactions_to_hot"] == summary["live_session_clicks"] > 1
    assert 1 <= summary["live_session_cold_writes"] < summary["live_session_clicks"]
    out = capsys.readouterr().out
    assert "user_profile.city" in out and "present" in out
    assert "u42 during the session (served from the hot tier)" in out and "served from the cold tier" in out
    # A row per candidate product, a column per feature of home_ranker, each named once.
    columns = summary["model_proxy_columns"]
    assert summary["model_proxy_shape"] == [summary["model_proxy_products"], len(columns)]
    assert len(set(columns)) == len(columns) > 0 and "product.price" in columns
    assert "Model Proxy: home_ranker v1 for u42" in out and "GetFeatures latency" in out
    scores = summary["model_proxy_scores"]  # from the reference model server, a sigmoid: in (0, 1)
    assert list(scores) == ["ctr", "rank"] and all(0 < v < 1 for s in scores.values() for v in s)
    assert len(set(scores["ctr"])) > 1 and "reference/ctr_model" in out


def test_demo_command_runs_as_a_user_would(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vahini.cli", "demo", "--workdir", str(tmp_path / "d"),
                             "--users", "200", "--products", "300", "--categories", "10"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ingested_events"] == 200 * 6 + 300 * 2


def test_the_demo_ends_with_the_console_address_and_its_settings_open_the_console(tmp_path):
    import urllib.request

    from vahini.console.server import start_console
    from vahini.settings import load_settings

    workdir = tmp_path / "d"
    result = subprocess.run([sys.executable, "-m", "vahini.cli", "demo", "--workdir", str(workdir),
                             "--users", "50", "--products", "80", "--categories", "5"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    settings_file = workdir.resolve() / "settings.toml"
    assert f"vahini console --settings {settings_file}" in result.stdout
    assert "http://127.0.0.1:8080/registry" in result.stdout
    console = start_console(load_settings(str(settings_file)), port=0)
    try:
        with urllib.request.urlopen(f"{console.url}/models", timeout=30) as reply:
            page = reply.read().decode()
    finally:
        console.stop()
    assert 'href="/models/home_ranker"' in page and 'href="/models/home_ranker_scored"' in page
