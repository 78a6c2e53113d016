"""Checks, after `make test`, that as many real-service tests passed as exist
under tests/, so no path argument, -k or -m can talk the run out of them.

    python -m tests.ci_guard REPORT_FILE [tests/cluster]   (REPORT_FILE: written by tests/conftest.py)

With tests/cluster (after `make test-cluster`) it counts the cluster profile's tests,
which `make test` does not collect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "tests/cluster"


def real_service_tests_that_exist(where: str = "tests") -> int:
    env = {**os.environ, "VAHINI_CLUSTER_TESTS": "1" if where == CLUSTER else "0"}
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "real_service",
                          "-p", "no:cacheprovider", str(ROOT / where)],
                         cwd=ROOT, capture_output=True, text=True, check=False, env=env).stdout
    return sum(1 for line in out.splitlines() if "::" in line)


def main(report_file: str, where: str = "tests") -> int:
    passed = json.loads(Path(report_file).read_text())["passed"] if Path(report_file).is_file() else 0
    exist = real_service_tests_that_exist(where)
    if passed < exist:
        print(f"FAILED: {passed} of {exist} real-service tests passed; `make test` must run them all "
              f"(no path, -k or -m may leave any out)", file=sys.stderr)
        return 1
    print(f"ci guard: all {exist} real-service tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
