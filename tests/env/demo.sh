#!/usr/bin/env bash
# `make demo`: the whole system on this machine.
#   1. bring the services up (MariaDB primary + replica, Kafka);
#   2. build the binaries; start binlog-tailer against the replica, the
#      order-service against the primary, and the payment-service on the
#      tailer's topic (they keep running; `make services-down` stops them);
#   3. post a few orders to the order-service with curl;
#   4. wait until the tailer has checkpointed them (every event acknowledged
#      by Kafka), print their OrderCreated events, and show the payment the
#      payment-service charged for each.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
. tests/env/defaults.env
state=${BT_STATE_DIR:-$repo/target/services/$BT_MARIADB}
kafka_libs=${BT_KAFKA_LIBS:-$repo/target/kafka-libs}
topic=shop.orders.v1

bash tests/env/services.sh up

echo
echo "== building binlog-tailer, order-service and payment-service (release)"
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$repo/target}/release

# Starts a background process once; its PID, log and files under $state/NAME
# (services.sh down stops it by that PID).
start_once() {
  local name=$1
  shift
  local dir=$state/$name pid
  mkdir -p "$dir"
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "== $name already running (pid $pid)"
    return 0
  fi
  echo "== starting $name (log: $dir/$name.log)"
  setsid "$@" >>"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

wait_http() { # name port
  local deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$2/healthz" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      tail -n 30 "$state/$1/$1.log" >&2
      echo "$1 did not answer on port $2 within 60 s" >&2
      exit 1
    fi
    sleep 0.2
  done
}

tailer_dir=$state/tailer
export BINLOG_TAILER_SOURCE_PASSWORD=$BT_TAILER_PASSWORD
tailer() {
  "$bin/binlog-tailer" --config "$repo/config/example.toml" --set "source.port=$BT_REPLICA_PORT" \
    --set "kafka.bootstrap_servers=\"127.0.0.1:$BT_KAFKA_PORT\"" \
    --set "checkpoint.dir=\"$tailer_dir/state\"" \
    --set "http.listen=\"127.0.0.1:$BT_TAILER_HTTP_PORT\"" "$@"
}
echo
echo "== preflight: binlog-tailer check"
tailer check
start_once tailer "$bin/binlog-tailer" --config "$repo/config/example.toml" --set "source.port=$BT_REPLICA_PORT" \
  --set "kafka.bootstrap_servers=\"127.0.0.1:$BT_KAFKA_PORT\"" \
  --set "checkpoint.dir=\"$tailer_dir/state\"" \
  --set "http.listen=\"127.0.0.1:$BT_TAILER_HTTP_PORT\"" run
wait_http tailer "$BT_TAILER_HTTP_PORT"

# The order service: its configuration is the shipped example with the
# local ports (written under $state, so services.sh recognises the process).
mkdir -p "$state/order-service"
sed -e "s/^port = 13306 /port = $BT_PRIMARY_PORT /" \
  -e "s/^listen = \"127.0.0.1:8080\"/listen = \"127.0.0.1:$BT_ORDER_SERVICE_PORT\"/" \
  "$repo/config/order-service.example.toml" >"$state/order-service/order-service.toml"
export ORDER_SERVICE_DB_PASSWORD=$BT_ORDERS_APP_PASSWORD
start_once order-service "$bin/order-service" --config "$state/order-service/order-service.toml"
wait_http order-service "$BT_ORDER_SERVICE_PORT"

# The payment service: its own database (payments), its consumer group; the
# dead-letter topic must exist before it starts.
java -cp "$kafka_libs/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$BT_KAFKA_PORT" \
  --create --if-not-exists --topic "$topic.dlq" --partitions 3 --replication-factor 1 >/dev/null
mkdir -p "$state/payment-service"
sed -e "s/^port = 13306$/port = $BT_PRIMARY_PORT/" \
  -e "s/^bootstrap_servers = \"127.0.0.1:19092\"/bootstrap_servers = \"127.0.0.1:$BT_KAFKA_PORT\"/" \
  -e "s/^listen = \"127.0.0.1:9188\"/listen = \"127.0.0.1:$BT_PAYMENT_SERVICE_PORT\"/" \
  "$repo/config/payment-service.example.toml" >"$state/payment-service/payment-service.toml"
export PAYMENT_SERVICE_DB_PASSWORD=$BT_PAYMENTS_APP_PASSWORD
start_once payment-service "$bin/payment-service" --config "$state/payment-service/payment-service.toml"
wait_http payment-service "$BT_PAYMENT_SERVICE_PORT"

echo
echo "== three orders posted to the order-service (it writes only to MariaDB)"
ids=()
for body in \
  '{"customer_id": 42, "amount": "19.99", "currency": "EUR", "items": [{"sku": "book-1", "qty": 1}]}' \
  '{"customer_id": 7, "amount": "250.00", "currency": "USD", "items": [{"sku": "desk", "qty": 1}]}' \
  '{"customer_id": 42, "amount": "3.50", "currency": "EUR", "items": [{"sku": "pen", "qty": 5}]}'; do
  echo "\$ curl -X POST http://127.0.0.1:$BT_ORDER_SERVICE_PORT/orders -d '$body'"
  response=$(curl -fsS -X POST "http://127.0.0.1:$BT_ORDER_SERVICE_PORT/orders" \
    -H 'Content-Type: application/json' -d "$body")
  echo "$response"
  ids+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$response")")
done
echo "\$ curl -X POST http://127.0.0.1:$BT_ORDER_SERVICE_PORT/orders -d '{\"customer_id\": 1, \"amount\": \"-5\", ...}'"
curl -sS -X POST "http://127.0.0.1:$BT_ORDER_SERVICE_PORT/orders" -H 'Content-Type: application/json' \
  -d '{"customer_id": 1, "amount": "-5", "currency": "EUR", "items": [{"sku": "x", "qty": 1}]}' \
  -w ' (HTTP %{http_code})\n'

# The primary's position after those commits: once the tailer's checkpoint
# covers it, every event before it is acknowledged by Kafka.
gtid=$(mariadb --no-defaults -h127.0.0.1 -P"$BT_PRIMARY_PORT" -u"$BT_ADMIN_USER" -p"$BT_ADMIN_PASSWORD" -N \
  -e 'SELECT @@gtid_binlog_pos')
echo
echo "== waiting for binlog-tailer to checkpoint $gtid"
deadline=$((SECONDS + 60))
until tailer checkpoint show --format json 2>/dev/null | python3 -c '
import json, sys
want = {int(g.split("-")[0]): int(g.split("-")[2]) for g in sys.argv[1].split(",") if g}
have = {int(g.split("-")[0]): int(g.split("-")[2]) for g in json.load(sys.stdin)["gtid"].split(",") if g}
sys.exit(0 if all(have.get(d, -1) >= s for d, s in want.items()) else 1)' "$gtid" 2>/dev/null; do
  if ! kill -0 "$(cat "$tailer_dir/pid")" 2>/dev/null; then
    tail -n 30 "$tailer_dir/tailer.log" >&2
    echo "binlog-tailer exited; its log is above" >&2
    exit 1
  fi
  if ((SECONDS > deadline)); then
    tail -n 30 "$tailer_dir/tailer.log" >&2
    echo "binlog-tailer did not checkpoint $gtid within 60 s" >&2
    exit 1
  fi
  sleep 0.2
done
tailer checkpoint show

echo
echo "== their OrderCreated events in Kafka topic $topic (key, then the CloudEvents JSON)"
pattern=$(printf '"subject":"%s",|' "${ids[@]}")
java -cp "$kafka_libs/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
  --bootstrap-server "127.0.0.1:$BT_KAFKA_PORT" --topic "$topic" --from-beginning --timeout-ms 8000 \
  --property print.key=true --property key.separator=' ' 2>/dev/null |
  grep -E "${pattern%|}" || { echo "no events for orders ${ids[*]} in $topic" >&2; exit 1; }

echo
echo "== their payments, charged by the payment-service into its own database"
for id in "${ids[@]}"; do
  deadline=$((SECONDS + 60))
  until payment=$(curl -fsS "http://127.0.0.1:$BT_PAYMENT_SERVICE_PORT/payments/$id" 2>/dev/null); do
    if ((SECONDS > deadline)); then
      tail -n 30 "$state/payment-service/payment-service.log" >&2
      echo "no payment for order $id within 60 s" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "\$ curl http://127.0.0.1:$BT_PAYMENT_SERVICE_PORT/payments/$id"
  echo "$payment"
done

echo
echo "== the tailer's readiness and a few of its metrics"
curl -sS "http://127.0.0.1:$BT_TAILER_HTTP_PORT/readyz"
curl -sS "http://127.0.0.1:$BT_TAILER_HTTP_PORT/metrics" |
  grep -E '^binlog_tailer_(events_published_total|replication_lag_seconds|checkpoint_age_seconds|source_connected|broker_connected)[ {]'

echo
echo "Running (stop everything with: make services-down):"
echo "  binlog-tailer  pid $(cat "$tailer_dir/pid"), http://127.0.0.1:$BT_TAILER_HTTP_PORT/metrics, log $tailer_dir/tailer.log"
echo "  order-service  pid $(cat "$state/order-service/pid"), http://127.0.0.1:$BT_ORDER_SERVICE_PORT, log $state/order-service/order-service.log"
echo "  payment-service pid $(cat "$state/payment-service/pid"), http://127.0.0.1:$BT_PAYMENT_SERVICE_PORT, log $state/payment-service/payment-service.log"
echo "Post an order and watch its event arrive:"
echo "  curl -X POST http://127.0.0.1:$BT_ORDER_SERVICE_PORT/orders -H 'Content-Type: application/json' \\"
echo "    -d '{\"customer_id\": 1, \"amount\": \"9.99\", \"currency\": \"EUR\", \"items\": [{\"sku\": \"tea\", \"qty\": 2}]}'"
echo "  java -cp '$kafka_libs/*' org.apache.kafka.tools.consumer.ConsoleConsumer \\"
echo "    --bootstrap-server 127.0.0.1:$BT_KAFKA_PORT --topic $topic --from-beginning"
echo "  curl http://127.0.0.1:$BT_PAYMENT_SERVICE_PORT/payments/<order id>"
