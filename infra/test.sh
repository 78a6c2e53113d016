#!/usr/bin/env bash
# Set up, start the real services, run the whole test suite, stop the services.
# Every test that needs Kafka, Cassandra, Redis, ZooKeeper or a model server must run: a skip fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/bootstrap.sh
bash infra/services.sh install
bash infra/grpcurl.sh install
bash infra/model-servers.sh install  # MLServer and Triton (PyTriton), for the scoring tests
export VAHINI_GRPCURL="${VAHINI_GRPCURL:-$(bash infra/grpcurl.sh path)}"
if [[ "${VAHINI_KEEP_SERVICES:-0}" != 1 ]]; then trap 'bash infra/services.sh stop' EXIT; fi
bash infra/services.sh start
export VAHINI_REQUIRE_SERVICES=1
unset VAHINI_ALLOW_PARTIAL
report="$(mktemp)"
VAHINI_REAL_SERVICE_REPORT="$report" .venv/bin/python -m pytest "$@"
.venv/bin/python -m tests.ci_guard "$report"
