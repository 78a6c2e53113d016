#!/usr/bin/env bash
# Apache Kafka 4 in KRaft combined mode (broker + controller) on 127.0.0.1.
SERVICE=kafka
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KAFKA_PORT="${VAHINI_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${VAHINI_KAFKA_CONTROLLER_PORT:-9093}"
HOME_DIR="$VAHINI_INFRA_HOME/kafka"
DATA_DIR="$HOME_DIR/data"
CONF="$HOME_DIR/server.properties"

JAVA_ARGS=(-Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$INFRA_DIR/conf/kafka-log4j2.yaml"
  -Dkafka.logs.dir="$LOG_DIR" -cp "$HOME_DIR/lib/*")

do_install() {
  maven_fetch kafka
  mkdir -p "$DATA_DIR"
  sed -e "s#@DATA_DIR@#$DATA_DIR#" -e "s#@PORT@#$KAFKA_PORT#" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#" \
    "$INFRA_DIR/conf/kafka-server.properties" >"$CONF"
  if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
    log "formatting KRaft storage"
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format --standalone -t "$(cat /proc/sys/kernel/random/uuid | tr -d - | head -c 22)" \
      -c "$CONF" --ignore-formatted >&2
  fi
}

do_health() { port_open "$KAFKA_PORT"; }

do_start() {
  log "starting on 127.0.0.1:$KAFKA_PORT"
  start_daemon java "${JAVA_ARGS[@]}" kafka.Kafka "$CONF"
  wait_until 120 do_health || die "Kafka did not become healthy; see $LOG_DIR/$SERVICE.log"
  log "healthy"
}

dispatch "$@"
