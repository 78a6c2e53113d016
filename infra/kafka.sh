#!/usr/bin/env bash
# Apache Kafka 4 in KRaft combined mode (broker + controller in one process).
# VAHINI_KAFKA_PROFILE picks which node this is:
#   single   the one node on 127.0.0.1:9092, with a SASL_SSL listener on 9094 (default)
#   cluster  node VAHINI_CLUSTER_NODE (1-3) of a three-node quorum on 127.0.0.2-4:9092
#            (infra/cluster.sh)
PROFILE="${VAHINI_KAFKA_PROFILE:-single}"
case "$PROFILE" in
  single) SERVICE=kafka ;;
  cluster) NODE="${VAHINI_CLUSTER_NODE:?VAHINI_CLUSTER_NODE=1|2|3}"; SERVICE="kafka-cluster-$NODE" ;;
  *) echo "unknown VAHINI_KAFKA_PROFILE=$PROFILE" >&2; exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HOST=127.0.0.1
KAFKA_PORT="${VAHINI_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${VAHINI_KAFKA_CONTROLLER_PORT:-9093}"
SECURE_PORT="${VAHINI_KAFKA_SECURE_PORT:-9094}"
HEAP=1g
TLS_DIR="$VAHINI_INFRA_HOME/kafka/tls"
HOME_DIR="$VAHINI_INFRA_HOME/$SERVICE"
DATA_DIR="$HOME_DIR/data"
CONF="$HOME_DIR/server.properties"
STATE_DIR="$DATA_DIR"
if [[ "$PROFILE" == cluster ]]; then
  HOST="127.0.0.$((NODE + 1))"; KAFKA_PORT=9092; HEAP=512m
  # All three nodes format their storage with one cluster id.
  CLUSTER_ID_FILE="$VAHINI_INFRA_HOME/kafka-cluster.id"
fi

JAVA_ARGS=(-Xms512m "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$INFRA_DIR/conf/kafka-log4j2.yaml"
  -Dkafka.logs.dir="$LOG_DIR" -cp "$VAHINI_INFRA_HOME/kafka/lib/*")

# The secured listener's certificate: a CA of its own (tests trust $TLS_DIR/ca.pem),
# and the broker's key and chain in one PEM file, as Kafka's PEM keystore wants.
make_tls() {
  [[ -f "$TLS_DIR/broker.pem" ]] && return 0
  log "making a CA and a broker certificate for the SASL_SSL listener in $TLS_DIR"
  loopback_tls "$TLS_DIR" broker vahini-test-kafka-ca
  cat "$TLS_DIR/broker.key" "$TLS_DIR/broker.crt" "$TLS_DIR/ca.pem" >"$TLS_DIR/broker.pem"
}

render_conf() {
  if [[ "$PROFILE" == cluster ]]; then
    sed -e "s#@DATA_DIR@#$DATA_DIR#" -e "s#@NODE@#$NODE#" -e "s#@HOST@#$HOST#g" \
      "$INFRA_DIR/conf/kafka-cluster.properties" >"$CONF"
  else
    make_tls
    sed -e "s#@DATA_DIR@#$DATA_DIR#" -e "s#@PORT@#$KAFKA_PORT#" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#" \
      -e "s#@SECURE_PORT@#$SECURE_PORT#" -e "s#@TLS_DIR@#$TLS_DIR#" \
      "$INFRA_DIR/conf/kafka-server.properties" >"$CONF"
  fi
}

new_cluster_id() { cat /proc/sys/kernel/random/uuid | tr -d - | head -c 22; }

do_install() {
  maven_fetch kafka
  mkdir -p "$DATA_DIR"
  render_conf
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  log "formatting KRaft storage"
  if [[ "$PROFILE" == cluster ]]; then
    # The nodes install side by side: the first to take the lock picks the id.
    (flock 9; [[ -s "$CLUSTER_ID_FILE" ]] || new_cluster_id >"$CLUSTER_ID_FILE") 9>"$CLUSTER_ID_FILE.lock"
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format -t "$(cat "$CLUSTER_ID_FILE")" -c "$CONF" \
      --ignore-formatted >&2
  else
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format --standalone -t "$(new_cluster_id)" \
      -c "$CONF" --ignore-formatted >&2
  fi
}

do_health() {
  if [[ "$PROFILE" == cluster ]]; then port_open "$KAFKA_PORT" "$HOST"; else port_open "$KAFKA_PORT" && port_open "$SECURE_PORT"; fi
}

do_start() {
  if [[ "$PROFILE" == single ]] && port_open "$KAFKA_PORT"; then
    die "a Kafka without the SASL_SSL listener on $SECURE_PORT runs on $KAFKA_PORT: stop it first"
  fi
  log "starting on $HOST:$KAFKA_PORT"
  start_daemon java "${JAVA_ARGS[@]}" kafka.Kafka "$CONF"
  wait_until 120 do_health || not_healthy
  log "healthy"
}

dispatch "$@"
