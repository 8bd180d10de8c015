-- The payment service's own database: never in shop, never read by the order
-- service. Each OrderCreated event charges its order at most once:
-- payments.order_id and payments.event_id are both unique, and the payment
-- row is written in the same transaction that records the event id.
--
-- Idempotent: safe to apply again to a server that already has it.

CREATE DATABASE IF NOT EXISTS payments
  CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS payments.payments (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  order_id    BIGINT UNSIGNED NOT NULL,
  -- The CloudEvents id of the OrderCreated event that caused the charge.
  event_id    VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount      DECIMAL(12,2)   NOT NULL,
  currency    CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  charged_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY payments_one_per_order (order_id),
  UNIQUE KEY payments_one_per_event (event_id)
) ENGINE = InnoDB;
