#!/usr/bin/env bash
# `make demo`: bring the services up and push a few orders through them.
#
# Until the tailer exists this is a smoke check of the ground it stands on:
# orders inserted on the primary by the order service's user, read back on the
# replica under the primary's GTIDs, and a message through Kafka.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
. tests/env/defaults.env
kafka_libs=${BT_KAFKA_LIBS:-$repo/target/kafka-libs}

bash tests/env/services.sh up

db() { # server-port user password sql
  mariadb --no-defaults -h127.0.0.1 -P"$1" -u"$2" -p"$3" --table -e "$4"
}

echo
echo "== three orders inserted on the primary as $BT_ORDERS_APP_USER"
gtid=$(mariadb --no-defaults -h127.0.0.1 -P"$BT_PRIMARY_PORT" -u"$BT_ORDERS_APP_USER" -p"$BT_ORDERS_APP_PASSWORD" -N -e "
  INSERT INTO shop.orders (customer_id, amount, currency, items) VALUES
    (42, '19.99', 'EUR', '[{\"sku\":\"book-1\",\"qty\":1}]'),
    (7, '250.00', 'USD', '[{\"sku\":\"desk\",\"qty\":1}]'),
    (42, '3.50', 'EUR', '[{\"sku\":\"pen\",\"qty\":5}]');
  SELECT @@last_gtid;")
echo "committed as GTID $gtid"

echo
echo "== the same orders on the replica"
mariadb --no-defaults -h127.0.0.1 -P"$BT_REPLICA_PORT" -u"$BT_ADMIN_USER" -p"$BT_ADMIN_PASSWORD" -N \
  -e "SELECT MASTER_GTID_WAIT('$gtid', 30)" | grep -qx 0 || { echo "replica did not apply $gtid" >&2; exit 1; }
db "$BT_REPLICA_PORT" "$BT_TAILER_USER" "$BT_TAILER_PASSWORD" \
  "SELECT id, customer_id, amount, currency, status, items, created_at FROM shop.orders ORDER BY id DESC LIMIT 3"
echo "replica binlog position: $(mariadb --no-defaults -h127.0.0.1 -P"$BT_REPLICA_PORT" -u"$BT_TAILER_USER" -p"$BT_TAILER_PASSWORD" -N -e 'SELECT @@gtid_binlog_pos')"

echo
echo "== a message through Kafka"
topic=demo.smoke
java -cp "$kafka_libs/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$BT_KAFKA_PORT" \
  --create --if-not-exists --topic "$topic" --partitions 1 --replication-factor 1 >/dev/null
msg="hello from make demo at $(date -u +%FT%TZ)"
echo "$msg" |
  java -cp "$kafka_libs/*" org.apache.kafka.tools.ConsoleProducer --bootstrap-server "127.0.0.1:$BT_KAFKA_PORT" \
    --topic "$topic" --producer-property acks=all
java -cp "$kafka_libs/*" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "127.0.0.1:$BT_KAFKA_PORT" \
  --topic "$topic" --from-beginning --timeout-ms 10000 2>/dev/null | grep -F "$msg"

echo
echo "The services keep running; stop them with: make services-down"
