# shellcheck shell=bash
# The primary's first start: sourced (not executed: keep this file
# non-executable) by the mariadb image's entrypoint from
# /docker-entrypoint-initdb.d, with its temporary server up and its
# docker_process_sql function at hand.
#
# The same users, privileges and schemas as tests/env/services.sh
# (bootstrap_primary) gives the local primary, in the same order; the only
# difference is the host part: '%' (any container of the compose network)
# instead of '127.0.0.1'. These statements go into the primary's binlog, so
# the replica receives them through replication, as with the local services.
# The BT_* variables come from docker/compose.yml (defaults as in
# tests/env/defaults.env).

docker_process_sql <<SQL
CREATE USER IF NOT EXISTS '$BT_ADMIN_USER'@'%';
ALTER USER '$BT_ADMIN_USER'@'%' IDENTIFIED BY '$BT_ADMIN_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$BT_ADMIN_USER'@'%' WITH GRANT OPTION;

CREATE USER IF NOT EXISTS '$BT_REPL_USER'@'%';
ALTER USER '$BT_REPL_USER'@'%' IDENTIFIED BY '$BT_REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO '$BT_REPL_USER'@'%';
SQL

docker_process_sql </schemas/orders.sql
docker_process_sql </schemas/payments.sql

docker_process_sql <<SQL
CREATE USER IF NOT EXISTS '$BT_TAILER_USER'@'%';
ALTER USER '$BT_TAILER_USER'@'%' IDENTIFIED BY '$BT_TAILER_PASSWORD';
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '$BT_TAILER_USER'@'%';
GRANT SELECT ON shop.* TO '$BT_TAILER_USER'@'%';

CREATE USER IF NOT EXISTS '$BT_ORDERS_APP_USER'@'%';
ALTER USER '$BT_ORDERS_APP_USER'@'%' IDENTIFIED BY '$BT_ORDERS_APP_PASSWORD';
GRANT SELECT, INSERT ON shop.* TO '$BT_ORDERS_APP_USER'@'%';

CREATE USER IF NOT EXISTS '$BT_PAYMENTS_APP_USER'@'%';
ALTER USER '$BT_PAYMENTS_APP_USER'@'%' IDENTIFIED BY '$BT_PAYMENTS_APP_PASSWORD';
GRANT SELECT, INSERT, UPDATE, DELETE ON payments.* TO '$BT_PAYMENTS_APP_USER'@'%';
SQL
