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
    assert summary["interactions_to_hot"] == 5 and summary["live_session_cold_writes"] == 1
    out = capsys.readouterr().out
    assert "user_profile.city" in out and "present" in out
    assert "u42 during the session (served from the hot tier)" in out and "served from the cold tier" in out
    assert summary["model_proxy_shape"] == [4, 53]  # 4 candidate products x home_ranker's 53 columns
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
