# shellcheck shell=bash
# The replica's first start: sourced (not executed: keep this file
# non-executable) by the mariadb image's entrypoint from
# /docker-entrypoint-initdb.d, with its temporary server up.
#
# Points the replica at the primary by GTID, as tests/env/services.sh
# (configure_replica) does for the local replica. Users and schemas are not
# created here: they arrive from the primary through replication.

docker_process_sql <<SQL
-- The replica's own binlog must hold no transaction of its own: with
-- gtid_strict_mode, a local GTID in domain 0 would make the primary's
-- 0-1-1, 0-1-2, ... out of order and stop replication. The image's own
-- set-up is not binlogged; this makes sure of it.
RESET MASTER;
CHANGE MASTER TO
  MASTER_HOST = '$BT_PRIMARY_HOST',
  MASTER_PORT = 3306,
  MASTER_USER = '$BT_REPL_USER',
  MASTER_PASSWORD = '$BT_REPL_PASSWORD',
  MASTER_USE_GTID = slave_pos,
  MASTER_CONNECT_RETRY = 1;
START SLAVE;
SQL
