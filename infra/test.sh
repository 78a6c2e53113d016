#!/usr/bin/env bash
# Set up, start the real services, run the whole test suite, stop the services.
# Every test that needs Kafka, Cassandra, Redis, ZooKeeper or a model server must run: a skip fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/bootstrap.sh
bash infra/services.sh install
bash infra/grpcurl.sh install
bash infra/browser.sh install  # Chromium and ChromeDriver, for the console's browser tests
bash infra/model-servers.sh install  # MLServer and Triton (PyTriton), for the scoring tests
export VAHINI_GRPCURL="${VAHINI_GRPCURL:-$(bash infra/grpcurl.sh path)}"
# A run starts from empty services, as on a fresh machine: state left by earlier runs
# (thousands of test topics, gigabytes of tables) slows the services' start past its deadline.
# VAHINI_KEEP_SERVICES=1 keeps them running, and their data, between runs.
if [[ "${VAHINI_KEEP_SERVICES:-0}" != 1 ]]; then
  bash infra/services.sh reset
  trap 'bash infra/services.sh stop' EXIT
fi
bash infra/services.sh start
export VAHINI_REQUIRE_SERVICES=1
unset VAHINI_ALLOW_PARTIAL
report="$(mktemp)"
VAHINI_REAL_SERVICE_REPORT="$report" .venv/bin/python -m pytest "$@"
.venv/bin/python -m tests.ci_guard "$report"
