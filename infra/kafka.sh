#!/usr/bin/env bash
# Apache Kafka 4 in KRaft combined mode (broker + controller) on 127.0.0.1.
SERVICE=kafka
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KAFKA_PORT="${VAHINI_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${VAHINI_KAFKA_CONTROLLER_PORT:-9093}"
SECURE_PORT="${VAHINI_KAFKA_SECURE_PORT:-9094}"
TLS_DIR="$VAHINI_INFRA_HOME/kafka/tls"
HOME_DIR="$VAHINI_INFRA_HOME/kafka"
DATA_DIR="$HOME_DIR/data"
CONF="$HOME_DIR/server.properties"

JAVA_ARGS=(-Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$INFRA_DIR/conf/kafka-log4j2.yaml"
  -Dkafka.logs.dir="$LOG_DIR" -cp "$HOME_DIR/lib/*")

# The secured listener's certificate: a CA of its own (tests trust $TLS_DIR/ca.pem),
# and the broker's key and chain in one PEM file, as Kafka's PEM keystore wants.
make_tls() {
  [[ -f "$TLS_DIR/broker.pem" ]] && return 0
  log "making a CA and a broker certificate for the SASL_SSL listener in $TLS_DIR"
  loopback_tls "$TLS_DIR" broker vahini-test-kafka-ca
  cat "$TLS_DIR/broker.key" "$TLS_DIR/broker.crt" "$TLS_DIR/ca.pem" >"$TLS_DIR/broker.pem"
}

do_install() {
  maven_fetch kafka
  mkdir -p "$DATA_DIR"
  make_tls
  sed -e "s#@DATA_DIR@#$DATA_DIR#" -e "s#@PORT@#$KAFKA_PORT#" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#" \
    -e "s#@SECURE_PORT@#$SECURE_PORT#" -e "s#@TLS_DIR@#$TLS_DIR#" \
    "$INFRA_DIR/conf/kafka-server.properties" >"$CONF"
  if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
    log "formatting KRaft storage"
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format --standalone -t "$(cat /proc/sys/kernel/random/uuid | tr -d - | head -c 22)" \
      -c "$CONF" --ignore-formatted >&2
  fi
}

do_health() { port_open "$KAFKA_PORT" && port_open "$SECURE_PORT"; }

do_start() {
  port_open "$KAFKA_PORT" && die "a Kafka without the SASL_SSL listener on $SECURE_PORT runs on $KAFKA_PORT: stop it first"
  log "starting on 127.0.0.1:$KAFKA_PORT"
  start_daemon java "${JAVA_ARGS[@]}" kafka.Kafka "$CONF"
  wait_until 120 do_health || die "Kafka did not become healthy; see $LOG_DIR/$SERVICE.log"
  log "healthy"
}

dispatch "$@"
