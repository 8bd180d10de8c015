//! The tailer's metrics: one registry, one place where every name is
//! defined. Prefix `binlog_tailer_`, base units, `_total` for counters, only
//! bounded labels (event type names, tailed table names, operations, topics,
//! error kinds).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::decode::RowsKind;

/// Every metric the tailer exports.
pub struct Stats {
    pub registry: Registry,
    /// `binlog_tailer_source_connected` (gauge, 0/1): streaming from MariaDB.
    pub source_connected: IntGauge,
    /// `binlog_tailer_binlog_events_total{type}` (counter): binlog events read, by event type name.
    pub binlog_events: IntCounterVec,
    /// `binlog_tailer_binlog_bytes_total` (counter, bytes): binlog event bytes read.
    pub binlog_bytes: IntCounter,
    /// `binlog_tailer_rows_total{table,operation}` (counter): row changes read; `table` is a
    /// tailed `database.table` or `other`; operation `insert|update|delete`.
    pub rows: IntCounterVec,
    /// `binlog_tailer_transactions_total` (counter): transactions read to their end.
    pub transactions: IntCounter,
    /// `binlog_tailer_events_published_total{topic}` (counter): events the broker acknowledged.
    pub published: IntCounterVec,
    /// `binlog_tailer_events_skipped_total` (counter): events not sent again after a restart
    /// because their partition already held them.
    pub skipped: IntCounter,
    /// `binlog_tailer_publish_errors_total{kind}` (counter): definite delivery failures.
    pub publish_errors: IntCounterVec,
    /// `binlog_tailer_events_in_flight` (gauge): events sent and not yet acknowledged.
    pub in_flight: IntGauge,
    /// `binlog_tailer_publish_latency_seconds` (histogram, seconds): hand-off to the producer → acknowledgement.
    pub publish_latency: Histogram,
    /// `binlog_tailer_reconnects_total` (counter): source sessions ended by a transient error.
    pub reconnects: IntCounter,
    /// `binlog_tailer_last_commit_timestamp_seconds` (gauge, Unix seconds): commit time of the last transaction read.
    pub last_commit_time: IntGauge,
    /// `binlog_tailer_checkpoint_timestamp_seconds` (gauge, Unix seconds): when the last checkpoint was written.
    pub checkpoint_time: IntGauge,
    /// `binlog_tailer_checkpoint_gtid_sequence` (gauge): GTID sequence number of the checkpoint (domain of the last transaction).
    pub checkpoint_seq: IntGauge,
    /// Unix seconds of the last heartbeat or event; lag is 0 when idle and caught up.
    last_activity: AtomicI64,
    tailed: Vec<String>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Stats {
    /// Creates and registers every metric. `tailed` are the tailed
    /// `database.table` names (the only table label values besides `other`).
    pub fn new(tailed: Vec<String>) -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g =
                IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            registry
                .register(Box::new(g.clone()))
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            g
        };
        let counter = |name: &str, help: &str| {
            let c =
                IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            registry
                .register(Box::new(c.clone()))
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            registry
                .register(Box::new(c.clone()))
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            c
        };
        let publish_latency = Histogram::with_opts(
            HistogramOpts::new(
                "binlog_tailer_publish_latency_seconds",
                "Time from handing an event to the producer to the broker's acknowledgement.",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable!("histogram: {e}"));
        registry
            .register(Box::new(publish_latency.clone()))
            .unwrap_or_else(|e| unreachable!("histogram: {e}"));

        Stats {
            source_connected: gauge(
                "binlog_tailer_source_connected",
                "1 while streaming the binlog from MariaDB, else 0.",
            ),
            binlog_events: counter_vec(
                "binlog_tailer_binlog_events_total",
                "Binlog events read, by event type.",
                &["type"],
            ),
            binlog_bytes: counter("binlog_tailer_binlog_bytes_total", "Binlog bytes read."),
            rows: counter_vec(
                "binlog_tailer_rows_total",
                "Row changes read, by tailed table (or other) and operation.",
                &["table", "operation"],
            ),
            transactions: counter(
                "binlog_tailer_transactions_total",
                "Transactions read to their end.",
            ),
            published: counter_vec(
                "binlog_tailer_events_published_total",
                "Events the broker acknowledged, by topic.",
                &["topic"],
            ),
            skipped: counter(
                "binlog_tailer_events_skipped_total",
                "Events not sent again after a restart because their partition already held them.",
            ),
            publish_errors: counter_vec(
                "binlog_tailer_publish_errors_total",
                "Events the broker refused for good, by kind.",
                &["kind"],
            ),
            in_flight: gauge(
                "binlog_tailer_events_in_flight",
                "Events handed to the producer and not yet acknowledged.",
            ),
            publish_latency,
            reconnects: counter(
                "binlog_tailer_reconnects_total",
                "Source sessions ended by a transient error (followed by a reconnect).",
            ),
            last_commit_time: gauge(
                "binlog_tailer_last_commit_timestamp_seconds",
                "Commit time (binlog timestamp) of the last transaction read, Unix seconds.",
            ),
            checkpoint_time: gauge(
                "binlog_tailer_checkpoint_timestamp_seconds",
                "When the last checkpoint was written, Unix seconds.",
            ),
            checkpoint_seq: gauge(
                "binlog_tailer_checkpoint_gtid_sequence",
                "GTID sequence number of the last checkpointed transaction.",
            ),
            registry,
            last_activity: AtomicI64::new(0),
            tailed,
        }
    }

    pub fn set_source_connected(&self, connected: bool) {
        self.source_connected.set(i64::from(connected));
    }

    /// One binlog event of type `kind` and `size` bytes was read.
    pub fn events_read(&self, kind: u8, size: u32) {
        self.binlog_events
            .with_label_values(&[event_type_name(kind)])
            .inc();
        self.binlog_bytes.inc_by(u64::from(size));
        self.last_activity.store(now_secs(), Ordering::Relaxed);
    }

    pub fn heartbeat(&self) {
        self.last_activity.store(now_secs(), Ordering::Relaxed);
    }

    pub fn rows_seen(&self, table: &str, kind: RowsKind, n: usize) {
        let table = if self.tailed.iter().any(|t| t == table) {
            table
        } else {
            "other"
        };
        let op = match kind {
            RowsKind::Insert => "insert",
            RowsKind::Update => "update",
            RowsKind::Delete => "delete",
        };
        self.rows
            .with_label_values(&[table, op])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    pub fn transaction(&self, commit_time: u32) {
        self.transactions.inc();
        self.last_commit_time.set(i64::from(commit_time));
    }

    /// Seconds between the last transaction's commit and now; 0 when nothing
    /// was read yet.
    pub fn lag_seconds(&self) -> i64 {
        let commit = self.last_commit_time.get();
        if commit == 0 {
            return 0;
        }
        (now_secs() - commit).max(0)
    }
}

/// A bounded label value for an event type code.
pub fn event_type_name(kind: u8) -> &'static str {
    use crate::source::event_type as t;
    match kind {
        t::QUERY => "query",
        t::STOP => "stop",
        t::ROTATE => "rotate",
        t::FORMAT_DESCRIPTION => "format_description",
        t::XID => "xid",
        t::TABLE_MAP => "table_map",
        t::WRITE_ROWS_V1 | t::WRITE_ROWS_V2 => "write_rows",
        t::UPDATE_ROWS_V1 | t::UPDATE_ROWS_V2 => "update_rows",
        t::DELETE_ROWS_V1 | t::DELETE_ROWS_V2 => "delete_rows",
        t::HEARTBEAT => "heartbeat",
        t::ANNOTATE_ROWS => "annotate_rows",
        t::BINLOG_CHECKPOINT => "binlog_checkpoint",
        t::GTID => "gtid",
        t::GTID_LIST => "gtid_list",
        t::QUERY_COMPRESSED => "query_compressed",
        t::WRITE_ROWS_COMPRESSED_V1 | t::WRITE_ROWS_COMPRESSED_V2 => "write_rows_compressed",
        t::UPDATE_ROWS_COMPRESSED_V1 | t::UPDATE_ROWS_COMPRESSED_V2 => "update_rows_compressed",
        t::DELETE_ROWS_COMPRESSED_V1 | t::DELETE_ROWS_COMPRESSED_V2 => "delete_rows_compressed",
        _ => "other",
    }
}
