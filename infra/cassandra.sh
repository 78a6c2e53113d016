#!/usr/bin/env bash
# Apache Cassandra 5 on loopback: the CQL-compatible stand-in for ScyllaDB where Docker is absent.
# VAHINI_CASSANDRA_PROFILE picks which node this is:
#   plain    the single node on 127.0.0.1:9042 (default)
#   secure   a single node of its own cluster for the secured profile: PasswordAuthenticator,
#            CassandraAuthorizer and client-to-node TLS required, on port 9142 (infra/cassandra-secure.sh)
#   cluster  node VAHINI_CLUSTER_NODE (1-3) of a three-node cluster on 127.0.0.2-4:9042
#            (infra/cluster.sh); the whole 127.0.0.0/8 range routes to loopback already
PROFILE="${VAHINI_CASSANDRA_PROFILE:-plain}"
case "$PROFILE" in
  plain) SERVICE=cassandra ;;
  secure) SERVICE=cassandra-secure ;;
  cluster) NODE="${VAHINI_CLUSTER_NODE:?VAHINI_CLUSTER_NODE=1|2|3}"; SERVICE="cassandra-cluster-$NODE" ;;
  *) echo "unknown VAHINI_CASSANDRA_PROFILE=$PROFILE" >&2; exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LIB_DIR="$VAHINI_INFRA_HOME/cassandra/lib"
HOME_DIR="$VAHINI_INFRA_HOME/$SERVICE"
DATA_DIR="$HOME_DIR/data"
STATE_DIR="$DATA_DIR"
TLS_DIR="$HOME_DIR/tls"
CONF="$HOME_DIR/cassandra.yaml"
HOST=127.0.0.1; CLUSTER=vahini; STORAGE_PORT=7000; EXTRA_JVM=()
case "$PROFILE" in
  plain) CQL_PORT="${VAHINI_CASSANDRA_PORT:-9042}"; JMX_PORT="${VAHINI_CASSANDRA_JMX_PORT:-7199}"; HEAP=1g ;;
  secure) CQL_PORT="${VAHINI_CASSANDRA_SECURE_PORT:-9142}"; STORAGE_PORT=7100; JMX_PORT=7299; HEAP=768m
          CLUSTER=vahini-secure ;;
  # Each node has an address of its own, so the ports repeat; only JMX binds 127.0.0.1.
  # A fresh cluster holds no data, so nodes 2 and 3 join side by side without streaming.
  cluster) HOST="127.0.0.$((NODE + 1))"; CQL_PORT=9042; JMX_PORT=$((7200 + NODE)); HEAP=768m
           CLUSTER=vahini-cluster; EXTRA_JVM=(-Dcassandra.consistent.rangemovement=false) ;;
esac
SEEDS="$HOST:$STORAGE_PORT"; [[ "$PROFILE" == cluster ]] && SEEDS="127.0.0.2:$STORAGE_PORT"

# The secured node's certificate: a CA of its own (tests trust $TLS_DIR/ca.pem), and the
# node's key and chain in one PEM file for PEMBasedSslContextFactory.
make_tls() {
  [[ -f "$TLS_DIR/node.pem" ]] && return 0
  log "making a CA and a node certificate for client-to-node TLS in $TLS_DIR"
  loopback_tls "$TLS_DIR" node vahini-test-cassandra-ca
  cat "$TLS_DIR/node.key" "$TLS_DIR/node.crt" >"$TLS_DIR/node.pem"
}

do_install() {
  maven_fetch cassandra
  mkdir -p "$DATA_DIR"
  sed -e "s#@DATA_DIR@#$DATA_DIR#g" -e "s#@CQL_PORT@#$CQL_PORT#g" -e "s#@STORAGE_PORT@#$STORAGE_PORT#g" \
    -e "s#@HOST@#$HOST#g" -e "s#@SEEDS@#$SEEDS#g" -e "s#@CLUSTER@#$CLUSTER#g" \
    "$INFRA_DIR/conf/cassandra.yaml" >"$CONF"
  if [[ "$PROFILE" == cluster ]]; then echo "auto_bootstrap: false" >>"$CONF"; fi
  if [[ "$PROFILE" == secure ]]; then
    make_tls
    sed -i -e "s#^authenticator: .*#authenticator: PasswordAuthenticator#" \
      -e "s#^authorizer: .*#authorizer: CassandraAuthorizer#" "$CONF"
    sed -e "s#@TLS_DIR@#$TLS_DIR#g" "$INFRA_DIR/conf/cassandra-secure.yaml" >>"$CONF"
  fi
}

# Healthy means the CQL native protocol answers: an OPTIONS request (v4 header,
# opcode 0x05) must get a SUPPORTED response (version byte 0x84, opcode 0x06).
do_health() {
  local reply
  if [[ "$PROFILE" == secure ]]; then  # the same request, through TLS
    reply="$( ( (printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00'; sleep 2) \
               | timeout 5 openssl s_client -connect "$HOST:$CQL_PORT" -quiet 2>/dev/null \
               | head -c 5 | od -An -tx1 | tr -d ' \n') 2>/dev/null || true)"
  else
    reply="$( (exec 3<>"/dev/tcp/$HOST/$CQL_PORT" && printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3 \
               && timeout 2 head -c 5 <&3 | od -An -tx1 | tr -d ' \n') 2>/dev/null || true)"
  fi
  [[ "$reply" == 84000000* && "${reply:8:2}" == "06" ]]
}

do_start() {
  log "starting on $HOST:$CQL_PORT (takes ~30 s)"
  local jvm_opts; jvm_opts="$(grep -v '^\s*#' "$INFRA_DIR/conf/cassandra-jvm17.options" | grep -v '^\s*$' | tr '\n' ' ')"
  # shellcheck disable=SC2086
  start_daemon java "-Xms$HEAP" "-Xmx$HEAP" $jvm_opts "${EXTRA_JVM[@]}" \
    -Dcassandra.config="file://$CONF" -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$DATA_DIR" -Dcassandra.logdir="$LOG_DIR" \
    -Dcassandra.jmx.local.port="$JMX_PORT" -Dcassandra.superuser_setup_delay_ms=0 \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=0 \
    -Dlogback.configurationFile="$INFRA_DIR/conf/cassandra-logback.xml" \
    -cp "$LIB_DIR/*" org.apache.cassandra.service.CassandraDaemon
  wait_until 180 do_health || not_healthy
  log "healthy"
}

dispatch "$@"
