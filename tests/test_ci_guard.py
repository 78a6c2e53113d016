"""The CI guard: a run passes only if every real-service test it collected passed,
unless a developer asks for a partial run on purpose (VAHINI_ALLOW_PARTIAL=1)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = """
    import pytest

    @pytest.mark.real_service
    def test_needs_kafka():
        pass

    @pytest.mark.real_service
    def test_needs_redis():
        pass

    def test_plain():
        assert True
"""


def run_pytest(tmp_path: Path, *args: str, body: str = SAMPLE, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F401,F403\n"
                                          "from tests.conftest import pytest_runtest_logreport, pytest_sessionfinish, "
                                          "pytest_terminal_summary, pytest_collection_modifyitems  # noqa: F401\n")
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(body))
    clean = {k: v for k, v in os.environ.items() if k not in ("VAHINI_REQUIRE_SERVICES", "VAHINI_ALLOW_PARTIAL",
                                                              "VAHINI_REAL_SERVICE_REPORT")}
    full_env = {**clean, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path), *args],
                          cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120)


def test_a_full_run_where_every_real_service_test_passes_passes(tmp_path):
    report = tmp_path / "report.json"
    result = run_pytest(tmp_path, VAHINI_REAL_SERVICE_REPORT=str(report))
    assert result.returncode == 0, result.stdout
    assert json.loads(report.read_text()) == {"collected": 2, "selected": 2, "passed": 2}


def test_a_skipped_real_service_test_fails_the_run(tmp_path):
    body = SAMPLE.replace("def test_needs_kafka():\n        pass",
                          "def test_needs_kafka():\n        pytest.skip('no Kafka here')")
    for env in ({"VAHINI_REQUIRE_SERVICES": "1"}, {}):  # required or not, a skip is never silent
        result = run_pytest(tmp_path, body=body, **env)
        assert result.returncode == 1, result.stdout
        assert "real-service test(s) were skipped" in result.stdout and "test_needs_kafka" in result.stdout


def test_deselecting_real_service_tests_fails_the_run(tmp_path):
    for args in (("-k", "plain"), ("-m", "not real_service"), ("-k", "redis")):
        result = run_pytest(tmp_path, *args, VAHINI_REQUIRE_SERVICES="1")
        assert result.returncode == 1, (args, result.stdout)
        assert "real-service tests passed" in result.stdout and "deselected by -k/-m" in result.stdout


def test_a_partial_run_asked_for_on_purpose_passes(tmp_path):
    result = run_pytest(tmp_path, "-m", "not real_service", VAHINI_ALLOW_PARTIAL="1")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 deselected" in result.stdout


def test_the_make_test_guard_compares_with_every_real_service_test_under_tests(tmp_path):
    from tests import ci_guard

    exist = ci_guard.real_service_tests_that_exist()
    assert exist > 50  # the contract suites alone hold more
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"collected": 3, "selected": 3, "passed": 3}))  # e.g. `make test tests/x.py`
    assert ci_guard.main(str(report)) == 1
    report.write_text(json.dumps({"collected": exist, "selected": exist, "passed": exist}))
    assert ci_guard.main(str(report)) == 0


def test_the_cluster_tests_are_counted_by_their_own_guard_not_by_make_tests(tmp_path):
    from tests import ci_guard

    cluster = ci_guard.real_service_tests_that_exist(ci_guard.CLUSTER)
    assert cluster >= 5  # kills of a Cassandra node, the coordinator, the controller; the schema race; a flush
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"collected": cluster - 1, "selected": cluster - 1, "passed": cluster - 1}))
    assert ci_guard.main(str(report), ci_guard.CLUSTER) == 1
    report.write_text(json.dumps({"collected": cluster, "selected": cluster, "passed": cluster}))
    assert ci_guard.main(str(report), ci_guard.CLUSTER) == 0
