-- The order service's own database. Applied on the primary; replicas get it
-- through replication. binlog-tailer publishes each inserted row of
-- shop.orders as an OrderCreated event (schemas/order_created.v1.json).
--
-- Idempotent: safe to apply again to a server that already has it.

CREATE DATABASE IF NOT EXISTS shop
  CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS shop.orders (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  customer_id BIGINT UNSIGNED NOT NULL,
  -- Exact money: never a float. Emitted by the tailer as a decimal string.
  amount      DECIMAL(12,2)   NOT NULL,
  -- ISO 4217 code, e.g. EUR.
  currency    CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status      ENUM('created', 'paid', 'cancelled') NOT NULL DEFAULT 'created',
  -- The ordered items as a JSON array. MariaDB's JSON is LONGTEXT plus a
  -- json_valid() check.
  items       JSON            NOT NULL,
  -- Wall-clock time of the order service, microsecond precision; no zone.
  created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY orders_by_customer (customer_id, created_at),
  CONSTRAINT orders_amount_not_negative CHECK (amount >= 0)
) ENGINE = InnoDB;
