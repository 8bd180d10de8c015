//! The payment service's metrics and health: one registry of its own (not
//! the tailer's), one place where every name is defined. Prefix
//! `payment_service_`, base units, `_total` for counters, bounded labels.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};
use service_kit::metrics::Registrar;

/// `payment_service_events_total{outcome}` label values.
pub mod outcome {
    /// A payment row was inserted and committed.
    pub const CHARGED: &str = "charged";
    /// The order or the event id already had its payment: nothing charged.
    pub const DUPLICATE: &str = "duplicate";
    /// Sent to the dead-letter topic (acknowledged) instead of charged.
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// A snapshot record under `kafka.snapshot_records = "skip"`: nothing
    /// charged.
    pub const SNAPSHOT_SKIPPED: &str = "snapshot_skipped";
    pub const ALL: [&str; 4] = [CHARGED, DUPLICATE, DEAD_LETTERED, SNAPSHOT_SKIPPED];
}

/// `payment_service_dead_letters_total{reason}` label values: the kinds of
/// [`super::event::Invalid`], a row the database refused, and an event id
/// that already charged another order.
pub const DEAD_LETTER_REASONS: [&str; 6] = [
    "no_payload",
    "not_json",
    "wrong_type",
    "schema",
    "rejected_by_database",
    "event_id_conflict",
];

/// Every metric the service exports, and what `/readyz` answers from.
pub struct Metrics {
    pub registry: Registry,
    /// `payment_service_build_info{version}` (gauge, always 1).
    pub build_info: IntGaugeVec,
    /// `payment_service_events_total{outcome}` (counter): messages processed
    /// to the end (offset stored), by outcome `charged|duplicate|dead_lettered`.
    pub events: IntCounterVec,
    /// `payment_service_dead_letters_total{reason}` (counter): dead-lettered
    /// messages by reason (`no_payload|not_json|wrong_type|schema|rejected_by_database|event_id_conflict`).
    pub dead_letters: IntCounterVec,
    /// `payment_service_db_errors_total` (counter): failed database attempts
    /// (charges, lookups and pings); a failed charge is retried.
    pub db_errors: IntCounter,
    /// `payment_service_db_up` (gauge, 0/1): the last database ping succeeded.
    pub db_up: IntGauge,
    /// `payment_service_broker_connected` (gauge, 0/1): the consumer or the
    /// dead-letter producer reported a broker connection up in the last
    /// [`BROKER_REPORT_MAX_AGE`] (librdkafka statistics, every second; the
    /// producer's keep coming while the consumer waits on the database).
    pub broker_connected: IntGauge,
    /// `payment_service_consumer_lag_messages` (gauge, messages): over the
    /// partitions assigned to this instance, messages between the last
    /// processed one and the partition's end (librdkafka statistics).
    pub consumer_lag: IntGauge,
    /// `payment_service_assigned_partitions` (gauge): partitions of the topic
    /// assigned to this instance.
    pub assigned_partitions: IntGauge,
    /// `payment_service_offset_commit_errors_total` (counter): offset commits
    /// the broker did not take (the messages are delivered again later and
    /// deduplicated by the database).
    pub commit_errors: IntCounter,
    /// `payment_service_dead_letter_errors_total` (counter): failed
    /// dead-letter delivery attempts (retried).
    pub dead_letter_errors: IntCounter,
    /// `payment_service_consumer_errors_total` (counter): errors reported by
    /// the consumer while fetching (the consumer carries on).
    pub consumer_errors: IntCounter,
    /// `payment_service_processing_seconds` (histogram, seconds): message
    /// received → its outcome final (row committed or dead letter
    /// acknowledged), retries included.
    pub processing: Histogram,
    /// `payment_service_batch_messages` (histogram, messages): messages per
    /// batch (the one that arrived plus those already fetched, at most
    /// `kafka.batch_max_messages`).
    pub batch_messages: Histogram,
    /// `payment_service_batch_fallbacks_total` (counter): batches charged one
    /// message per transaction instead, because a row was refused or a
    /// unique key was taken by another writer meanwhile.
    pub batch_fallbacks: IntCounter,
    /// `payment_service_last_processed_timestamp_seconds` (gauge, Unix
    /// seconds): when the last message was processed to the end.
    pub last_processed: IntGauge,
    /// `payment_service_ready` (gauge, 0/1): what `/readyz` last answered.
    pub ready: IntGauge,
    health: Mutex<Health>,
    /// Unix milliseconds of the last statistics report with a broker
    /// connection up, per client (0: the last report had none).
    broker_up_at: [AtomicI64; 2],
}

/// How long a client's "broker connection up" report counts.
pub const BROKER_REPORT_MAX_AGE: Duration = Duration::from_secs(5);

/// Which Kafka client reports on the broker connection.
#[derive(Debug, Clone, Copy)]
pub enum Client {
    Consumer = 0,
    DeadLetterProducer = 1,
}

#[derive(Default)]
struct Health {
    /// The last database ping's error, while it fails.
    db_error: Option<String>,
    /// What processing is stuck retrying, while it is.
    stalled: Option<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        let build_info = r.build_info("payment_service_build_info", env!("CARGO_PKG_VERSION"));
        let processing = r.histogram(
            "payment_service_processing_seconds",
            "Message received to its outcome final (row committed or dead letter acknowledged).",
            vec![
                0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ],
        );
        let batch_messages = r.histogram(
            "payment_service_batch_messages",
            "Messages per batch (charged in one database transaction).",
            vec![
                1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
            ],
        );

        let metrics = Metrics {
            build_info,
            events: r.counter_vec(
                "payment_service_events_total",
                "Messages processed to the end, by outcome (charged, duplicate, dead_lettered).",
                &["outcome"],
            ),
            dead_letters: r.counter_vec(
                "payment_service_dead_letters_total",
                "Messages sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            db_errors: r.counter(
                "payment_service_db_errors_total",
                "Failed database attempts (charges are retried).",
            ),
            db_up: r.gauge(
                "payment_service_db_up",
                "1 while the database answers the health ping, else 0.",
            ),
            broker_connected: r.gauge(
                "payment_service_broker_connected",
                "1 while the consumer has a connection to a Kafka broker up, else 0.",
            ),
            consumer_lag: r.gauge(
                "payment_service_consumer_lag_messages",
                "Messages not processed yet in the partitions assigned to this instance.",
            ),
            assigned_partitions: r.gauge(
                "payment_service_assigned_partitions",
                "Partitions of the topic assigned to this instance.",
            ),
            commit_errors: r.counter(
                "payment_service_offset_commit_errors_total",
                "Offset commits that failed (messages are delivered again and deduplicated).",
            ),
            dead_letter_errors: r.counter(
                "payment_service_dead_letter_errors_total",
                "Failed dead-letter delivery attempts (retried).",
            ),
            consumer_errors: r.counter(
                "payment_service_consumer_errors_total",
                "Errors the consumer reported while fetching.",
            ),
            processing,
            batch_messages,
            batch_fallbacks: r.counter(
                "payment_service_batch_fallbacks_total",
                "Batches charged one message per transaction (a row refused, or a key taken meanwhile).",
            ),
            last_processed: r.gauge(
                "payment_service_last_processed_timestamp_seconds",
                "When the last message was processed to the end, Unix seconds.",
            ),
            ready: r.gauge(
                "payment_service_ready",
                "1 when /readyz answers ready, else 0.",
            ),
            registry,
            health: Mutex::new(Health::default()),
            broker_up_at: [AtomicI64::new(0), AtomicI64::new(0)],
        };
        // Series that exist from the start, so rates and alerts have data.
        for o in outcome::ALL {
            metrics.events.with_label_values(&[o]);
        }
        for r in DEAD_LETTER_REASONS {
            metrics.dead_letters.with_label_values(&[r]);
        }
        metrics
    }

    /// One message processed to the end with `outcome`.
    pub fn processed(&self, outcome: &str, started: std::time::Instant) {
        self.events.with_label_values(&[outcome]).inc();
        self.processing.observe(started.elapsed().as_secs_f64());
        self.last_processed.set(now_secs());
    }

    /// The result of a database health ping.
    pub fn set_db_health(&self, result: Result<(), String>) {
        self.db_up.set(i64::from(result.is_ok()));
        if let Ok(mut h) = self.health.lock() {
            h.db_error = result.err();
        }
    }

    /// Processing is retrying (`Some(what)`) or moving again (`None`).
    pub fn set_stalled(&self, what: Option<String>) {
        if let Ok(mut h) = self.health.lock() {
            h.stalled = what;
        }
    }

    /// A client's statistics said whether it has a broker connection up.
    pub fn broker_report(&self, client: Client, up: bool) {
        let at = if up { now_millis() } else { 0 };
        self.broker_up_at[client as usize].store(at, Ordering::Relaxed);
        self.refresh();
    }

    /// Recomputes the gauges derived from time.
    pub fn refresh(&self) {
        let now = now_millis();
        let max_age = i64::try_from(BROKER_REPORT_MAX_AGE.as_millis()).unwrap_or(i64::MAX);
        let up = self.broker_up_at.iter().any(|at| {
            let at = at.load(Ordering::Relaxed);
            at > 0 && now - at <= max_age
        });
        self.broker_connected.set(i64::from(up));
    }

    /// Why the service is not ready; empty when it is.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        self.refresh();
        let mut reasons = Vec::new();
        if let Ok(h) = self.health.lock() {
            if self.db_up.get() != 1 {
                reasons.push(match &h.db_error {
                    Some(e) => format!("database unreachable: {e}"),
                    None => "database not reached yet".to_owned(),
                });
            }
            if let Some(s) = &h.stalled {
                reasons.push(s.clone());
            }
        }
        if self.broker_connected.get() != 1 {
            reasons.push("no connection to a Kafka broker".to_owned());
        }
        reasons
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    #[test]
    fn every_documented_name_is_exported() {
        let m = Metrics::new();
        m.processing.observe(0.01);
        m.batch_messages.observe(3.0);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for name in super::super::METRIC_NAMES {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.contains("payment_service_events_total{outcome=\"duplicate\"} 0"));
    }

    #[test]
    fn readiness_names_each_reason() {
        let m = Metrics::new();
        m.set_db_health(Err("connection refused".into()));
        m.set_stalled(Some("charging t/0@5 fails".into()));
        let reasons = m.not_ready_reasons().join("\n");
        assert!(reasons.contains("connection refused"), "{reasons}");
        assert!(reasons.contains("t/0@5"), "{reasons}");
        assert!(reasons.contains("Kafka"), "{reasons}");
        m.set_db_health(Ok(()));
        m.set_stalled(None);
        m.broker_report(Client::Consumer, false);
        m.broker_report(Client::DeadLetterProducer, true);
        assert!(m.not_ready_reasons().is_empty());
        m.broker_report(Client::DeadLetterProducer, false);
        assert_eq!(m.not_ready_reasons().len(), 1);
    }
}
