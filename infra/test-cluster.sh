#!/usr/bin/env bash
# The cluster profile's fault tests (tests/cluster): start three KRaft brokers and three
# Cassandra nodes on 127.0.0.2-4 (infra/cluster.sh), plus the single-node Redis and
# ZooKeeper they share, run every cluster test, stop them. A skip fails, as in `make test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/bootstrap.sh
bash infra/services.sh install zookeeper redis
bash infra/cluster.sh install
if [[ "${VAHINI_KEEP_SERVICES:-0}" != 1 ]]; then  # from empty services, as in infra/test.sh
  bash infra/cluster.sh reset; bash infra/services.sh reset zookeeper redis
  trap 'bash infra/cluster.sh stop; bash infra/services.sh stop zookeeper redis' EXIT
fi
bash infra/services.sh start zookeeper redis
bash infra/cluster.sh start
export VAHINI_REQUIRE_SERVICES=1 VAHINI_CLUSTER_TESTS=1
unset VAHINI_ALLOW_PARTIAL
report="$(mktemp)"
VAHINI_REAL_SERVICE_REPORT="$report" .venv/bin/python -m pytest tests/cluster "$@"
.venv/bin/python -m tests.ci_guard "$report" tests/cluster
