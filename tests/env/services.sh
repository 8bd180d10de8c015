#!/usr/bin/env bash
# The local services binlog-tailer is run and tested against, all real, all on
# loopback, all started and stopped by this script (by PID, never by name):
#
#   MariaDB primary  127.0.0.1:13306   server_id 1, row-based binlog
#   MariaDB replica  127.0.0.1:13307   server_id 2, replicates from the primary by GTID
#   Apache Kafka     127.0.0.1:19092   KRaft, one node as broker and controller
#
# Usage: [BT_MARIADB=10.11|11.8] tests/env/services.sh install|up|down|status|clean
#   install  install what is missing (MariaDB of the chosen version, the Kafka jars)
#   up       install, then start whatever is not running, apply the schemas and
#            users, and wait until every service answers. Idempotent.
#   down     stop what `up` started, by PID, and wait for it to exit (the
#            services of every MariaDB version, whichever is chosen)
#   status   say what runs and which MariaDB version; exit 0 only if everything does
#   clean    down, then delete all service data
#
# BT_MARIADB picks the MariaDB version: 10.11 (the default, Debian 12's
# packages) or 11.8 (Debian 13's, from a chroot; see tests/env/mariadb.sh).
# State (data directories, logs, PID files) lives in $BT_STATE_DIR, by default
# target/services/<version>/ in the repository. Ports, users and passwords come
# from tests/env/defaults.env and can be overridden in the environment.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=defaults.env
. "$here/defaults.env"
state=${BT_STATE_DIR:-$repo/target/services/$BT_MARIADB}
kafka_libs=${BT_KAFKA_LIBS:-$repo/target/kafka-libs}
me=$(id -un)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes

# The PID recorded for a service, if that process is alive and is still ours
# (its command line names our state directory: a recycled PID is not ours).
# A process in the middle of an exec (MariaDB 11.8 starts through bash,
# unshare, sh and chroot, one exec after another) shows an empty command line
# for a moment: that is read again, not taken for another process.
live_pid() {
  local pidfile=$1 pid cmdline
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
  if [ -z "$cmdline" ]; then
    sleep 0.5
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
  fi
  grep -qF -- "$state" <<<"$cmdline" || return 1
  echo "$pid"
}

# Stop the process recorded in a PID file: SIGTERM, wait up to $2 seconds for a
# clean exit, then SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 grace=${3:-60} pid i
  if ! pid=$(live_pid "$pidfile"); then
    log "$name: not running"
    rm -f "$pidfile"
    return 0
  fi
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still running after ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

# Poll a condition (a command) every 0.2 s until it holds, the process in the
# PID file dies, or the timeout passes.
wait_until() {
  local what=$1 pidfile=$2 timeout=$3 logfile=$4
  shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$pidfile" >/dev/null; then
      tail -n 30 "$logfile" >&2 || true
      die "$what exited during start-up; its log is $logfile"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$logfile" >&2 || true
      die "$what did not become ready within ${timeout}s; its log is $logfile"
    fi
    sleep 0.2
  done
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- install

# Installs Debian packages, keeping them from starting system-wide services
# (we run our own instances). A policy-rc.d that is already there is left alone.
apt_install() {
  local recommends=--no-install-recommends
  if [ "${1:-}" = --with-recommends ]; then
    recommends=
    shift
  fi
  [ "$(id -u)" = 0 ] || die "missing packages: $*; run: sudo apt-get install $*"
  log "installing Debian packages: $*"
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $recommends "$@" >/dev/null; } || rc=$?
  [ -n "$made_policy" ] && rm -f "$policy"
  [ "$rc" = 0 ] || die "apt-get install $* failed (exit $rc)"
}

# Debian 12's MariaDB on the host, always: its client runs the SQL of these
# scripts and of the tests against either version. Then the chosen version's
# server (for 11.8, its chroot).
install_mariadb() {
  command -v mariadbd >/dev/null && command -v mariadb >/dev/null ||
    apt_install --with-recommends mariadb-server mariadb-client
  bash "$here/mariadb.sh" install
}

# A MariaDB server program of the chosen version, sharing the instance's
# directory with it (tests/env/mariadb.sh).
mariadb_exec() {
  local dir=$1
  shift
  bash "$here/mariadb.sh" exec "$dir" -- "$@"
}

# What the tests need besides the services: Prometheus and promtool (the
# dashboard and alert-rule test), docker-compose (checking docker/compose.yml;
# no engine runs here), openssl (the TLS test).
install_test_tools() {
  local missing=()
  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
}

install_kafka() {
  command -v java >/dev/null || die "java is not installed (Kafka 4.x needs Java 17 or newer); run: apt-get install openjdk-17-jre-headless"
  command -v mvn >/dev/null || die "mvn is not installed (it fetches Kafka from Maven Central); run: apt-get install maven"
  local stamp
  stamp=$(sha256sum "$here/kafka/pom.xml" | cut -d' ' -f1)
  if [ -f "$kafka_libs/.stamp" ] && [ "$(cat "$kafka_libs/.stamp")" = "$stamp" ]; then
    return 0
  fi
  log "fetching Kafka jars from Maven Central into $kafka_libs"
  rm -rf "$kafka_libs"
  mkdir -p "$kafka_libs"
  mvn -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -Dkafka.libs.dir="$kafka_libs" \
    >"$kafka_libs.mvn.log" 2>&1 ||
    { tail -n 40 "$kafka_libs.mvn.log" >&2; die "mvn could not fetch the Kafka jars (is Maven Central reachable?); see $kafka_libs.mvn.log"; }
  echo "$stamp" >"$kafka_libs/.stamp"
}

cmd_install() {
  install_mariadb
  install_kafka
  install_test_tools
}

# ---------------------------------------------------------------- MariaDB

# Run SQL on an instance as the local superuser, over its Unix socket.
sql() {
  local name=$1
  shift
  mariadb --no-defaults --socket="$state/$name/mariadb.sock" --user="$me" --batch --skip-column-names "$@"
}

write_mariadb_cnf() {
  local name=$1 port=$2 server_id=$3 dir=$state/$1
  {
    cat <<EOF
# Written by tests/env/services.sh; rewritten at every start.
[mariadbd]
user = $me
datadir = $dir/data
socket = $dir/mariadb.sock
pid-file = $dir/mariadb.pid
log-error = $dir/error.log
port = $port
bind-address = 127.0.0.1
skip-name-resolve

# What binlog-tailer needs (see README.md, "Server settings").
server_id = $server_id
log_bin = mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
binlog_checksum = CRC32
log_slave_updates = ON
gtid_strict_mode = ON

character_set_server = utf8mb4
collation_server = utf8mb4_unicode_ci
max_allowed_packet = 64M
max_connections = 300
# Small enough for a 2-core test machine running two servers and a broker.
innodb_buffer_pool_size = 256M
innodb_log_file_size = 128M
EOF
    if [ "$name" = replica ]; then
      cat <<EOF

# The replica: applies the primary's transactions, keeps their GTIDs in its own
# binlog (log_slave_updates), refuses writes from applications.
relay_log = relay-bin
read_only = ON
EOF
    fi
  } >"$dir/my.cnf"
}

start_mariadb() {
  local name=$1 port=$2 server_id=$3 dir=$state/$1 pid
  if pid=$(live_pid "$dir/pid"); then
    log "$name: already running (pid $pid)"
    return 0
  fi
  if tcp_open "$port"; then
    die "$name: port $port is taken by another process; free it or set BT_$(echo "$name" | tr a-z A-Z)_PORT"
  fi
  mkdir -p "$dir"
  write_mariadb_cnf "$name" "$port" "$server_id"
  if [ -d "$dir/data/mysql" ] && [ "$(cat "$dir/mariadb-version" 2>/dev/null)" != "$BT_MARIADB" ]; then
    die "$name: the data in $dir/data was made by MariaDB $(cat "$dir/mariadb-version" 2>/dev/null || echo "of another version"), not $BT_MARIADB; delete it (make services-clean) or set BT_STATE_DIR"
  fi
  if [ ! -d "$dir/data/mysql" ]; then
    log "$name: initialising $dir/data (MariaDB $(bash "$here/mariadb.sh" version))"
    rm -rf "$dir/data"
    echo "$BT_MARIADB" >"$dir/mariadb-version"
    mariadb_exec "$dir" mariadb-install-db --defaults-file="$dir/my.cnf" --auth-root-authentication-method=socket \
      --auth-root-socket-user="$me" --skip-test-db >"$dir/install.log" 2>&1 ||
      { tail -n 30 "$dir/install.log" >&2; die "$name: mariadb-install-db failed; see $dir/install.log"; }
  fi
  log "$name: starting on 127.0.0.1:$port"
  setsid bash "$here/mariadb.sh" exec "$dir" -- mariadbd --defaults-file="$dir/my.cnf" >>"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  wait_until "$name" "$dir/pid" 120 "$dir/error.log" sql "$name" -e 'SELECT 1'
}

# Users and schemas, applied on the primary; the replica gets them through
# replication. Every statement is idempotent.
bootstrap_primary() {
  log "primary: applying users and schemas/*.sql"
  sql primary <<EOF
CREATE USER IF NOT EXISTS '$BT_ADMIN_USER'@'127.0.0.1';
ALTER USER '$BT_ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$BT_ADMIN_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$BT_ADMIN_USER'@'127.0.0.1' WITH GRANT OPTION;

CREATE USER IF NOT EXISTS '$BT_REPL_USER'@'127.0.0.1';
ALTER USER '$BT_REPL_USER'@'127.0.0.1' IDENTIFIED BY '$BT_REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO '$BT_REPL_USER'@'127.0.0.1';
EOF
  sql primary <"$repo/schemas/orders.sql"
  sql primary <"$repo/schemas/payments.sql"
  sql primary <<EOF
CREATE USER IF NOT EXISTS '$BT_TAILER_USER'@'127.0.0.1';
ALTER USER '$BT_TAILER_USER'@'127.0.0.1' IDENTIFIED BY '$BT_TAILER_PASSWORD';
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '$BT_TAILER_USER'@'127.0.0.1';
GRANT SELECT ON shop.* TO '$BT_TAILER_USER'@'127.0.0.1';

CREATE USER IF NOT EXISTS '$BT_ORDERS_APP_USER'@'127.0.0.1';
ALTER USER '$BT_ORDERS_APP_USER'@'127.0.0.1' IDENTIFIED BY '$BT_ORDERS_APP_PASSWORD';
GRANT SELECT, INSERT ON shop.* TO '$BT_ORDERS_APP_USER'@'127.0.0.1';

CREATE USER IF NOT EXISTS '$BT_PAYMENTS_APP_USER'@'127.0.0.1';
ALTER USER '$BT_PAYMENTS_APP_USER'@'127.0.0.1' IDENTIFIED BY '$BT_PAYMENTS_APP_PASSWORD';
GRANT SELECT, INSERT, UPDATE, DELETE ON payments.* TO '$BT_PAYMENTS_APP_USER'@'127.0.0.1';
EOF
}

replica_status_field() {
  sql replica --column-names -e 'SHOW SLAVE STATUS\G' | sed -n "s/^ *$1: //p"
}

# Point the replica at the primary (once) and make sure replication runs.
configure_replica() {
  if [ -z "$(sql replica -e 'SHOW SLAVE STATUS')" ]; then
    log "replica: replicating from 127.0.0.1:$BT_PRIMARY_PORT by GTID"
    sql replica <<EOF
CHANGE MASTER TO
  MASTER_HOST = '127.0.0.1',
  MASTER_PORT = $BT_PRIMARY_PORT,
  MASTER_USER = '$BT_REPL_USER',
  MASTER_PASSWORD = '$BT_REPL_PASSWORD',
  MASTER_USE_GTID = slave_pos,
  MASTER_CONNECT_RETRY = 1;
EOF
  fi
  sql replica -e 'START SLAVE' 2>/dev/null || true
  # Wait until the replica has applied everything the primary has written.
  local pos waited
  pos=$(sql primary -e 'SELECT @@gtid_binlog_pos')
  waited=$(sql replica -e "SELECT MASTER_GTID_WAIT('$pos', 60)")
  if [ "$waited" != 0 ]; then
    log "replica: Slave_IO_Running=$(replica_status_field Slave_IO_Running) Slave_SQL_Running=$(replica_status_field Slave_SQL_Running)"
    log "replica: last IO error: $(replica_status_field Last_IO_Error)"
    log "replica: last SQL error: $(replica_status_field Last_SQL_Error)"
    die "replica did not reach the primary's GTID position '$pos' within 60s"
  fi
  log "replica: in sync with the primary at GTID $pos"
}

# ---------------------------------------------------------------- Kafka

kafka() { java -cp "$kafka_libs/*" "$@"; }

write_kafka_properties() {
  local dir=$state/kafka
  cat >"$dir/server.properties" <<EOF
# Written by tests/env/services.sh; rewritten at every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$BT_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$BT_KAFKA_PORT,CONTROLLER://127.0.0.1:$BT_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$BT_KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data

# Topics are created on purpose (by the tailer's preflight or a test), never
# by a typo in a producer's configuration.
auto.create.topics.enable=false
num.partitions=3

# One node: every internal topic has one replica, or groups and transactions hang.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=16777216
EOF
}

start_kafka() {
  local dir=$state/kafka pid
  if pid=$(live_pid "$dir/pid"); then
    log "kafka: already running (pid $pid)"
    return 0
  fi
  for port in "$BT_KAFKA_PORT" "$BT_KAFKA_CONTROLLER_PORT"; do
    if tcp_open "$port"; then
      die "kafka: port $port is taken by another process; free it or set BT_KAFKA_PORT / BT_KAFKA_CONTROLLER_PORT"
    fi
  done
  mkdir -p "$dir"
  write_kafka_properties
  if [ ! -f "$dir/data/meta.properties" ]; then
    format_kafka kafka "$dir" "$(kafka kafka.tools.StorageTool random-uuid)"
  fi
  spawn_kafka kafka "$dir" "$BT_KAFKA_PORT" 512m
  wait_kafka kafka "$dir" "$BT_KAFKA_PORT"
}

# The Kafka helpers below serve every broker these scripts run: the single
# one above and the three of tests/env/kafka-cluster.sh (which sources this
# file). Each node has a directory holding its server.properties, data/,
# kafka.log and pid.

# Formats a node's storage for cluster `id` (once; every node of a cluster
# must be formatted with the same id).
format_kafka() {
  local name=$1 dir=$2 cluster_id=$3
  log "$name: formatting $dir/data (cluster $cluster_id)"
  kafka kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" --ignore-formatted \
    >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "$name: formatting the storage failed"; }
}

# Starts a node in the background and records its PID; does not wait (the
# nodes of a cluster only finish starting once a quorum of them runs). The
# previous run's log is appended to kafka.log.old.
spawn_kafka() {
  local name=$1 dir=$2 port=$3 heap=$4
  log "$name: starting on 127.0.0.1:$port"
  if [ -s "$dir/kafka.log" ]; then
    cat "$dir/kafka.log" >>"$dir/kafka.log.old"
  fi
  : >"$dir/kafka.log"
  setsid java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" -Dkafka.logs.dir="$dir" \
    -cp "$kafka_libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

# Waits until a node logged that it started and answers on its port.
wait_kafka() {
  local name=$1 dir=$2 port=$3
  wait_until "$name" "$dir/pid" 120 "$dir/kafka.log" kafka_started "$dir" "$port"
}

kafka_started() {
  grep -q 'Kafka Server started' "$1/kafka.log" && tcp_open "$2"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  cmd_install
  mkdir -p "$state"
  start_mariadb primary "$BT_PRIMARY_PORT" 1
  start_mariadb replica "$BT_REPLICA_PORT" 2
  bootstrap_primary
  configure_replica
  start_kafka
  cat <<EOF

Services are up (state in $state):
  MariaDB primary  127.0.0.1:$BT_PRIMARY_PORT  mariadb -h127.0.0.1 -P$BT_PRIMARY_PORT -u$BT_ADMIN_USER -p$BT_ADMIN_PASSWORD
  MariaDB replica  127.0.0.1:$BT_REPLICA_PORT  mariadb -h127.0.0.1 -P$BT_REPLICA_PORT -u$BT_ADMIN_USER -p$BT_ADMIN_PASSWORD
  Kafka            127.0.0.1:$BT_KAFKA_PORT  (bootstrap.servers=127.0.0.1:$BT_KAFKA_PORT)
Users: $BT_ORDERS_APP_USER, $BT_TAILER_USER, $BT_PAYMENTS_APP_USER, $BT_ADMIN_USER (passwords in tests/env/defaults.env)
Stop them with: make services-down
EOF
}

# The services of one state directory.
down_state() {
  local state=$1
  # What `make demo` started, if anything, before what it depends on.
  stop_pid payment-service "$state/payment-service/pid" 30
  stop_pid order-service "$state/order-service/pid" 30
  stop_pid binlog-tailer "$state/tailer/pid" 60
  stop_pid kafka "$state/kafka/pid" 60
  stop_pid replica "$state/replica/pid" 120
  stop_pid primary "$state/primary/pid" 120
}

# Every version's services: they share the ports, so only one set can run,
# and `down` must stop it whichever BT_MARIADB says.
cmd_down() {
  local dir
  if [ -n "${BT_STATE_DIR:-}" ]; then
    down_state "$state"
    return
  fi
  for dir in "$repo"/target/services/*/; do
    [ -d "$dir" ] || continue
    dir=${dir%/}
    log "${dir#"$repo"/}:"
    down_state "$dir"
  done
}

cmd_status() {
  local all=0 pid name
  echo "MariaDB $BT_MARIADB (BT_MARIADB), state in $state"
  for name in primary replica kafka; do
    if pid=$(live_pid "$state/$name/pid"); then
      echo "$name: running (pid $pid)"
    else
      echo "$name: stopped"
      all=1
    fi
  done
  for name in primary replica; do
    if live_pid "$state/$name/pid" >/dev/null; then
      echo "$name: $(sql "$name" -e 'SELECT VERSION()')"
    fi
  done
  if live_pid "$state/replica/pid" >/dev/null; then
    echo "replica: Slave_IO_Running=$(replica_status_field Slave_IO_Running)" \
      "Slave_SQL_Running=$(replica_status_field Slave_SQL_Running)" \
      "Gtid_IO_Pos=$(replica_status_field Gtid_IO_Pos)"
  fi
  return $all
}

cmd_clean() {
  cmd_down
  if [ -n "${BT_STATE_DIR:-}" ]; then
    log "deleting $state"
    rm -rf "$state"
  else
    log "deleting $repo/target/services"
    rm -rf "$repo/target/services"
  fi
}

# Sourced (by tests/env/kafka-cluster.sh and tests/env/kafka-secure.sh) for
# its helpers only.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  *)
    sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
