"""The CI guard: with VAHINI_REQUIRE_SERVICES=1 a skipped real-service test fails the run."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(tmp_path: Path, body: str, require: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F401,F403\n"
                                          "from tests.conftest import pytest_runtest_logreport, "
                                          "pytest_sessionfinish, pytest_terminal_summary  # noqa: F401\n")
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(body))
    env = {**os.environ, "VAHINI_REQUIRE_SERVICES": require, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


SKIPPING = """
    import pytest

    @pytest.mark.real_service
    def test_needs_kafka():
        pytest.skip("no Kafka here")

    def test_plain():
        assert True
"""


def test_a_skipped_real_service_test_fails_the_run_when_services_are_required(tmp_path):
    result = run_pytest(tmp_path, SKIPPING, "1")
    assert result.returncode == 1, result.stdout
    assert "real-service test(s) were skipped" in result.stdout and "test_needs_kafka" in result.stdout


def test_without_the_requirement_a_skip_is_only_a_skip(tmp_path):
    result = run_pytest(tmp_path, SKIPPING, "0")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
