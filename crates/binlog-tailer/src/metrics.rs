//! The tailer's metrics: one registry, one place where every name is
//! defined. Prefix `binlog_tailer_`, base units, `_total` for counters, only
//! bounded labels (event type names, tailed table names, operations, topics,
//! error kinds).

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    Counter, Gauge, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};
use service_kit::metrics::Registrar;

use crate::decode::RowsKind;
use crate::position::{GtidState, Position};

/// Every metric the tailer exports.
pub struct Metrics {
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
    /// `binlog_tailer_ack_wait_seconds` (gauge, seconds): while events wait
    /// for the broker, the time since the last acknowledgement (or since the
    /// first of them was sent, if none came since); 0 when none waits.
    /// Updated every 250 ms.
    pub ack_wait: Gauge,
    /// `binlog_tailer_ack_stalled_seconds_total` (counter, seconds): time
    /// during which events waited and no acknowledgement came for over a
    /// second (a leader election, a broker away, too few in-sync replicas).
    pub ack_stalled: Counter,
    /// `binlog_tailer_kafka_request_retries_total` (counter): requests
    /// librdkafka counts as retried (`txretries`, summed over brokers). It
    /// stayed 0 through the failover tests (a leader killed or frozen): the
    /// wait metrics above are what shows a failover.
    pub kafka_retries: IntCounter,
    /// `binlog_tailer_kafka_request_errors_total` (counter): requests to
    /// brokers that failed or timed out (librdkafka's `txerrs` and
    /// `req_timeouts`, summed over brokers); each is retried. librdkafka
    /// keeps them per broker connection, and a broker that left the
    /// metadata (fenced) is not reported any more: its counts are missed.
    pub kafka_request_errors: IntCounter,
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
    /// `binlog_tailer_xa_prepared_pending` (gauge): `XA PREPARE`d
    /// transactions read whose `XA COMMIT` or `XA ROLLBACK` is not read yet;
    /// the checkpoint stays before the oldest of them.
    pub xa_prepared: IntGauge,
    /// `binlog_tailer_build_info{version}` (gauge, always 1).
    pub build_info: IntGaugeVec,
    /// `binlog_tailer_broker_connected` (gauge, 0/1): the producer has a broker connection up.
    pub broker_connected: IntGauge,
    /// `binlog_tailer_ready` (gauge, 0/1): what `/readyz` answers.
    pub ready: IntGauge,
    /// `binlog_tailer_replication_lag_seconds` (gauge, seconds): commit time of the last
    /// transaction read → now; 0 once the server says (by a heartbeat) there is nothing more.
    pub replication_lag: IntGauge,
    /// `binlog_tailer_lag_bytes` (gauge, bytes): binlog bytes between what was read and the
    /// server's end.
    pub lag_bytes: IntGauge,
    /// `binlog_tailer_lag_transactions` (gauge): transactions the server has that were not read.
    pub lag_transactions: IntGauge,
    /// `binlog_tailer_checkpoint_age_seconds` (gauge, seconds): since the last checkpoint write,
    /// or 0 while the checkpoint is current (nothing read is waiting to be checkpointed).
    pub checkpoint_age: IntGauge,
    /// `binlog_tailer_checkpoint_binlog_file_index` (gauge): numeric suffix of the checkpoint's file.
    pub checkpoint_file_index: IntGauge,
    /// `binlog_tailer_checkpoint_binlog_offset` (gauge, bytes): the checkpoint's offset in it.
    pub checkpoint_offset: IntGauge,
    /// `binlog_tailer_snapshot_rows_total{table}` (counter): rows a snapshot
    /// published and the broker acknowledged, by tailed table.
    pub snapshot_rows: IntCounterVec,
    /// `binlog_tailer_snapshot_running` (gauge, 0/1): a snapshot is being taken.
    pub snapshot_running: IntGauge,
    /// `binlog_tailer_snapshot_read_view_age_seconds` (gauge, seconds): how long
    /// the snapshot's read view has been open; 0 when none is.
    pub snapshot_view_age: IntGauge,
    /// Whether a heartbeat came after the last event: nothing more to read.
    caught_up: std::sync::atomic::AtomicBool,
    /// The coordinate and GTID state of the last transaction read.
    read_position: std::sync::Mutex<Position>,
    /// The GTID state of the last checkpoint written.
    checkpointed: std::sync::Mutex<GtidState>,
    tailed: Vec<String>,
    /// `binlog_events` by event type code, resolved on first use: a label
    /// lookup hashes and locks, and runs for every event otherwise.
    events_by_kind: Box<[OnceLock<IntCounter>; 256]>,
    /// `rows` by tailed table (in `tailed` order, then `other`) and
    /// operation, resolved on first use.
    rows_by_table: Vec<[OnceLock<IntCounter>; 3]>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Metrics {
    /// Creates and registers every metric. `tailed` are the tailed
    /// `database.table` names (the only table label values besides `other`).
    pub fn new(tailed: Vec<String>) -> Self {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        let publish_latency = r.histogram(
            "binlog_tailer_publish_latency_seconds",
            "Time from handing an event to the producer to the broker's acknowledgement.",
            vec![
                0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        );
        let build_info = r.build_info("binlog_tailer_build_info", env!("CARGO_PKG_VERSION"));

        let metrics = Metrics {
            build_info,
            ack_wait: r.gauge_f64(
                "binlog_tailer_ack_wait_seconds",
                "While events wait for the broker: seconds since the last acknowledgement; 0 when none waits.",
            ),
            ack_stalled: r.counter_f64(
                "binlog_tailer_ack_stalled_seconds_total",
                "Seconds during which events waited and no acknowledgement came for over a second.",
            ),
            kafka_retries: r.counter(
                "binlog_tailer_kafka_request_retries_total",
                "Requests librdkafka counts as retried (txretries, summed over brokers).",
            ),
            kafka_request_errors: r.counter(
                "binlog_tailer_kafka_request_errors_total",
                "Requests to brokers that failed or timed out (librdkafka txerrs + req_timeouts); retried.",
            ),
            broker_connected: r.gauge(
                "binlog_tailer_broker_connected",
                "1 while the producer has a connection to a Kafka broker up, else 0.",
            ),
            ready: r.gauge(
                "binlog_tailer_ready",
                "1 when /readyz answers ready, else 0.",
            ),
            replication_lag: r.gauge(
                "binlog_tailer_replication_lag_seconds",
                "Commit time of the last transaction read to now; 0 when idle and caught up.",
            ),
            lag_bytes: r.gauge(
                "binlog_tailer_lag_bytes",
                "Binlog bytes between what was read and the end of the server's binlog.",
            ),
            lag_transactions: r.gauge(
                "binlog_tailer_lag_transactions",
                "Transactions in the server's binlog not read yet.",
            ),
            checkpoint_age: r.gauge(
                "binlog_tailer_checkpoint_age_seconds",
                "Seconds since the last checkpoint was written.",
            ),
            checkpoint_file_index: r.gauge(
                "binlog_tailer_checkpoint_binlog_file_index",
                "Numeric suffix of the checkpoint's binlog file.",
            ),
            checkpoint_offset: r.gauge(
                "binlog_tailer_checkpoint_binlog_offset",
                "Offset of the checkpoint in its binlog file.",
            ),
            caught_up: std::sync::atomic::AtomicBool::new(false),
            read_position: std::sync::Mutex::new(Position::default()),
            checkpointed: std::sync::Mutex::new(GtidState::default()),
            source_connected: r.gauge(
                "binlog_tailer_source_connected",
                "1 while streaming the binlog from MariaDB, else 0.",
            ),
            binlog_events: r.counter_vec(
                "binlog_tailer_binlog_events_total",
                "Binlog events read, by event type.",
                &["type"],
            ),
            binlog_bytes: r.counter("binlog_tailer_binlog_bytes_total", "Binlog bytes read."),
            rows: r.counter_vec(
                "binlog_tailer_rows_total",
                "Row changes read, by tailed table (or other) and operation.",
                &["table", "operation"],
            ),
            transactions: r.counter(
                "binlog_tailer_transactions_total",
                "Transactions read to their end.",
            ),
            published: r.counter_vec(
                "binlog_tailer_events_published_total",
                "Events the broker acknowledged, by topic.",
                &["topic"],
            ),
            skipped: r.counter(
                "binlog_tailer_events_skipped_total",
                "Events not sent again after a restart because their partition already held them.",
            ),
            publish_errors: r.counter_vec(
                "binlog_tailer_publish_errors_total",
                "Events the broker refused for good, by kind.",
                &["kind"],
            ),
            in_flight: r.gauge(
                "binlog_tailer_events_in_flight",
                "Events handed to the producer and not yet acknowledged.",
            ),
            publish_latency,
            reconnects: r.counter(
                "binlog_tailer_reconnects_total",
                "Source sessions ended by a transient error (followed by a reconnect).",
            ),
            last_commit_time: r.gauge(
                "binlog_tailer_last_commit_timestamp_seconds",
                "Commit time (binlog timestamp) of the last transaction read, Unix seconds.",
            ),
            checkpoint_time: r.gauge(
                "binlog_tailer_checkpoint_timestamp_seconds",
                "When the last checkpoint was written, Unix seconds.",
            ),
            xa_prepared: r.gauge(
                "binlog_tailer_xa_prepared_pending",
                "XA PREPAREd transactions read whose XA COMMIT or XA ROLLBACK is not read yet.",
            ),
            checkpoint_seq: r.gauge(
                "binlog_tailer_checkpoint_gtid_sequence",
                "GTID sequence number of the last checkpointed transaction.",
            ),
            snapshot_rows: r.counter_vec(
                "binlog_tailer_snapshot_rows_total",
                "Rows a snapshot published and the broker acknowledged, by table.",
                &["table"],
            ),
            snapshot_running: r.gauge(
                "binlog_tailer_snapshot_running",
                "1 while a snapshot is being taken, else 0.",
            ),
            snapshot_view_age: r.gauge(
                "binlog_tailer_snapshot_read_view_age_seconds",
                "How long the snapshot's consistent read view has been open; 0 when none is.",
            ),
            registry,
            events_by_kind: Box::new(std::array::from_fn(|_| OnceLock::new())),
            rows_by_table: (0..=tailed.len())
                .map(|_| std::array::from_fn(|_| OnceLock::new()))
                .collect(),
            tailed,
        };
        // Series that exist from the start, so that rates and alerts on them
        // have data before the first error.
        metrics.publish_errors.with_label_values(&["other"]);
        for table in &metrics.tailed {
            metrics.snapshot_rows.with_label_values(&[table]);
        }
        metrics
    }

    pub fn set_source_connected(&self, connected: bool) {
        self.source_connected.set(i64::from(connected));
    }

    /// One binlog event of type `kind` and `size` bytes was read.
    pub fn events_read(&self, kind: u8, size: u32) {
        self.events_by_kind[usize::from(kind)]
            .get_or_init(|| {
                self.binlog_events
                    .with_label_values(&[event_type_label(kind)])
            })
            .inc();
        self.binlog_bytes.inc_by(u64::from(size));
    }

    pub fn heartbeat(&self) {
        self.caught_up.store(true, Ordering::Relaxed);
    }

    /// The position of the last transaction read (for the lag in bytes and
    /// transactions).
    pub fn read_position(&self) -> Position {
        self.read_position
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    pub fn set_read_position(&self, position: &Position) {
        if let Ok(mut p) = self.read_position.lock() {
            p.clone_from(position);
        }
    }

    pub fn rows_seen(&self, table: &str, kind: RowsKind, n: usize) {
        let index = self
            .tailed
            .iter()
            .position(|t| t == table)
            .unwrap_or(self.tailed.len());
        let (op, op_index) = match kind {
            RowsKind::Insert => ("insert", 0),
            RowsKind::Update => ("update", 1),
            RowsKind::Delete => ("delete", 2),
        };
        let Some(slot) = self.rows_by_table.get(index).map(|ops| &ops[op_index]) else {
            return;
        };
        slot.get_or_init(|| {
            let label = self.tailed.get(index).map_or("other", String::as_str);
            self.rows.with_label_values(&[label, op])
        })
        .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    pub fn transaction(&self, commit_time: u32) {
        self.transactions.inc();
        self.last_commit_time.set(i64::from(commit_time));
        self.caught_up.store(false, Ordering::Relaxed);
    }

    /// Seconds between the last transaction's commit and now; 0 when nothing
    /// was read yet, or when a heartbeat since said there is nothing more.
    pub fn lag_seconds(&self) -> i64 {
        let commit = self.last_commit_time.get();
        if commit == 0 || self.caught_up.load(Ordering::Relaxed) {
            return 0;
        }
        (now_secs() - commit).max(0)
    }

    /// Publishes the time (Unix milliseconds) and position of a checkpoint
    /// just written or read.
    pub fn checkpoint_position(&self, written_at_ms: i64, position: &Position) {
        self.checkpoint_time.set(written_at_ms / 1000);
        if let Ok(mut c) = self.checkpointed.lock() {
            c.clone_from(&position.gtid);
        }
        if let Some(gtid) = position.gtid.iter().last() {
            self.checkpoint_seq
                .set(i64::try_from(gtid.seq).unwrap_or(i64::MAX));
        }
        if let Some(coord) = &position.coord {
            if let (_, Some(index)) = coord.split_file() {
                self.checkpoint_file_index
                    .set(i64::try_from(index).unwrap_or(i64::MAX));
            }
            self.checkpoint_offset
                .set(i64::try_from(coord.offset).unwrap_or(i64::MAX));
        }
    }

    /// Refreshes the gauges derived from time (call every second or so).
    pub fn refresh(&self) {
        self.replication_lag.set(self.lag_seconds());
        // Nothing waits to be checkpointed (no event in flight, the last
        // transaction read is the one checkpointed): the checkpoint is
        // current, however long ago it was written.
        let current = self.in_flight.get() == 0
            && self
                .checkpointed
                .lock()
                .map(|c| *c == self.read_position().gtid)
                .unwrap_or(false);
        let written = self.checkpoint_time.get();
        if current {
            self.checkpoint_age.set(0);
        } else if written > 0 {
            self.checkpoint_age.set((now_secs() - written).max(0));
        }
    }
}

/// The `type` label value of `binlog_tailer_binlog_events_total` for an
/// event type code: the v1, v2 and compressed variants of a rows event share
/// a name; codes without one are `other`, so the label set stays bounded.
pub fn event_type_label(kind: u8) -> &'static str {
    use crate::decode as t;
    match kind {
        t::QUERY_EVENT => "query",
        t::STOP_EVENT => "stop",
        t::ROTATE_EVENT => "rotate",
        t::FORMAT_DESCRIPTION_EVENT => "format_description",
        t::XID_EVENT => "xid",
        t::TABLE_MAP_EVENT => "table_map",
        t::WRITE_ROWS_EVENT_V1 | t::WRITE_ROWS_EVENT_V2 => "write_rows",
        t::UPDATE_ROWS_EVENT_V1 | t::UPDATE_ROWS_EVENT_V2 => "update_rows",
        t::DELETE_ROWS_EVENT_V1 | t::DELETE_ROWS_EVENT_V2 => "delete_rows",
        t::HEARTBEAT_LOG_EVENT => "heartbeat",
        t::XA_PREPARE_LOG_EVENT => "xa_prepare",
        t::ANNOTATE_ROWS_EVENT => "annotate_rows",
        t::BINLOG_CHECKPOINT_EVENT => "binlog_checkpoint",
        t::GTID_EVENT => "gtid",
        t::GTID_LIST_EVENT => "gtid_list",
        t::QUERY_COMPRESSED_EVENT => "query_compressed",
        t::WRITE_ROWS_COMPRESSED_EVENT_V1 | t::WRITE_ROWS_COMPRESSED_EVENT_V2 => {
            "write_rows_compressed"
        }
        t::UPDATE_ROWS_COMPRESSED_EVENT_V1 | t::UPDATE_ROWS_COMPRESSED_EVENT_V2 => {
            "update_rows_compressed"
        }
        t::DELETE_ROWS_COMPRESSED_EVENT_V1 | t::DELETE_ROWS_COMPRESSED_EVENT_V2 => {
            "delete_rows_compressed"
        }
        _ => "other",
    }
}
