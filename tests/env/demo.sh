#!/usr/bin/env bash
# `make demo`: the main job on this machine.
#   1. bring the services up (MariaDB primary + replica, Kafka);
#   2. build binlog-tailer and start it against the replica, with
#      config/example.toml (it keeps running; `make services-down` stops it);
#   3. insert a few orders on the primary as the order service's user;
#   4. wait until the tailer has checkpointed them (so the broker has
#      acknowledged every event), and print their events from Kafka.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
. tests/env/defaults.env
state=${BT_STATE_DIR:-$repo/target/services}
kafka_libs=${BT_KAFKA_LIBS:-$repo/target/kafka-libs}
tailer_dir=$state/tailer
config=$repo/config/example.toml
topic=shop.orders.v1

bash tests/env/services.sh up

echo
echo "== building binlog-tailer"
cargo build --release --locked --bin binlog-tailer
bin=${CARGO_TARGET_DIR:-$repo/target}/release/binlog-tailer

export BINLOG_TAILER_SOURCE_PASSWORD=$BT_TAILER_PASSWORD
tailer() {
  "$bin" --config "$config" --set "source.port=$BT_REPLICA_PORT" \
    --set "kafka.bootstrap_servers=\"127.0.0.1:$BT_KAFKA_PORT\"" \
    --set "checkpoint.dir=\"$tailer_dir/state\"" "$@"
}

mkdir -p "$tailer_dir"
pid=$(cat "$tailer_dir/pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  echo "== binlog-tailer already running (pid $pid)"
else
  echo
  echo "== preflight: binlog-tailer check"
  tailer check
  echo
  echo "== starting binlog-tailer run (log: $tailer_dir/tailer.log)"
  setsid "$bin" --config "$config" --set "source.port=$BT_REPLICA_PORT" \
    --set "kafka.bootstrap_servers=\"127.0.0.1:$BT_KAFKA_PORT\"" \
    --set "checkpoint.dir=\"$tailer_dir/state\"" run >>"$tailer_dir/tailer.log" 2>&1 </dev/null &
  echo $! >"$tailer_dir/pid"
fi

echo
echo "== three orders inserted on the primary as $BT_ORDERS_APP_USER (the order service's user)"
gtid=$(mariadb --no-defaults -h127.0.0.1 -P"$BT_PRIMARY_PORT" -u"$BT_ORDERS_APP_USER" -p"$BT_ORDERS_APP_PASSWORD" -N -e "
  INSERT INTO shop.orders (customer_id, amount, currency, items) VALUES
    (42, '19.99', 'EUR', '[{\"sku\":\"book-1\",\"qty\":1}]'),
    (7, '250.00', 'USD', '[{\"sku\":\"desk\",\"qty\":1}]'),
    (42, '3.50', 'EUR', '[{\"sku\":\"pen\",\"qty\":5}]');
  SELECT @@last_gtid;")
echo "committed as GTID $gtid"

echo
echo "== waiting for the tailer to checkpoint $gtid (every event acknowledged by Kafka)"
seq=${gtid##*-}
domain=${gtid%%-*}
deadline=$((SECONDS + 60))
until tailer checkpoint show --format json 2>/dev/null |
  python3 -c "import json,sys; g=json.load(sys.stdin)['gtid']; sys.exit(0 if any(p.split('-')[0]=='$domain' and int(p.split('-')[2])>=$seq for p in g.split(',') if p) else 1)" 2>/dev/null; do
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
java -cp "$kafka_libs/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
  --bootstrap-server "127.0.0.1:$BT_KAFKA_PORT" --topic "$topic" --from-beginning --timeout-ms 8000 \
  --property print.key=true --property key.separator=' ' 2>/dev/null |
  grep -F "\"binloggtid\":\"$gtid\"" || { echo "no events for $gtid in $topic" >&2; exit 1; }

cat <<EOF

binlog-tailer keeps streaming from the replica (pid $(cat "$tailer_dir/pid"), log $tailer_dir/tailer.log).
Insert more orders on the primary and watch them arrive:
  mariadb -h127.0.0.1 -P$BT_PRIMARY_PORT -u$BT_ORDERS_APP_USER -p$BT_ORDERS_APP_PASSWORD \\
    -e "INSERT INTO shop.orders (customer_id, amount, currency, items) VALUES (1, '9.99', 'EUR', '[]')"
  java -cp '$kafka_libs/*' org.apache.kafka.tools.consumer.ConsoleConsumer \\
    --bootstrap-server 127.0.0.1:$BT_KAFKA_PORT --topic $topic --from-beginning
Stop everything with: make services-down
EOF
