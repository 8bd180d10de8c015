#!/usr/bin/env bash
# A local Apache Kafka cluster of three nodes, for the failover tests and for
# trying the tailer against replicated topics. Same jars as the single broker
# of tests/env/services.sh, whose helpers (PID files, waiting, port checks)
# this script sources. Every node is broker and controller in one process,
# with its own directory, ports and JVM (384 MB heap), on loopback:
#
#   node N  clients 127.0.0.1:$BT_CLUSTER_PORT_N  quorum 127.0.0.1:$BT_CLUSTER_CONTROLLER_PORT_N
#
# The controller quorum is static (three voters): any two nodes keep it.
# Topics default to replication factor 3 and min.insync.replicas=2, and so
# do the internal topics (consumer offsets, transactions); unclean leader
# election is off, so only an in-sync replica ever becomes a leader.
#
# Usage: tests/env/kafka-cluster.sh up|down|status|clean|bootstrap|controller|kill N|stop N|pause N|resume N|start N
#   up          format (once) and start the nodes that are not running; wait until each answers
#   down        stop every node by PID (SIGTERM, then SIGKILL after 60 s), waiting for each exit
#   status      each node: running (pid) or stopped; exit 0 only if all three run
#   clean       down, then delete the cluster's data
#   bootstrap   print bootstrap.servers for the three nodes
#   controller  print the node id of the active controller (the quorum's leader)
#   kill N      SIGKILL node N (no controlled shutdown), wait until it is gone
#   stop N      SIGTERM node N (controlled shutdown: its leaderships move first), wait for the exit
#   pause N     SIGSTOP node N: it holds its connections and answers nothing
#   resume N    SIGCONT node N
#   start N     start node N again and wait until it answers
#
# State lives in $BT_CLUSTER_STATE_DIR (default target/kafka-cluster/ in the
# repository); ports come from tests/env/defaults.env.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=services.sh
. "$here/services.sh"
state=${BT_CLUSTER_STATE_DIR:-$repo/target/kafka-cluster}
nodes=(1 2 3)
heap=384m

log() { printf '[kafka-cluster] %s\n' "$*" >&2; }
die() { printf '[kafka-cluster] error: %s\n' "$*" >&2; exit 1; }

port_of() { local v=BT_CLUSTER_PORT_$1; echo "${!v}"; }
controller_port_of() { local v=BT_CLUSTER_CONTROLLER_PORT_$1; echo "${!v}"; }
node_dir() { echo "$state/node-$1"; }

bootstrap() {
  local n out=()
  for n in "${nodes[@]}"; do out+=("127.0.0.1:$(port_of "$n")"); done
  (IFS=,; echo "${out[*]}")
}

write_node_properties() {
  local n=$1 dir voters="" m
  dir=$(node_dir "$n")
  for m in "${nodes[@]}"; do
    voters+="${voters:+,}$m@127.0.0.1:$(controller_port_of "$m")"
  done
  cat >"$dir/server.properties" <<PROPS
# Written by tests/env/kafka-cluster.sh; rewritten at every start.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(port_of "$n"),CONTROLLER://127.0.0.1:$(controller_port_of "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of "$n")
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data

auto.create.topics.enable=false
num.partitions=3
# What production runs: three replicas, a write needs two of them in sync,
# and a replica that fell behind never becomes the leader.
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=16777216

# A node that stops heartbeating is fenced after 6 s (Kafka's default is
# 9 s), so a killed leader's partitions move sooner in the tests.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
PROPS
}

check_node() {
  case "${1:-}" in
    1 | 2 | 3) ;;
    *) die "a node number (1, 2 or 3) is needed, not '${1:-}'" ;;
  esac
}

# Starts node N if it is not running (no waiting).
spawn_node() {
  local n=$1 dir pid port
  dir=$(node_dir "$n")
  if pid=$(live_pid "$dir/pid"); then
    log "node $n: already running (pid $pid)"
    return 0
  fi
  for port in "$(port_of "$n")" "$(controller_port_of "$n")"; do
    if tcp_open "$port"; then
      die "node $n: port $port is taken by another process; free it or set BT_CLUSTER_PORT_$n / BT_CLUSTER_CONTROLLER_PORT_$n"
    fi
  done
  mkdir -p "$dir"
  write_node_properties "$n"
  if [ ! -f "$dir/data/meta.properties" ]; then
    format_kafka "node $n" "$dir" "$(cat "$state/cluster-id")"
  fi
  spawn_kafka "node $n" "$dir" "$(port_of "$n")" "$heap"
}

cmd_up() {
  install_kafka
  mkdir -p "$state"
  if [ ! -f "$state/cluster-id" ]; then
    kafka kafka.tools.StorageTool random-uuid >"$state/cluster-id"
  fi
  local n
  for n in "${nodes[@]}"; do spawn_node "$n"; done
  for n in "${nodes[@]}"; do wait_kafka "node $n" "$(node_dir "$n")" "$(port_of "$n")"; done
  log "up: bootstrap.servers=$(bootstrap) (state in $state)"
}

cmd_down() {
  local n
  for n in "${nodes[@]}"; do
    # A paused node would never act on SIGTERM.
    if pid=$(live_pid "$(node_dir "$n")/pid"); then kill -CONT "$pid" 2>/dev/null || true; fi
    stop_pid "node $n" "$(node_dir "$n")/pid" 60
  done
}

cmd_status() {
  local n pid all=0
  for n in "${nodes[@]}"; do
    if pid=$(live_pid "$(node_dir "$n")/pid"); then
      echo "node $n: running (pid $pid) on 127.0.0.1:$(port_of "$n")"
    else
      echo "node $n: stopped"
      all=1
    fi
  done
  return $all
}

node_pid() {
  live_pid "$(node_dir "$1")/pid" || die "node $1 is not running"
}

cmd_kill() {
  local pid
  pid=$(node_pid "$1")
  log "node $1: SIGKILL (pid $pid)"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$(node_dir "$1")/pid"
}

cmd_start() {
  [ -f "$state/cluster-id" ] || die "the cluster was never started; run: tests/env/kafka-cluster.sh up"
  spawn_node "$1"
  wait_kafka "node $1" "$(node_dir "$1")" "$(port_of "$1")"
}

# The active controller: the leader of the metadata quorum. Every voter
# writes the leader it follows and that leader's epoch into
# data/__cluster_metadata-0/quorum-state at each election; the newest epoch
# among the running nodes, once its leader runs and a majority (two) of the
# nodes name it, is the answer. Waits up to 30 s for an election to end.
cmd_controller() {
  local deadline=$((SECONDS + 30)) n file line best_epoch best_leader agree epoch leader
  while ((SECONDS < deadline)); do
    best_epoch=-1 best_leader=-1 agree=0
    for n in "${nodes[@]}"; do
      live_pid "$(node_dir "$n")/pid" >/dev/null || continue
      file=$(node_dir "$n")/data/__cluster_metadata-0/quorum-state
      line=$(cat "$file" 2>/dev/null) || continue
      leader=$(sed -n 's/.*"leaderId":\(-\{0,1\}[0-9]*\).*/\1/p' <<<"$line")
      epoch=$(sed -n 's/.*"leaderEpoch":\([0-9]*\).*/\1/p' <<<"$line")
      [ -n "$leader" ] && [ -n "$epoch" ] || continue
      if ((epoch > best_epoch)); then
        best_epoch=$epoch best_leader=$leader agree=1
      elif ((epoch == best_epoch)) && [ "$leader" = "$best_leader" ]; then
        agree=$((agree + 1))
      fi
    done
    if ((best_leader > 0 && agree >= 2)) && live_pid "$(node_dir "$best_leader")/pid" >/dev/null; then
      echo "$best_leader"
      return 0
    fi
    sleep 0.2
  done
  die "no active controller among the running nodes within 30 s"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  clean)
    cmd_down
    log "deleting $state"
    rm -rf "$state"
    ;;
  bootstrap) bootstrap ;;
  controller) cmd_controller ;;
  kill) check_node "${2:-}" && cmd_kill "$2" ;;
  stop) check_node "${2:-}" && stop_pid "node $2" "$(node_dir "$2")/pid" 60 ;;
  pause) check_node "${2:-}" && kill -STOP "$(node_pid "$2")" && log "node $2: SIGSTOP" ;;
  resume) check_node "${2:-}" && kill -CONT "$(node_pid "$2")" && log "node $2: SIGCONT" ;;
  start) check_node "${2:-}" && cmd_start "$2" ;;
  *)
    sed -n '2,29s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
