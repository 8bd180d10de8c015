//! The payment service: consumes `OrderCreated` events from Kafka in a
//! consumer group and charges each order exactly once into its own MariaDB
//! database.
//!
//! ```text
//! Kafka kafka.topic ──▶ consumer ─▶ event::parse ─▶ store::charge_batch ──▶ MariaDB <database>.payments
//!   (group kafka.group_id)          │ invalid          (one transaction per batch)
//!                                   └──▶ dead_letter ──acks=all──▶ kafka.dead_letter_topic
//!          offset stored/committed only after the row is committed or the dead letter acknowledged
//! ```
//!
//! # Consumes
//! Messages of `kafka.topic` (default `shop.orders.v1`), `read_committed`,
//! from the earliest offset for a new group: the structured-mode CloudEvents
//! JSON binlog-tailer publishes (`schemas/order_created.v1.json`), type
//! `shop.order.created.v1`. What is checked is in [`event`].
//!
//! # Emits
//! - One row per order in `<database.database>.payments` (`schemas/payments.sql`):
//!   `order_id` = `data.id`, `event_id` = the CloudEvents `id`, `amount` =
//!   `data.amount` exactly (decimal text into `DECIMAL(12,2)`, never a
//!   float), `currency` = `data.currency`, `charged_at` (UTC). Both
//!   `order_id` and `event_id` are unique keys, and the row is the record
//!   of the event id: each row goes in with its event id, and the rows of a
//!   batch of messages (up to `kafka.batch_max_messages`) in one
//!   transaction ([`store`], [`consumer`]).
//! - Dead letters in `kafka.dead_letter_topic` (default
//!   `shop.orders.v1.dlq`) for messages it cannot process: the original key,
//!   payload and headers plus `dlq.reason`, `dlq.source.topic`,
//!   `dlq.source.partition`, `dlq.source.offset`, `dlq.consumer.group`
//!   ([`dead_letter`]).
//! - HTTP on `http.listen` (default `127.0.0.1:9188`): `GET
//!   /payments/{order_id}`, `/metrics`, `/healthz`, `/readyz` ([`http`]).
//!
//! # Guarantees
//! 1. **Charged at most once.** A duplicated message, a replayed event (same
//!    id) or a second event for the same order hits a unique key
//!    (`ER_DUP_ENTRY`): nothing is charged, the message counts as
//!    `duplicate`, and its offset moves on. (An event whose id already
//!    charged a *different* order is dead-lettered instead: that order would
//!    otherwise never be charged.)
//! 2. **Nothing lost.** A message's offset is stored only after its payment
//!    row is committed (with the rest of its batch) or its dead letter
//!    acknowledged (`acks=all`), and after every message before it in its
//!    partition; only stored offsets are ever committed ([`consumer`]). A crash, even
//!    SIGKILL, resumes at or before the first message without a durable
//!    outcome; what is read again is found already charged.
//! 3. **Order per partition.** Messages are processed in batches, each
//!    batch judged in partition order as if one message at a time (of two
//!    events for one order, the first is charged); a batch that cannot be
//!    charged yet (database down) holds back the messages after it rather
//!    than being skipped.
//! 4. **Exact amounts.** The amount charged is the event's decimal text.
//! 5. **Snapshot records never charge twice.** A snapshot record (the event
//!    has `binlogsnapshot`: binlog-tailer read the order as it stood rather
//!    than seeing its insert) has an id of its own, but the order is the
//!    unique key: with `kafka.snapshot_records = "charge"` (default) it
//!    charges an order no payment holds yet and is a `duplicate` otherwise,
//!    whether its live event came before or comes after; with `"skip"` it
//!    charges nothing (`snapshot_skipped`), for a service whose historical
//!    orders were charged elsewhere.
//!
//! Dead letters are at-least-once: a crash between a dead letter's
//! acknowledgement and the offset commit writes it again on restart.
//!
//! # Errors
//! - Invalid message (not JSON, wrong `type`, a missing or malformed field, a
//!   negative amount, no payload), a row the table refuses (a value that
//!   does not fit), or an event id already used by another order:
//!   dead-lettered, and processing continues.
//! - Database unreachable, timeouts, lock waits, missing privileges:
//!   transient. The charge (the batch's transaction) is retried with
//!   backoff (`database.retry_backoff_min` … `_max`) until it succeeds; the
//!   offsets do not move. `/healthz` stays 200, `/readyz` answers 503 naming the
//!   problem, `payment_service_db_errors_total` counts the attempts.
//!   While a charge waits, the consumer is not polled: the lag and
//!   partition gauges stand still, and after `max.poll.interval.ms`
//!   (librdkafka default 5 min) the consumer leaves the group and rejoins
//!   when the database is back; the partitions' messages since the last
//!   commit are then read again (by it or another member) and found already
//!   charged.
//! - Dead-letter topic unavailable: retried the same way.
//! - At start: a configuration error, or a topic (or the dead-letter topic)
//!   the broker says does not exist, stops the service
//!   ([`ServiceError`]); a broker that does not answer does not.
//! - Fatal consumer or producer errors (librdkafka's fatal state) stop it.
//!
//! # Restart and shutdown
//! On SIGINT/SIGTERM the batch being processed is finished (its
//! transaction is never cut), its offsets stored, the stored offsets
//! committed synchronously, and [`run`] returns [`Outcome::Clean`] (exit 0):
//! the next start repeats nothing. If the signal comes while a batch (or a
//! message) waits for a retry (database down), the service stops without
//! it ([`Outcome::Interrupted`], exit 4); its offsets are not stored and it
//! is processed on the next start. After a crash the group resumes from the last committed offsets
//! (at most `kafka.commit_interval` of messages repeated, each found already
//! charged).
//!
//! # Metrics
//! Names in [`METRIC_NAMES`]; types, units and labels in [`metrics::Metrics`].
//! Label sets are bounded (three outcomes, six dead-letter reasons).
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `payment_service_events_total{outcome}` | counter | messages processed to the end: `charged`, `duplicate`, `dead_lettered` |
//! | `payment_service_dead_letters_total{reason}` | counter | dead letters by reason: `no_payload`, `not_json`, `wrong_type`, `schema`, `rejected_by_database`, `event_id_conflict` |
//! | `payment_service_db_errors_total` | counter | failed database attempts (charges retried, lookups, pings) |
//! | `payment_service_db_up` | gauge | 1 while the database answers the health ping |
//! | `payment_service_broker_connected` | gauge | 1 while the consumer has a broker connection |
//! | `payment_service_consumer_lag_messages` | gauge | messages not processed yet in this instance's partitions |
//! | `payment_service_assigned_partitions` | gauge | partitions assigned to this instance |
//! | `payment_service_offset_commit_errors_total` | counter | failed offset commits (messages repeat, charging nothing) |
//! | `payment_service_dead_letter_errors_total` | counter | failed dead-letter delivery attempts (retried) |
//! | `payment_service_consumer_errors_total` | counter | errors the consumer reported while fetching |
//! | `payment_service_processing_seconds` | histogram | message received → outcome durable (for a batch: the batch received → the message's outcome durable) |
//! | `payment_service_batch_messages` | histogram | messages per batch |
//! | `payment_service_batch_fallbacks_total` | counter | batches charged one message per transaction instead (a row refused, or a key taken by another writer meanwhile) |
//! | `payment_service_last_processed_timestamp_seconds` | gauge | when the last message was processed (Unix seconds) |
//! | `payment_service_ready` | gauge | what `/readyz` last answered |
//! | `payment_service_build_info{version}` | gauge | always 1 |

pub mod config;
pub mod consumer;
pub mod dead_letter;
mod error;
pub mod event;
pub mod http;
pub mod metrics;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::sync::watch;

pub use config::{ConfigError, PaymentConfig};
pub use error::{Outcome, ServiceError};
use metrics::Metrics;
use store::Store;

/// Every metric name the service exports (histograms by their base name).
pub const METRIC_NAMES: &[&str] = &[
    "payment_service_build_info",
    "payment_service_events_total",
    "payment_service_dead_letters_total",
    "payment_service_db_errors_total",
    "payment_service_db_up",
    "payment_service_broker_connected",
    "payment_service_consumer_lag_messages",
    "payment_service_assigned_partitions",
    "payment_service_offset_commit_errors_total",
    "payment_service_dead_letter_errors_total",
    "payment_service_consumer_errors_total",
    "payment_service_processing_seconds",
    "payment_service_batch_messages",
    "payment_service_batch_fallbacks_total",
    "payment_service_last_processed_timestamp_seconds",
    "payment_service_ready",
];

/// Runs the service until `shutdown` turns true (or a fatal error).
///
/// # Errors
/// [`ServiceError`]: configuration, the HTTP address, a missing topic, or a
/// fatal Kafka client error. Database outages are not errors: they are
/// retried.
pub async fn run(
    config: PaymentConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Outcome, ServiceError> {
    let password = config.database_password()?;
    let metrics = Arc::new(Metrics::new());
    let store = Store::new(&config.database, &password);

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| ServiceError::Listen {
            addr: config.http.listen,
            source,
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /payments/{{order_id}}, /metrics, /healthz and /readyz on http://{addr}");
    }

    let dead_letters = dead_letter::DeadLetters::new(&config.kafka, Arc::clone(&metrics))?;
    let consumer = Arc::new(consumer::create(&config.kafka, Arc::clone(&metrics))?);
    consumer::check_topics(&config.kafka).await?;
    consumer.subscribe(&[config.kafka.topic.as_str()])?;
    tracing::info!(
        topic = %config.kafka.topic,
        group = %config.kafka.group_id,
        dead_letter_topic = %config.kafka.dead_letter_topic,
        database = %format!("{}:{}/{}", config.database.host, config.database.port, config.database.database),
        "consuming"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(http::serve(
        listener,
        Arc::clone(&metrics),
        store.clone(),
        stop_rx.clone(),
    ));
    let health = tokio::spawn(health_loop(
        store.clone(),
        Arc::clone(&metrics),
        config.database.health_interval,
        stop_rx,
    ));

    let processor = consumer::Processor::new(
        Arc::clone(&consumer),
        store.clone(),
        dead_letters,
        Arc::clone(&metrics),
        &config.database,
        &config.kafka,
    );
    let result = processor.run(shutdown).await;
    processor.flush();
    drop(processor);

    // Leave the group (a blocking call in librdkafka) off the async threads.
    let _ = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    })
    .await;
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = server.await {
        tracing::warn!("HTTP server: {e}");
    }
    let _ = health.await;
    store.close().await;
    result
}

/// Pings the database every `interval` for `/readyz` and `payment_service_db_up`.
async fn health_loop(
    store: Store,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut was_up: Option<bool> = None;
    loop {
        match store.ping().await {
            Ok(()) => {
                if was_up != Some(true) {
                    tracing::info!("database reachable");
                }
                was_up = Some(true);
                metrics.set_db_health(Ok(()));
            }
            Err(e) => {
                metrics.db_errors.inc();
                if was_up != Some(false) {
                    tracing::warn!(
                        "database unreachable: {e}; /readyz answers 503 until it is back"
                    );
                }
                was_up = Some(false);
                metrics.set_db_health(Err(e.to_string()));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
