#!/usr/bin/env bash
# The cluster profile: three Kafka brokers (combined broker + controller, a quorum of
# three) and three Cassandra nodes, on 127.0.0.2, .3 and .4, beside the single-node
# services. Replication 3 everywhere; the same cached jars as the single nodes.
#   infra/cluster.sh install|start|health|stop|reset [node ...]
# reset stops the nodes and removes their data: with no node named, the next start is a new cluster.
# Nodes: kafka-1 kafka-2 kafka-3 cassandra-1 cassandra-2 cassandra-3 (all when none is named).
# Starting a single node (e.g. one a test killed) rejoins it to the running cluster.
#   infra/cluster.sh controller   prints the node (kafka-N) whose controller leads the KRaft quorum
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:?usage: $0 install|start|health|stop [kafka-N|cassandra-N ...]}"; shift
nodes=("$@")
(( $# == 0 )) && nodes=(kafka-1 kafka-2 kafka-3 cassandra-1 cassandra-2 cassandra-3)

node() {  # node NAME ACTION: run the node's script with its profile
  local kind="${1%-*}" n="${1##*-}"
  case "$kind" in
    kafka) VAHINI_KAFKA_PROFILE=cluster VAHINI_CLUSTER_NODE="$n" bash "$here/kafka.sh" "$2" ;;
    cassandra) VAHINI_CASSANDRA_PROFILE=cluster VAHINI_CLUSTER_NODE="$n" bash "$here/cassandra.sh" "$2" ;;
    *) echo "unknown node $1" >&2; return 2 ;;
  esac
}

# Side by side, failing if any fails.
parallel() {
  local action="$1" pids=() failed=0; shift
  for n in "$@"; do node "$n" "$action" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  return "$failed"
}

start() {
  local brokers=() cassandras=()
  for n in "${nodes[@]}"; do [[ "$n" == kafka-* ]] && brokers+=("$n") || cassandras+=("$n"); done
  # Brokers start together: each waits for a quorum of controllers before it serves.
  # Cassandra's seed (node 1) must be up before a fresh node 2 or 3 can join through it.
  local kafka_pid="" seed_first=() rest=()
  (( ${#brokers[@]} )) && { parallel start "${brokers[@]}" & kafka_pid=$!; }
  for n in "${cassandras[@]}"; do [[ "$n" == cassandra-1 ]] && seed_first+=("$n") || rest+=("$n"); done
  local failed=0
  (( ${#seed_first[@]} )) && { node cassandra-1 start || failed=1; }
  (( ${#rest[@]} )) && { parallel start "${rest[@]}" || failed=1; }
  [[ -n "$kafka_pid" ]] && { wait "$kafka_pid" || failed=1; }
  return "$failed"
}

# Asks the quorum itself (any live controller answers); the leader's node id is N of kafka-N.
controller() {
  local home="${VAHINI_INFRA_HOME:-$HOME/.cache/vahini-infra}" out
  out="$(java -cp "$home/kafka/lib/*" -Dlog4j2.configurationFile="$here/conf/kafka-log4j2.yaml" \
    org.apache.kafka.tools.MetadataQuorumCommand \
    --bootstrap-controller 127.0.0.2:9093,127.0.0.3:9093,127.0.0.4:9093 describe --status)"
  echo "kafka-$(awk '/^LeaderId:/ {print $2}' <<<"$out")"
}

case "$action" in
  start) start ;;
  controller) controller ;;
  install|health|stop) parallel "$action" "${nodes[@]}" ;;
  reset)
    parallel reset "${nodes[@]}"
    # A new quorum formats under a new id; a single node keeps the one its peers have.
    (( $# == 0 )) && rm -f "${VAHINI_INFRA_HOME:-$HOME/.cache/vahini-infra}/kafka-cluster.id"
    ;;
  *) echo "usage: $0 install|start|health|stop|reset [node ...] | controller" >&2; exit 2 ;;
esac
