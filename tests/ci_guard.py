"""Checks, after `make test`, that as many real-service tests passed as exist
under tests/, so no path argument, -k or -m can talk the run out of them.

    python -m tests.ci_guard REPORT_FILE     (REPORT_FILE: written by tests/conftest.py)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def real_service_tests_that_exist() -> int:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "real_service",
                          "-p", "no:cacheprovider", str(ROOT / "tests")],
                         cwd=ROOT, capture_output=True, text=True, check=False).stdout
    return sum(1 for line in out.splitlines() if "::" in line)


def main(report_file: str) -> int:
    passed = json.loads(Path(report_file).read_text())["passed"] if Path(report_file).is_file() else 0
    exist = real_service_tests_that_exist()
    if passed < exist:
        print(f"FAILED: {passed} of {exist} real-service tests passed; `make test` must run them all "
              f"(no path, -k or -m may leave any out)", file=sys.stderr)
        return 1
    print(f"ci guard: all {exist} real-service tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
