#!/usr/bin/env bash
# Install, start, check or stop every real service Vahini's tests use, on loopback.
#   infra/services.sh start|stop|health|install|reset [service ...]
# reset stops a service and removes its data, so its next start is a fresh install's.
# Services: kafka cassandra cassandra-secure redis zookeeper (all when none is named).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:?usage: $0 install|start|health|stop|reset [kafka cassandra redis zookeeper]}"; shift
services=("${@:-kafka}")
(( $# == 0 )) && services=(zookeeper redis kafka cassandra cassandra-secure)
for s in "${services[@]}"; do bash "$here/$s.sh" "$action"; done
