#!/usr/bin/env bash
# Redis (Debian package) on 127.0.0.1, with an append-only file so the hot tier survives a restart.
SERVICE=redis
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
REDIS_PORT="${VAHINI_REDIS_PORT:-6379}"
HOME_DIR="$VAHINI_INFRA_HOME/redis"
STATE_DIR="$HOME_DIR"

do_install() { apt_install redis-server redis-tools; mkdir -p "$HOME_DIR"; }

do_health() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]; }

do_start() {
  log "starting on 127.0.0.1:$REDIS_PORT"
  start_daemon redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$HOME_DIR" \
    --daemonize no --save "" --appendonly yes --appendfsync everysec --maxmemory-policy noeviction
  wait_until 30 do_health || not_healthy
  log "healthy"
}

dispatch "$@"
