#!/usr/bin/env bash
# Apache ZooKeeper (Debian package) as a standalone server on 127.0.0.1.
SERVICE=zookeeper
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ZK_PORT="${VAHINI_ZOOKEEPER_PORT:-2181}"
HOME_DIR="$VAHINI_INFRA_HOME/zookeeper"
CONF="$HOME_DIR/zoo.cfg"
STATE_DIR="$HOME_DIR/data"

do_install() {
  apt_install zookeeper
  mkdir -p "$HOME_DIR/data"
  sed -e "s#@DATA_DIR@#$HOME_DIR/data#" -e "s#@PORT@#$ZK_PORT#" "$INFRA_DIR/conf/zoo.cfg" >"$CONF"
}

# 'ruok' answered with 'imok' means the server is serving requests.
do_health() {
  local reply
  reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf ruok >&3 && timeout 2 cat <&3) 2>/dev/null || true)"
  [[ "$reply" == "imok" ]]
}

do_start() {
  log "starting on 127.0.0.1:$ZK_PORT"
  start_daemon java -Xmx256m -Dzookeeper.admin.enableServer=false \
    -Dlog4j.configuration="file:$INFRA_DIR/conf/zookeeper-log4j.properties" \
    -cp "/usr/share/java/zookeeper.jar:/usr/share/java/*" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$CONF"
  wait_until 60 do_health || not_healthy
  log "healthy"
}

dispatch "$@"
