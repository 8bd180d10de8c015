//! Sink: records → Kafka, acknowledged in order; transaction ends → the
//! position everything before them has been acknowledged up to.
//!
//! # Contract
//! Consumes [`Item`]s from a bounded channel: records to publish, and commit
//! marks (the end of a transaction). Emits, on a `watch` channel, the newest
//! [`Acked`] position: a commit mark whose records, and every record before
//! it, the broker has acknowledged with `acks=all`. Nothing else moves the
//! checkpoint, so a crash at any moment resumes at or before the first
//! unacknowledged record: nothing is lost.
//!
//! Memory: at most `kafka.max_in_flight` records, and at most
//! `kafka.max_in_flight_bytes` of their keys, values and headers, wait for
//! their acknowledgement (one record larger than that is sent alone), with at
//! most one commit mark after each (consecutive marks collapse into the
//! newest), whatever the broker does.
//!
//! # Producer settings
//! `acks=all`, `enable.idempotence=true` (no duplicates or reordering from
//! the producer's own retries, at most 5 requests in flight per broker),
//! `enable.gapless.guarantee=true` (a record refused for good stops the
//! producer before any later record of its partition is written), and
//! `message.timeout.ms=0`: librdkafka retries a record for as long as it takes,
//! so a broker outage of any length loses nothing. A request to a broker that
//! does not answer is given up after `socket.timeout.ms` (10 s unless
//! `kafka.properties` says otherwise) and retried at the partition's leader. Meanwhile at most
//! `kafka.max_in_flight` records wait; the channel fills, and the source stops
//! reading. Partitioning is `murmur2_random`, the Java client's default, so
//! other producers of the same keys agree on partitions.
//!
//! # Errors
//! A record the broker will never accept (too large, not authorised, topic
//! gone, the idempotent producer fenced) comes back as a delivery error: that
//! is definite ([`SinkError::Rejected`]); the pipeline stops without moving the
//! checkpoint past it. Nothing is dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::KafkaConfig;
use crate::frontier::{Frontier, Identity};
use crate::handoff::{Acked, Commit, Item};
use crate::map::{Record, HEADER_EPOCH, HEADER_REPLAY, HEADER_SNAPSHOT_TABLE, HEADER_STORE};
use crate::metrics::Metrics;
use crate::snapshot::Cover;
use service_kit::kafka_security::{security_failure, FailureLatch};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(KafkaError),
    #[error(transparent)]
    Rejected(Box<Rejected>),
    #[error("the Kafka producer failed fatally: {0}")]
    Fatal(KafkaError),
    /// librdkafka stopped the producer (e.g. a batch refused for good while
    /// `enable.gapless.guarantee` forbids sending what follows it).
    #[error(
        "the Kafka producer stopped: {reason}. No later record of that partition was written \
         and the checkpoint stays before the refused one; fix the cause (for a record too \
         large, the topic's max.message.bytes) and restart"
    )]
    Stopped { reason: String },
}

/// A record the broker refused for good.
#[derive(Debug, thiserror::Error)]
#[error(
    "the broker refused event {id} for topic {topic}: {error}. It was not published, nothing \
     after it reached its partition, and the checkpoint stays before it; {fix}",
    fix = self.fix()
)]
pub struct Rejected {
    pub topic: String,
    pub id: String,
    pub error: KafkaError,
}

impl Rejected {
    /// What the operator does about it.
    fn fix(&self) -> String {
        match error_kind(&self.error) {
            "message_too_large" => format!(
                "raise topic {}'s max.message.bytes (and the broker's message.max.bytes if it is \
                 lower) above the event's size, then restart",
                self.topic
            ),
            "not_authorized" => format!(
                "allow the tailer's principal to WRITE (and DESCRIBE) topic {}, then restart",
                self.topic
            ),
            "unknown_topic" => format!(
                "create topic {} (or set kafka.create_topics = true), then restart",
                self.topic
            ),
            _ => "fix the cause and restart".to_owned(),
        }
    }
}

impl SinkError {
    fn rejected(topic: &str, id: String, error: KafkaError) -> Self {
        SinkError::Rejected(Box::new(Rejected {
            topic: topic.to_owned(),
            id,
            error,
        }))
    }
}

/// `reconnect.backoff.ms` of the start-up clients (see [`consumer_config`])
/// unless `kafka.properties` sets it.
pub const STARTUP_RECONNECT_BACKOFF_MS: &str = "10";

/// `socket.timeout.ms` of the producer unless `kafka.properties` sets it.
pub const DEFAULT_SOCKET_TIMEOUT_MS: &str = "10000";

/// The librdkafka configuration of the producer.
pub fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    // A produce request to a leader that stopped answering (a frozen
    // process, a hung host) is given up after socket.timeout.ms and sent
    // again to whichever broker leads the partition by then; librdkafka's
    // default, 60 s, held every acknowledgement for the whole minute a
    // frozen leader was tested for (tests/kafka_cluster.rs). The retry is
    // safe: the idempotent producer's sequence numbers let the new leader
    // drop what the old one had already replicated. kafka.properties may
    // set another value.
    client.set("socket.timeout.ms", DEFAULT_SOCKET_TIMEOUT_MS);
    config.apply_connection(&mut client);
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // A batch refused for good must not let later batches of its
        // partition through (the frontier relies on partitions without gaps):
        // librdkafka then fails the producer instead of moving on.
        .set("enable.gapless.guarantee", "true")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", "0")
        .set("compression.type", &config.compression)
        .set("linger.ms", config.linger.as_millis().to_string())
        .set("partitioner", "murmur2_random")
        .set("client.id", "binlog-tailer");
    client
}

/// A client configuration for the same cluster (bootstrap servers,
/// `kafka.properties`, `kafka.tls` and `kafka.sasl`): the consumers of the
/// start-up read-back and snapshots, and `check`'s admin client.
pub fn consumer_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    // These clients live for a few requests, all at start-up. A new client
    // connects to a bootstrap address, learns the broker behind it, and
    // connects again: librdkafka spaces such connections by half of
    // `reconnect.backoff.ms` (default 100 ms), so each client waited
    // ~50 ms before its first real request. The backoff still doubles on
    // every failed attempt (up to `reconnect.backoff.max.ms`), so a broker
    // that is down is not hammered. `kafka.properties` may set another value.
    client.set("reconnect.backoff.ms", STARTUP_RECONNECT_BACKOFF_MS);
    config.apply_connection(&mut client);
    client.set("bootstrap.servers", &config.bootstrap_servers);
    client
}

/// The producer's librdkafka context: turns librdkafka's statistics (every
/// second) into `binlog_tailer_broker_connected`, and delivery reports into
/// [`Deliveries`].
pub struct SinkContext {
    metrics: Arc<Metrics>,
    deliveries: Deliveries,
    /// The librdkafka totals last turned into counters: (retries, errors).
    request_totals: Mutex<(u64, u64)>,
}

/// The broker's answers for the records sent, kept by sequence number until
/// the sink retires them in order. A delivery report (on librdkafka's
/// polling thread) fills its record's slot and wakes the sink; nothing is
/// allocated per record and the message is not copied back.
#[derive(Default)]
pub struct Deliveries {
    slots: Mutex<Slots>,
    settled: Notify,
}

#[derive(Default)]
struct Slots {
    /// Sequence number of `outcomes[0]`.
    base: usize,
    /// One per record sent and not retired: `None` until its report.
    outcomes: VecDeque<Option<Result<(), Box<KafkaError>>>>,
}

impl Deliveries {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding this lock cannot leave the slots half
        // changed (each change is one push, pop or assignment).
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for the next record; its sequence number.
    fn open(&self) -> usize {
        let mut slots = self.slots();
        slots.outcomes.push_back(None);
        slots.base + slots.outcomes.len() - 1
    }

    /// Takes back the newest slot (its record was not sent after all).
    fn cancel_newest(&self) {
        self.slots().outcomes.pop_back();
    }

    /// Moves the outcomes reported at the front, oldest first, to `out`:
    /// one lock for every record the broker has answered for since the last
    /// call.
    fn take_settled(&self, out: &mut VecDeque<Result<(), Box<KafkaError>>>) {
        let mut slots = self.slots();
        while let Some(Some(_)) = slots.outcomes.front() {
            if let Some(Some(outcome)) = slots.outcomes.pop_front() {
                slots.base += 1;
                out.push_back(outcome);
            }
        }
    }

    /// Fills record `seq`'s slot. The sink is woken only when the oldest
    /// slot is filled: until then it cannot retire anything, and a wake per
    /// report would cost a thread switch per record.
    fn report(&self, seq: usize, outcome: Result<(), KafkaError>) {
        let oldest = {
            let mut slots = self.slots();
            let Some(index) = seq.checked_sub(slots.base) else {
                return;
            };
            if let Some(slot) = slots.outcomes.get_mut(index) {
                *slot = Some(outcome.map_err(Box::new));
            }
            index == 0
        };
        if oldest {
            self.settled.notify_one();
        }
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((error, _)) => Err(error.clone()),
        };
        self.deliveries.report(seq, outcome);
    }
}

impl rdkafka::ClientContext for SinkContext {
    /// A refused login or a failed TLS handshake after start-up (credentials
    /// or certificates changed under a running tailer) is named with its fix;
    /// the producer keeps retrying, holding the checkpoint, until the broker
    /// accepts it again. Other errors are logged as librdkafka reports them.
    fn error(&self, error: KafkaError, reason: &str) {
        match security_failure(&error, reason) {
            Some(kind) => tracing::error!("kafka: {}", kind.explain("kafka", reason)),
            None => tracing::error!("librdkafka: {error}: {reason}"),
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        // Bootstrap entries have node id -1; a real broker connection is "UP".
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.metrics.broker_connected.set(i64::from(up));
        let (retries, errors) = statistics.brokers.values().fold((0, 0), |(r, e), b| {
            (r + b.txretries, e + b.txerrs + b.req_timeouts)
        });
        let mut last = self
            .request_totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A broker that leaves the statistics takes its totals with it:
        // only increases are counted.
        self.metrics
            .kafka_retries
            .inc_by(retries.saturating_sub(last.0));
        self.metrics
            .kafka_request_errors
            .inc_by(errors.saturating_sub(last.1));
        *last = (retries, errors);
    }
}

/// The context of clients that wait for the broker at start-up (`check`):
/// keeps the first refused login or failed TLS handshake so the wait can end
/// with it instead of a timeout.
#[derive(Default)]
pub struct SecurityWatch {
    pub failure: FailureLatch,
}

impl rdkafka::ClientContext for SecurityWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        match security_failure(&error, reason) {
            Some(kind) => self.failure.set(kind, reason),
            None => tracing::debug!("kafka: {error}: {reason}"),
        }
    }
}

impl rdkafka::producer::ProducerContext for SecurityWatch {
    type DeliveryOpaque = ();
    // The probe sends nothing.
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// The producer type the sink uses.
pub type TailerProducer = ThreadedProducer<SinkContext>;

/// Creates the producer.
///
/// # Errors
/// When librdkafka refuses the configuration.
pub fn create_producer(
    config: &KafkaConfig,
    metrics: Arc<Metrics>,
) -> Result<TailerProducer, SinkError> {
    let mut client = producer_config(config);
    client.set("statistics.interval.ms", "1000");
    client
        .create_with_context(SinkContext {
            metrics,
            deliveries: Deliveries::default(),
            request_totals: Mutex::new((0, 0)),
        })
        .map_err(SinkError::Create)
}

/// Has the producer connect to the cluster and learn the leaders of
/// `topics` now, in the background, instead of at its first record.
///
/// A new client's first connection is to a bootstrap address; librdkafka
/// then replaces it with the broker the metadata names, and the idempotent
/// producer asks that broker for its producer id. Done at the first record,
/// this took 50–110 ms after the binlog stream had started (measured with
/// `debug = "broker,eos"`): the first event waited for it. Started while the
/// preflight and the read-back run, it is over before the stream begins.
/// Best effort: a failure here is logged at debug level, and the sink meets
/// the same broker again with its own error handling.
///
/// A query for a partition's offsets, not a metadata request: librdkafka
/// looks the leader up with its own metadata request then, whose answer
/// also starts the producer-id request; an application's metadata request
/// did not (the id came only from a 500 ms retry timer).
///
/// It runs on a thread of its own rather than the runtime's blocking pool,
/// which the runtime waits for at exit: a broker refusing the login held a
/// failed start-up for the whole `timeout`.
pub fn warm_up(producer: &TailerProducer, topics: Vec<String>, timeout: Duration) {
    let client = producer.clone();
    let spawned = std::thread::Builder::new()
        .name("kafka-warm-up".into())
        .spawn(move || {
            for topic in &topics {
                if let Err(e) = client.client().fetch_watermarks(topic, 0, timeout) {
                    tracing::debug!(topic, error = %e, "producer warm-up: no answer yet");
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "producer warm-up: no thread; the producer connects at its first record");
    }
}

enum Pending {
    /// A record sent; its outcome is the oldest open slot of
    /// [`Deliveries`] when it is at the front.
    Record {
        topic: Arc<str>,
        id: String,
        sent: Instant,
        /// What it counts against `kafka.max_in_flight_bytes`.
        bytes: usize,
    },
    Commit(Commit),
}

/// How much may wait for the broker's acknowledgement: reading pauses when
/// either is reached (a single record larger than `bytes` is still sent, on
/// its own).
#[derive(Debug, Clone, Copy)]
pub struct InFlightLimits {
    /// Records (`kafka.max_in_flight`).
    pub records: usize,
    /// Keys, values and headers, in bytes (`kafka.max_in_flight_bytes`).
    pub bytes: usize,
}

impl InFlightLimits {
    pub fn of(config: &crate::config::KafkaConfig) -> InFlightLimits {
        InFlightLimits {
            records: config.max_in_flight,
            bytes: config.max_in_flight_bytes,
        }
    }
}

/// Live records or a replay.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The live tailer: records carry the store's id and epoch, and records
    /// the topic already holds (per the frontier) are skipped.
    Live {
        identity: Identity,
        frontier: Frontier,
        /// After a snapshot that was resumed in another read view: the
        /// records its rows already stand for (see `snapshot::Cover`).
        cover: Option<Arc<Cover>>,
    },
    /// `replay`: every record is published, marked as a replay; the frontier
    /// only supplies partition counts.
    Replay { frontier: Frontier },
    /// A snapshot: every record is published with `headers` (the snapshot's
    /// id, and the store and epoch for the one `run` takes), and its table
    /// as `binlog.snapshot.table`; the snapshot itself passes over what the
    /// topic already holds.
    Snapshot {
        frontier: Frontier,
        headers: Vec<(&'static str, Vec<u8>)>,
    },
}

impl Mode {
    fn frontier(&self) -> &Frontier {
        match self {
            Mode::Live { frontier, .. }
            | Mode::Replay { frontier }
            | Mode::Snapshot { frontier, .. } => frontier,
        }
    }
}

/// A wait without any acknowledgement counts in `ack_stalled` once it is
/// this long (then in full): shorter ones are ordinary latency.
const STALL_COUNTED_FROM: Duration = Duration::from_secs(1);

/// After this long without an acknowledgement while records wait, the sink
/// says it is waiting for the broker (again every such period).
const STALL_WARNING: Duration = Duration::from_secs(5);

/// Publishes until the channel closes (then drains every delivery) or a
/// delivery fails definitely.
///
/// # Errors
/// [`SinkError`] on a definite failure; the last `Acked` sent stays valid.
pub async fn run(
    producer: TailerProducer,
    mut items: mpsc::Receiver<Item>,
    acked: watch::Sender<Option<Acked>>,
    limits: InFlightLimits,
    mode: Mode,
    metrics: Arc<Metrics>,
) -> Result<(), SinkError> {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut bytes_in_flight = 0usize;
    let max_in_flight = limits.records;
    let mut records: u64 = 0;
    let mut skipped: u64 = 0;
    let mut input_open = true;
    // When the records in flight last moved (an acknowledgement, or the
    // first record sent after none waited), for the stall warning; looked
    // at every `FATAL_CHECK`, with `acked_at_tick` the count then.
    let mut last_progress = Instant::now();
    let mut acked_at_tick: u64 = 0;
    // For `ack_wait` and `ack_stalled`: the last acknowledgement (or the
    // first record sent while none waited), and how far the stall counter
    // has counted.
    let mut ack_clock = Instant::now();
    let mut stall_counted_to = ack_clock;
    let extra_headers: Vec<(&'static str, Vec<u8>)> = match &mode {
        Mode::Live { identity, .. } => vec![
            (HEADER_EPOCH, identity.epoch.to_string().into_bytes()),
            (HEADER_STORE, identity.store_header().into_bytes()),
        ],
        Mode::Replay { .. } => vec![(HEADER_REPLAY, b"1".to_vec())],
        Mode::Snapshot { headers, .. } => headers.clone(),
    };

    let extra_header_bytes: usize = extra_headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut published = PublishedCounters::new(&metrics);
    let mut fatal_check = tokio::time::interval(FATAL_CHECK);
    fatal_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deliveries = &producer.context().deliveries;
    // Outcomes taken from `deliveries`, for the records at the front of
    // `pending`.
    let mut settled = VecDeque::new();
    loop {
        // Retire everything at the front that is already settled: commit
        // marks, and records the broker has answered for. The newest commit
        // retired is announced once, after the pass (each announcement wakes
        // the checkpoint writer).
        let mut newest_acked = None;
        loop {
            match pending.front() {
                Some(Pending::Commit(_)) => {
                    if let Some(Pending::Commit(commit)) = pending.pop_front() {
                        newest_acked = Some(Acked { commit, records });
                    }
                }
                Some(Pending::Record { .. }) => {
                    if settled.is_empty() {
                        deliveries.take_settled(&mut settled);
                    }
                    let Some(outcome) = settled.pop_front() else {
                        break;
                    };
                    let Some(Pending::Record {
                        topic,
                        id,
                        sent,
                        bytes,
                    }) = pending.pop_front()
                    else {
                        break;
                    };
                    in_flight -= 1;
                    bytes_in_flight -= bytes;
                    metrics.in_flight.dec();
                    if let Err(error) = outcome {
                        if let Some(newest) = newest_acked.take() {
                            acked.send_replace(Some(newest));
                        }
                        metrics
                            .publish_errors
                            .with_label_values(&[error_kind(&error)])
                            .inc();
                        return Err(SinkError::rejected(&topic, id, *error));
                    }
                    records += 1;
                    published.of(&topic).inc();
                    metrics
                        .publish_latency
                        .observe(sent.elapsed().as_secs_f64());
                }
                None => break,
            }
        }
        if let Some(newest) = newest_acked {
            acked.send_replace(Some(newest));
        }
        if !input_open && pending.is_empty() {
            return Ok(());
        }

        let waiting = matches!(pending.front(), Some(Pending::Record { .. }));
        if !waiting {
            metrics.ack_wait.set(0.0);
        }
        tokio::select! {
            biased;
            // Acknowledgements first: they free room and move the checkpoint
            // (retired at the top of the loop).
            () = deliveries.settled.notified(), if waiting => {}
            item = items.recv(), if input_open && in_flight < max_in_flight
                && (in_flight == 0 || bytes_in_flight < limits.bytes) => match item {
                None => input_open = false,
                Some(Item::Commit(commit)) => {
                    if pending.is_empty() {
                        acked.send_replace(Some(Acked { commit, records }));
                    } else if let Some(Pending::Commit(newest)) = pending.back_mut() {
                        // No record between the two ends: the later one
                        // includes the earlier. Keeping one bounds the queue
                        // by the records in flight, however many
                        // transactions without records arrive while the
                        // broker is away.
                        *newest = commit;
                    } else {
                        pending.push_back(Pending::Commit(commit));
                    }
                }
                Some(Item::Record(record)) => {
                    let partition = mode.frontier().partition_of(&record.topic, &record.key);
                    if let (Mode::Live { frontier, cover, .. }, Some(p)) = (&mode, partition) {
                        if frontier.already_published(&record.topic, p, record.gtid, record.row_index)
                            || cover.as_ref().is_some_and(|c| c.covers(&record, p))
                        {
                            skipped += 1;
                            metrics.skipped.inc();
                            if skipped == 1 {
                                tracing::info!(id = %record.id, partition = p, "skipping events the topic already holds (published before the last stop)");
                            }
                            continue;
                        }
                    }
                    let sent = Instant::now();
                    if pending.is_empty() {
                        last_progress = sent;
                        ack_clock = sent;
                    }
                    enqueue(&producer, &record, &extra_headers, partition).await.inspect_err(|e| {
                        if let SinkError::Rejected(r) = e {
                            metrics.publish_errors.with_label_values(&[error_kind(&r.error)]).inc();
                        }
                    })?;
                    let bytes = record_bytes(&record, extra_header_bytes);
                    in_flight += 1;
                    bytes_in_flight += bytes;
                    metrics.in_flight.inc();
                    pending.push_back(Pending::Record { topic: record.topic, id: record.id, sent, bytes });
                }
            },
            // A fatal producer error leaves the records in flight undelivered
            // for ever (message.timeout.ms=0): it must be looked for. The
            // same tick looks for a stall (not a timer per record).
            _ = fatal_check.tick(), if waiting => {
                if let Some((stopped, kind)) = fatal(&producer) {
                    metrics.publish_errors.with_label_values(&[kind]).inc();
                    return Err(stopped);
                }
                let now = Instant::now();
                if acked_at_tick != records {
                    acked_at_tick = records;
                    last_progress = now;
                    ack_clock = now;
                    metrics.ack_wait.set(0.0);
                    continue;
                }
                let wait = now.duration_since(ack_clock);
                metrics.ack_wait.set(wait.as_secs_f64());
                if wait >= STALL_COUNTED_FROM {
                    let from = stall_counted_to.max(ack_clock);
                    metrics.ack_stalled.inc_by(now.duration_since(from).as_secs_f64());
                    stall_counted_to = now;
                }
                if last_progress.elapsed() < STALL_WARNING {
                    continue;
                }
                tracing::warn!(
                    unacknowledged = in_flight,
                    max_in_flight,
                    waited = ?last_progress.elapsed(),
                    "waiting for the broker: no acknowledgement lately; {in_flight} events ({bytes_in_flight} bytes) are sent and \
                     unacknowledged, and reading pauses if kafka.max_in_flight ({max_in_flight}) or kafka.max_in_flight_bytes \
                     ({}) is reached. Nothing is dropped", limits.bytes
                );
                last_progress = Instant::now();
            }
        }
    }
}

/// `binlog_tailer_published_total` per topic, looked up once per topic
/// rather than per record (a label lookup hashes and locks).
struct PublishedCounters<'a> {
    metrics: &'a Metrics,
    by_topic: Vec<(Arc<str>, prometheus::IntCounter)>,
}

impl<'a> PublishedCounters<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        PublishedCounters {
            metrics,
            by_topic: Vec::new(),
        }
    }

    fn of(&mut self, topic: &Arc<str>) -> &prometheus::IntCounter {
        let found = self
            .by_topic
            .iter()
            .position(|(t, _)| Arc::ptr_eq(t, topic) || **t == **topic);
        let i = found.unwrap_or_else(|| {
            let counter = self.metrics.published.with_label_values(&[&**topic]);
            self.by_topic.push((Arc::clone(topic), counter));
            self.by_topic.len() - 1
        });
        &self.by_topic[i].1
    }
}

/// How often, while records wait, the producer is asked for a fatal error.
const FATAL_CHECK: Duration = Duration::from_millis(250);

/// The producer's fatal error, if librdkafka raised one (logged), with the
/// `publish_errors` label of its cause: a batch refused under the gapless
/// guarantee names its error in the reason text only.
fn fatal(producer: &TailerProducer) -> Option<(SinkError, &'static str)> {
    let (code, reason) = producer.client().fatal_error()?;
    tracing::error!(?code, %reason, "fatal producer error");
    let kind = if code == RDKafkaErrorCode::MessageSizeTooLarge
        || reason.contains("Message size too large")
    {
        "message_too_large"
    } else {
        "other"
    };
    Some((SinkError::Stopped { reason }, kind))
}

/// A bounded label for a delivery error.
fn error_kind(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "message_too_large",
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed,
        ) => "not_authorized",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            "unknown_topic"
        }
        Some(_) => "other",
        None => "client",
    }
}

/// Hands a record to librdkafka, waiting while its local queue is full; its
/// outcome comes to the next slot of [`Deliveries`].
/// What a record counts against `kafka.max_in_flight_bytes`: its key, value
/// and headers (names and values), as the producer holds them;
/// `extra_headers` is the size of the headers the sink adds to every record.
fn record_bytes(record: &Record, extra_headers: usize) -> usize {
    let table = record
        .snapshot_table
        .as_ref()
        .map_or(0, |t| HEADER_SNAPSHOT_TABLE.len() + t.len());
    record.key.len() + record.payload.len() + record.headers.bytes() + extra_headers + table
}

async fn enqueue(
    producer: &TailerProducer,
    record: &Record,
    extra_headers: &[(&'static str, Vec<u8>)],
    partition: Option<i32>,
) -> Result<(), SinkError> {
    let mut headers =
        OwnedHeaders::new_with_capacity(record.headers.len() + extra_headers.len() + 1);
    for (key, value) in record.headers.iter() {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    for (key, value) in extra_headers {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_slice()),
        });
    }
    if let Some(table) = &record.snapshot_table {
        headers = headers.insert(Header {
            key: HEADER_SNAPSHOT_TABLE,
            value: Some(table.as_bytes()),
        });
    }
    let deliveries = &producer.context().deliveries;
    let seq = deliveries.open();
    let mut base_record = BaseRecord::with_opaque_to(&record.topic, seq)
        .key(&record.key)
        .payload(&record.payload)
        .headers(headers);
    if let Some(p) = partition {
        base_record = base_record.partition(p);
    }
    let started = Instant::now();
    loop {
        match producer.send(base_record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                base_record = back;
                if started.elapsed() > Duration::from_secs(1) {
                    tracing::debug!("producer queue full; waiting");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((error, _)) => {
                deliveries.cancel_newest();
                if let Some((stopped, _)) = fatal(producer) {
                    return Err(stopped);
                }
                return Err(SinkError::rejected(&record.topic, record.id.clone(), error));
            }
        }
    }
}

/// Waits until every record handed to the producer is delivered or `timeout`
/// passes; returns whether everything was flushed.
pub fn flush(producer: &TailerProducer, timeout: Duration) -> bool {
    producer.flush(timeout).is_ok()
}
