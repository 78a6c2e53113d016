#!/usr/bin/env bash
# Apache Cassandra 5 on 127.0.0.1: the CQL-compatible stand-in for ScyllaDB where Docker is absent.
SERVICE=cassandra
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CQL_PORT="${VAHINI_CASSANDRA_PORT:-9042}"
HOME_DIR="$VAHINI_INFRA_HOME/cassandra"
DATA_DIR="$HOME_DIR/data"
CONF="$HOME_DIR/cassandra.yaml"

do_install() {
  maven_fetch cassandra
  mkdir -p "$DATA_DIR"
  sed -e "s#@DATA_DIR@#$DATA_DIR#g" -e "s#@CQL_PORT@#$CQL_PORT#g" "$INFRA_DIR/conf/cassandra.yaml" >"$CONF"
}

# Healthy means the CQL native protocol answers: an OPTIONS request (v4 header,
# opcode 0x05) must get a SUPPORTED response (version byte 0x84, opcode 0x06).
do_health() {
  local reply
  reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$CQL_PORT" && printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3 \
             && timeout 2 head -c 5 <&3 | od -An -tx1 | tr -d ' \n') 2>/dev/null || true)"
  [[ "$reply" == 84000000* && "${reply:8:2}" == "06" ]]
}

do_start() {
  log "starting on 127.0.0.1:$CQL_PORT (takes ~30 s)"
  local jvm_opts; jvm_opts="$(grep -v '^\s*#' "$INFRA_DIR/conf/cassandra-jvm17.options" | grep -v '^\s*$' | tr '\n' ' ')"
  # shellcheck disable=SC2086
  start_daemon java -Xms1g -Xmx1g $jvm_opts \
    -Dcassandra.config="file://$CONF" -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$DATA_DIR" -Dcassandra.logdir="$LOG_DIR" \
    -Dcassandra.jmx.local.port="${VAHINI_CASSANDRA_JMX_PORT:-7199}" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=0 \
    -Dlogback.configurationFile="$INFRA_DIR/conf/cassandra-logback.xml" \
    -cp "$HOME_DIR/lib/*" org.apache.cassandra.service.CassandraDaemon
  wait_until 180 do_health || die "Cassandra did not become healthy; see $LOG_DIR/$SERVICE.log"
  log "healthy"
}

dispatch "$@"
