#!/usr/bin/env bash
# A single Kafka broker with secured listeners, for tests/kafka_secure.rs:
#
#   SASL_SSL   127.0.0.1:$BT_SECURE_KAFKA_PORT           PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
#   SSL        127.0.0.1:$BT_SECURE_KAFKA_MTLS_PORT      a client certificate is required
#   PLAINTEXT  127.0.0.1:$BT_SECURE_KAFKA_INTERNAL_PORT  between brokers, and the tests' own reads
#   CONTROLLER 127.0.0.1:$BT_SECURE_KAFKA_CONTROLLER_PORT
#
# Usage: tests/env/kafka-secure.sh up|down DIR
#   up    make certificates and users in DIR (once), start the broker, wait
#         until its SASL_SSL listener accepts connections
#   down  stop the broker started in DIR, by its PID, and wait for it to exit
#
# In DIR/certs, made with openssl: ca.pem (the CA that signed the broker's and
# the client's certificates), broker.pem (the broker's key and certificate,
# for 127.0.0.1 and localhost), client.pem and client.key (a client
# certificate), other-ca.pem (a CA that signed nothing here: not trusted).
# Users: $BT_SECURE_KAFKA_SCRAM_USER (SCRAM-SHA-256 and SCRAM-SHA-512) and
# $BT_SECURE_KAFKA_PLAIN_USER (PLAIN), both with the password in
# $BT_SECURE_KAFKA_PASSWORD. Ports from tests/env/defaults.env. The Kafka
# jars and the process functions are those of tests/env/services.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  sed -n '2,21s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# services.sh's functions (live_pid, stop_pid, wait_until, spawn_kafka,
# install_kafka, …), with this broker's directory as their state: a PID is
# taken for ours only when its command line names this directory.
# shellcheck source=services.sh
. "$here/services.sh"
state=$dir

BT_SECURE_KAFKA_SCRAM_USER=${BT_SECURE_KAFKA_SCRAM_USER:-btscram}
BT_SECURE_KAFKA_PLAIN_USER=${BT_SECURE_KAFKA_PLAIN_USER:-btplain}
BT_SECURE_KAFKA_PASSWORD=${BT_SECURE_KAFKA_PASSWORD:-kafka-secure-local}

log() { printf '[kafka-secure] %s\n' "$*" >&2; }

ssl() { openssl "$@" >>"$dir/certs/openssl.log" 2>&1 || die "openssl $1 failed; see $dir/certs/openssl.log"; }

# A CA, a certificate signed by it for the broker (127.0.0.1, localhost), one
# for a client, and a second CA that nobody here trusts.
make_certificates() {
  local c=$dir/certs
  [ -f "$c/done" ] && return 0
  rm -rf "$c"
  mkdir -p "$c"
  ssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=binlog-tailer test CA" -keyout "$c/ca.key" -out "$c/ca.pem"
  ssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=an untrusted CA" -keyout "$c/other-ca.key" -out "$c/other-ca.pem"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$c/broker.ext"
  ssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$c/broker.key" -out "$c/broker.csr"
  ssl x509 -req -in "$c/broker.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" -CAcreateserial -days 3 \
    -extfile "$c/broker.ext" -out "$c/broker.crt"
  ssl req -newkey rsa:2048 -nodes -subj "/CN=binlog-tailer-client" -keyout "$c/client.key" -out "$c/client.csr"
  ssl x509 -req -in "$c/client.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" -CAcreateserial -days 3 -out "$c/client.pem"
  # The broker reads its key and certificate from one PEM file (PKCS#8 key).
  ssl pkcs8 -topk8 -nocrypt -in "$c/broker.key" -out "$c/broker.pk8"
  cat "$c/broker.pk8" "$c/broker.crt" >"$c/broker.pem"
  chmod 600 "$c"/*.key "$c"/*.pk8 "$c/broker.pem"
  touch "$c/done"
}

write_properties() {
  cat >"$dir/server.properties" <<EOF
# Written by tests/env/kafka-secure.sh; rewritten at every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$BT_SECURE_KAFKA_CONTROLLER_PORT
listeners=INTERNAL://127.0.0.1:$BT_SECURE_KAFKA_INTERNAL_PORT,SECURE://127.0.0.1:$BT_SECURE_KAFKA_PORT,MTLS://127.0.0.1:$BT_SECURE_KAFKA_MTLS_PORT,CONTROLLER://127.0.0.1:$BT_SECURE_KAFKA_CONTROLLER_PORT
advertised.listeners=INTERNAL://127.0.0.1:$BT_SECURE_KAFKA_INTERNAL_PORT,SECURE://127.0.0.1:$BT_SECURE_KAFKA_PORT,MTLS://127.0.0.1:$BT_SECURE_KAFKA_MTLS_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL
inter.broker.listener.name=INTERNAL
log.dirs=$dir/data

ssl.keystore.type=PEM
ssl.keystore.location=$dir/certs/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/certs/ca.pem
listener.name.mtls.ssl.client.auth=required

listener.name.secure.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.secure.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$BT_SECURE_KAFKA_PLAIN_USER="$BT_SECURE_KAFKA_PASSWORD";
listener.name.secure.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

auto.create.topics.enable=false
num.partitions=3
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
  chmod 600 "$dir/server.properties"
}

cmd_up() {
  local pid port cluster_id
  if pid=$(live_pid "$dir/pid"); then
    log "already running (pid $pid)"
    return 0
  fi
  install_kafka
  command -v openssl >/dev/null || apt_install openssl
  for port in "$BT_SECURE_KAFKA_PORT" "$BT_SECURE_KAFKA_MTLS_PORT" "$BT_SECURE_KAFKA_INTERNAL_PORT" "$BT_SECURE_KAFKA_CONTROLLER_PORT"; do
    tcp_open "$port" && die "port $port is taken by another process; free it or set the BT_SECURE_KAFKA_*_PORT variables"
  done
  make_certificates
  write_properties
  if [ ! -f "$dir/data/meta.properties" ]; then
    cluster_id=$(kafka kafka.tools.StorageTool random-uuid)
    log "formatting $dir/data (cluster $cluster_id) with the SCRAM users"
    kafka kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" --ignore-formatted \
      --add-scram "SCRAM-SHA-256=[name=$BT_SECURE_KAFKA_SCRAM_USER,password=$BT_SECURE_KAFKA_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$BT_SECURE_KAFKA_SCRAM_USER,password=$BT_SECURE_KAFKA_PASSWORD]" \
      >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting the storage failed"; }
  fi
  log "listeners: SASL_SSL 127.0.0.1:$BT_SECURE_KAFKA_PORT, SSL (client certificate) 127.0.0.1:$BT_SECURE_KAFKA_MTLS_PORT, PLAINTEXT 127.0.0.1:$BT_SECURE_KAFKA_INTERNAL_PORT"
  spawn_kafka kafka-secure "$dir" "$BT_SECURE_KAFKA_PORT" 512m
  wait_kafka kafka-secure "$dir" "$BT_SECURE_KAFKA_PORT"
  log "up (pid $(cat "$dir/pid"))"
}

case "$cmd" in
  up) cmd_up ;;
  down) stop_pid kafka-secure "$dir/pid" 60 ;;
  *)
    sed -n '2,21s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
