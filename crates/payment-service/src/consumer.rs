//! The consumer loop: messages in batches, in order per partition; the
//! database commit (or dead-letter acknowledgement) first, offsets after.
//!
//! # Per batch
//! 1. The message that arrived, plus every message the consumer has
//!    already fetched (taken with zero wait, never waited for), up to
//!    `kafka.batch_max_messages`: one message when the topic is quiet, full
//!    batches through a backlog. The batch keeps the order in which the
//!    consumer delivered the messages, so each partition's order.
//! 2. [`event::parse`] each.
//! 3. The valid ones (two or more; a single one goes the per-message way
//!    below) are charged in ONE transaction ([`Store::charge_batch`]): the
//!    rows already holding their orders or event ids are looked up, each
//!    charge is judged in order exactly as one transaction per message
//!    would judge it, the new rows are inserted and committed together. A
//!    duplicate (the order, or this event, already charged: before, or by
//!    an earlier message of the batch) charges nothing and is counted; an
//!    event whose id already charged *another* order is dead-lettered (the
//!    order would otherwise never be charged). A transient database error
//!    retries the whole batch with exponential backoff
//!    (`database.retry_backoff_*`) for as long as it takes; the consumer
//!    does not move meanwhile, and `/readyz` says what is stuck. If the
//!    insert fails for one row (the table refuses a value, or another
//!    writer took a key after the look-up), the transaction is rolled back,
//!    nothing of the batch is charged, and the batch is processed one
//!    message per transaction instead (below).
//! 4. After the commit: the invalid messages and those to dead-letter, in
//!    order, [`DeadLetters::send`] each and wait for its acknowledgement
//!    (retried the same way).
//! 5. Only then are the offsets *stored* (librdkafka's `offset_store`: per
//!    partition, offset + 1 of its last message in the batch).
//!
//! # One message per transaction
//! Used for a batch with fewer than two valid messages and as the fallback
//! above: each message in order, [`Store::charge`] (one transaction;
//! `ER_DUP_ENTRY` is a duplicate, or a dead letter when the event id
//! charged another order; a row the table refuses is dead-lettered) or, if
//! invalid, a dead letter; each retried as above. The offsets are stored
//! after the last.
//!
//! # Offsets
//! Stored offsets are committed every `kafka.commit_interval`
//! (asynchronously), when partitions are revoked (synchronously, in the
//! rebalance callback) and at shutdown (synchronously). A message's offset
//! is stored only once its outcome and that of every message before it in
//! its partition is durable. So a committed offset never passes a message
//! whose outcome is not durable; a crash repeats at most the messages since
//! the last commit, and the database's unique keys make those repeats
//! charge nothing (a batch of repeats is judged duplicates in one
//! transaction).
//!
//! # Shutdown
//! The shutdown signal is looked at between batches and during retry
//! waits, never in the middle of a database transaction: the batch being
//! processed is finished, its offsets stored and committed, and the loop
//! ends ([`Outcome::Clean`]). A shutdown while a batch (or one of its
//! messages) is waiting to be retried ends without it
//! ([`Outcome::Interrupted`]): the offsets of its messages whose outcome is
//! not durable (in a batch waiting for its transaction: all) are not
//! stored, so they are processed on the next start.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tokio::sync::watch;

use super::config::{DatabaseConfig, KafkaConfig, SnapshotRecords};
use super::dead_letter::DeadLetters;
use super::event::{self, Charge, Invalid};
use super::metrics::{outcome, Client, Metrics};
use super::store::{BatchRecorded, DbError, Payment, Recorded, Store};
use crate::error::{Outcome, ServiceError};
use service_kit::kafka_security::{security_failure, FailureLatch};

/// The consumer's librdkafka context: statistics → gauges; commits of
/// stored offsets when partitions are taken away; failed commits counted.
pub struct ConsumerCtx {
    metrics: Arc<Metrics>,
    topic: String,
}

/// The context of the start-up probe ([`check_topics`]): keeps the first
/// refused login or failed TLS handshake (librdkafka retries them for ever;
/// the check ends with it).
#[derive(Default)]
struct ProbeCtx {
    security_failure: FailureLatch,
}

impl ClientContext for ProbeCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        match security_failure(&error, reason) {
            Some(kind) => self.security_failure.set(kind, reason),
            None => tracing::debug!("kafka: {error}: {reason}"),
        }
    }
}

impl rdkafka::producer::ProducerContext for ProbeCtx {
    type DeliveryOpaque = ();
    // The probe sends nothing.
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

impl ClientContext for ConsumerCtx {
    fn stats(&self, statistics: Statistics) {
        // Bootstrap entries have node id -1; a real broker connection is "UP".
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.metrics.broker_report(Client::Consumer, up);
        let (mut lag, mut assigned) = (0i64, 0i64);
        if let Some(topic) = statistics.topics.get(&self.topic) {
            // Partition -1 is librdkafka's internal "unassigned" queue;
            // `desired` marks the partitions assigned to this consumer.
            for p in topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.desired)
            {
                assigned += 1;
                // Lag from the stored offset (what was processed) when there
                // is one, else from the committed offset; unknown counts 0.
                let l = if p.consumer_lag_stored >= 0 {
                    p.consumer_lag_stored
                } else {
                    p.consumer_lag.max(0)
                };
                lag = lag.saturating_add(l);
            }
        }
        self.metrics.consumer_lag.set(lag);
        self.metrics.assigned_partitions.set(assigned);
    }
}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Commit what was processed before the partitions go to another
            // member, so it does not process them again.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => tracing::info!(
                    partitions = partitions.count(),
                    "partitions revoked; processed offsets committed"
                ),
                Err(e) if is_no_offset(&e) => {}
                Err(e) => {
                    self.metrics.commit_errors.inc();
                    tracing::warn!("committing offsets before a rebalance failed: {e}; those messages will be processed again (and found already charged)");
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(?partitions, "partitions assigned");
                // At once, not at the next statistics report: readiness
                // follows the assignment, and the gauge must agree with it.
                let ours = tpl
                    .elements()
                    .iter()
                    .filter(|e| e.topic() == self.topic)
                    .count();
                self.metrics
                    .assigned_partitions
                    .set(i64::try_from(ours).unwrap_or(i64::MAX));
            }
            Rebalance::Revoke(_) => self.metrics.assigned_partitions.set(0),
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(offsets = ?offsets.to_topic_map(), "offsets committed"),
            Err(e) if is_no_offset(&e) => {}
            Err(e) => {
                self.metrics.commit_errors.inc();
                tracing::warn!("offset commit failed: {e}; the next commit covers these messages (a crash before it repeats them, charging nothing)");
            }
        }
    }
}

/// `_NO_OFFSET`: nothing stored since the last commit.
fn is_no_offset(e: &KafkaError) -> bool {
    matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
}

pub type PaymentConsumer = rdkafka::consumer::StreamConsumer<ConsumerCtx>;

/// The consumer's librdkafka settings.
pub fn consumer_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    config.apply_connection(&mut client);
    for (key, value) in &config.consumer_properties {
        client.set(key, value);
    }
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("client.id", "payment-service")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "1000");
    client
}

/// Creates the consumer (not subscribed yet).
///
/// # Errors
/// When librdkafka refuses the configuration.
pub fn create(
    config: &KafkaConfig,
    metrics: Arc<Metrics>,
) -> Result<PaymentConsumer, ServiceError> {
    consumer_config(config)
        .create_with_context(ConsumerCtx {
            metrics,
            topic: config.topic.clone(),
        })
        .map_err(|e| ServiceError::KafkaCreate(config.security.redact(&e.to_string())))
}

/// Refuses to start when the broker says the topic or the dead-letter topic
/// does not exist (a dead letter would otherwise wait forever), or refuses
/// the login or the TLS handshake (librdkafka would retry those for ever). A
/// broker that does not answer is only logged: the consumer connects when it
/// can. On a cluster of several brokers, a warning names a topic that the
/// loss of one broker can hurt (replication factor 1, `min.insync.replicas=1`):
/// dead letters are acknowledged with `acks=all` before their offsets are
/// committed, which only means something with two replicas in sync.
///
/// # Errors
/// [`ServiceError::MissingTopic`], [`ServiceError::KafkaSecurity`],
/// [`ServiceError::KafkaCreate`].
pub async fn check_topics(config: &KafkaConfig) -> Result<(), ServiceError> {
    let timeout = config.request_timeout;
    // A client of its own with the connection settings only, polled while it
    // waits (the consumer's events are served only once it consumes), asked
    // in short slices, so that a refused login or a failed TLS handshake
    // reported meanwhile ends the wait at once.
    let mut probe_config = ClientConfig::new();
    config.apply_connection(&mut probe_config);
    probe_config.set("bootstrap.servers", &config.bootstrap_servers);
    let probe: rdkafka::producer::BaseProducer<ProbeCtx> = probe_config
        .create_with_context(ProbeCtx::default())
        .map_err(|e| ServiceError::KafkaCreate(config.security.redact(&e.to_string())))?;
    let metadata = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match probe
                .client()
                .fetch_metadata(None, left.min(Duration::from_millis(400)))
            {
                Ok(m) => return Ok(m),
                Err(e) => {
                    // Serves the error (and log) events waiting in the
                    // probe's queue; with a deadline, all of them.
                    probe.poll(Duration::from_millis(100));
                    if let Some(failure) = probe.context().security_failure.get() {
                        return Err(Err(failure));
                    }
                    if left.is_zero() {
                        return Err(Ok(e));
                    }
                }
            }
        }
    })
    .await;
    let metadata = match metadata {
        Ok(Ok(m)) => m,
        Ok(Err(Err((failure, detail)))) => {
            return Err(ServiceError::KafkaSecurity(
                config.security.redact(&failure.explain("kafka", &detail)),
            ));
        }
        Ok(Err(Ok(e))) => {
            tracing::warn!("cannot read the broker's metadata to check the topics ({e}); carrying on, the consumer connects when it can");
            return Ok(());
        }
        Err(e) => {
            tracing::warn!("checking the topics failed: {e}");
            return Ok(());
        }
    };
    for (setting, topic) in [
        ("kafka.topic", &config.topic),
        ("kafka.dead_letter_topic", &config.dead_letter_topic),
    ] {
        let present = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !present {
            return Err(ServiceError::MissingTopic {
                setting,
                topic: topic.clone(),
            });
        }
    }
    let brokers = metadata.brokers().len();
    if brokers > 1 {
        for topic in [&config.topic, &config.dead_letter_topic] {
            let replicas = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.replicas().len()))
                .min()
                .unwrap_or(0);
            let min_isr = min_insync_replicas(config, topic).await;
            for warning in
                service_kit::topics::durability_warnings(topic, replicas, &min_isr, brokers)
            {
                tracing::warn!("{warning}");
            }
        }
    }
    Ok(())
}

/// A topic's `min.insync.replicas`, read with an admin client of the same
/// connection settings.
async fn min_insync_replicas(config: &KafkaConfig, topic: &str) -> Result<i32, String> {
    let mut client = ClientConfig::new();
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client.set("bootstrap.servers", &config.bootstrap_servers);
    let admin: AdminClient<DefaultClientContext> = client.create().map_err(|e| e.to_string())?;
    let options = AdminOptions::new().request_timeout(Some(config.request_timeout));
    let resource = ResourceSpecifier::Topic(topic);
    let described = admin
        .describe_configs([&resource], &options)
        .await
        .map_err(|e| e.to_string())?;
    let entry = described
        .into_iter()
        .next()
        .ok_or_else(|| "no answer".to_owned())?
        .map_err(|code| code.to_string())?;
    let value = entry
        .get("min.insync.replicas")
        .and_then(|e| e.value.clone())
        .ok_or_else(|| "not in the answer".to_owned())?;
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))
}

/// Exponential backoff between `min` and `max`.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { next: min, max }
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }
}

/// Sleeps `delay`; false when shutdown was requested first.
async fn sleep_unless_stopped(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        Ok(_) = shutdown.wait_for(|stop| *stop) => false,
    }
}

/// A waker that only notes that it was woken.
#[derive(Default)]
struct WokenFlag(AtomicBool);

impl Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Events (statistics, rebalances, commit results) one [`try_recv`] serves
/// at most before it gives up looking for a message.
const MAX_EVENTS_PER_TRY: usize = 16;

/// The next message if the consumer has one fetched already, else `None`,
/// without waiting: one zero-timeout poll of the consumer's queue. A poll
/// that served an event instead of a message (it wakes its waker to be
/// polled again) is repeated, so that a statistics report does not end a
/// batch early.
fn try_recv(consumer: &PaymentConsumer) -> Option<KafkaResult<OwnedMessage>> {
    let flag = Arc::new(WokenFlag::default());
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..MAX_EVENTS_PER_TRY {
        flag.0.store(false, Ordering::SeqCst);
        let mut next = std::pin::pin!(consumer.recv());
        match next.as_mut().poll(&mut cx) {
            Poll::Ready(received) => return Some(received.map(|m| m.detach())),
            Poll::Pending if flag.0.load(Ordering::SeqCst) => {}
            Poll::Pending => return None,
        }
    }
    None
}

/// How far a batch got.
struct Progress {
    /// Per message of the batch: its outcome is durable (row committed,
    /// found already charged, or dead letter acknowledged).
    done: Vec<bool>,
    end: End,
}

/// How a batch ended.
enum End {
    /// Every message done.
    Complete,
    /// Shutdown while the message at this index (or the batch's transaction,
    /// starting with it) waited for a retry.
    Interrupted(usize),
    /// A fatal error; the service stops.
    Failed(ServiceError),
}

/// What a charge ended with.
enum ChargeResult {
    Charged,
    Duplicate,
    /// Not charged, for good: (reason, `dead_letters_total` label).
    Rejected(String, &'static str),
    Interrupted,
}

/// What a batch's transaction ended with.
enum BatchResult {
    /// Committed: each charge's result, in order (never `Interrupted`).
    Judged(Vec<ChargeResult>),
    /// Nothing charged: process the batch one message per transaction.
    /// `maybe_committed`: an earlier attempt's COMMIT went unanswered.
    OneAtATime { maybe_committed: bool },
    /// Shutdown while retrying: nothing charged.
    Interrupted,
}

/// Which charges an unanswered COMMIT may have recorded: the first of each
/// (order, event id) pair in the batch. A charge found already recorded
/// with its own order and event id counts as charged (by that commit), not
/// as a duplicate, once per pair.
struct MaybeCommitted {
    active: bool,
    claimed: HashSet<(u64, String)>,
}

impl MaybeCommitted {
    fn new(active: bool) -> MaybeCommitted {
        MaybeCommitted {
            active,
            claimed: HashSet::new(),
        }
    }

    /// Whether `charge` may be one an unanswered COMMIT recorded.
    fn applies(&self, charge: &Charge) -> bool {
        self.active
            && !self
                .claimed
                .contains(&(charge.order_id, charge.event_id.clone()))
    }

    fn claim(&mut self, charge: &Charge) {
        if self.active {
            self.claimed
                .insert((charge.order_id, charge.event_id.clone()));
        }
    }
}

/// The processing loop and what it needs.
pub struct Processor {
    consumer: Arc<PaymentConsumer>,
    store: Store,
    dead_letters: DeadLetters,
    metrics: Arc<Metrics>,
    retry_min: Duration,
    retry_max: Duration,
    commit_interval: Duration,
    batch_max: usize,
    /// `kafka.snapshot_records = "skip"`.
    skip_snapshots: bool,
}

impl Processor {
    pub fn new(
        consumer: Arc<PaymentConsumer>,
        store: Store,
        dead_letters: DeadLetters,
        metrics: Arc<Metrics>,
        db: &DatabaseConfig,
        kafka: &KafkaConfig,
    ) -> Processor {
        Processor {
            consumer,
            store,
            dead_letters,
            metrics,
            retry_min: db.retry_backoff_min,
            retry_max: db.retry_backoff_max,
            commit_interval: kafka.commit_interval,
            batch_max: kafka.batch_max_messages.max(1),
            skip_snapshots: kafka.snapshot_records == SnapshotRecords::Skip,
        }
    }

    /// Consumes until shutdown; then commits what was processed.
    ///
    /// # Errors
    /// A fatal consumer or dead-letter producer error.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<Outcome, ServiceError> {
        let mut commit_tick =
            tokio::time::interval(self.commit_interval.max(Duration::from_millis(10)));
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut uncommitted = false;
        let result = loop {
            let mut stop = shutdown.clone();
            tokio::select! {
                biased;
                Ok(_) = stop.wait_for(|s| *s) => break Ok(Outcome::Clean),
                _ = commit_tick.tick(), if uncommitted => {
                    self.commit(CommitMode::Async);
                    uncommitted = false;
                }
                received = self.consumer.recv() => {
                    let first = match received {
                        Ok(m) => m.detach(),
                        Err(e) => {
                            if let Some((code, reason)) = self.consumer.client().fatal_error() {
                                break Err(ServiceError::ConsumerFatal(format!("{code:?}: {reason}")));
                            }
                            self.metrics.consumer_errors.inc();
                            tracing::warn!("consumer: {e}");
                            sleep_unless_stopped(Duration::from_millis(500), &mut shutdown).await;
                            continue;
                        }
                    };
                    let batch = match self.gather(first) {
                        Ok(batch) => batch,
                        Err(e) => break Err(e),
                    };
                    self.metrics.batch_messages.observe(batch.len() as f64);
                    let progress = self.process_batch(&batch, &mut shutdown).await;
                    if self.store_offsets(&batch, &progress.done) {
                        uncommitted = true;
                        if self.commit_interval.is_zero() {
                            self.commit(CommitMode::Async);
                            uncommitted = false;
                        }
                    }
                    match progress.end {
                        End::Complete => {}
                        End::Interrupted(i) => {
                            let at = batch.get(i).map(position).unwrap_or_default();
                            break Ok(Outcome::Interrupted { at });
                        }
                        End::Failed(e) => break Err(e),
                    }
                }
            }
        };
        self.final_commit().await;
        result
    }

    /// Waits for any dead letter still queued (none normally: each send is
    /// awaited).
    pub fn flush(&self) {
        self.dead_letters.flush();
    }

    /// `first` and the messages already fetched after it, up to
    /// `kafka.batch_max_messages`.
    ///
    /// # Errors
    /// [`ServiceError::ConsumerFatal`].
    fn gather(&self, first: OwnedMessage) -> Result<Vec<OwnedMessage>, ServiceError> {
        let mut batch = vec![first];
        while batch.len() < self.batch_max {
            match try_recv(&self.consumer) {
                Some(Ok(m)) => batch.push(m),
                Some(Err(e)) => {
                    if let Some((code, reason)) = self.consumer.client().fatal_error() {
                        return Err(ServiceError::ConsumerFatal(format!("{code:?}: {reason}")));
                    }
                    // Process what was taken; the next receive waits anyway.
                    self.metrics.consumer_errors.inc();
                    tracing::warn!("consumer: {e}");
                    break;
                }
                None => break,
            }
        }
        Ok(batch)
    }

    /// Stores, per partition, the offset after the highest message of the
    /// run of done messages that the partition's part of the batch starts
    /// with; a message not done holds back the ones after it in its
    /// partition. True when something was stored.
    fn store_offsets(&self, batch: &[OwnedMessage], done: &[bool]) -> bool {
        let mut last: BTreeMap<(&str, i32), &OwnedMessage> = BTreeMap::new();
        let mut held: BTreeSet<(&str, i32)> = BTreeSet::new();
        for (m, &d) in batch.iter().zip(done) {
            let key = (m.topic(), m.partition());
            if held.contains(&key) {
                continue;
            }
            if !d {
                held.insert(key);
                continue;
            }
            let highest = last.entry(key).or_insert(m);
            if m.offset() > highest.offset() {
                *highest = m;
            }
        }
        for m in last.values() {
            self.store_offset(m);
        }
        !last.is_empty()
    }

    fn store_offset(&self, m: &OwnedMessage) {
        // offset_store keeps offset + 1: the next message to read.
        if let Err(e) = self
            .consumer
            .store_offset(m.topic(), m.partition(), m.offset())
        {
            // The partition was revoked meanwhile: its new owner reads the
            // message again and finds it already charged.
            tracing::info!(at = %position(m), "cannot store the offset ({e}); the partition's next owner will see this message again");
        }
    }

    fn commit(&self, mode: CommitMode) {
        match self.consumer.commit_consumer_state(mode) {
            Ok(()) => {}
            Err(e) if is_no_offset(&e) => {}
            Err(e) => {
                self.metrics.commit_errors.inc();
                tracing::warn!("offset commit failed: {e}");
            }
        }
    }

    /// Commits the stored offsets synchronously (off the async threads).
    async fn final_commit(&self) {
        let consumer = Arc::clone(&self.consumer);
        let metrics = Arc::clone(&self.metrics);
        let done =
            tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
                .await;
        match done {
            Ok(Ok(())) => tracing::info!("processed offsets committed"),
            Ok(Err(e)) if is_no_offset(&e) => tracing::info!("processed offsets already committed"),
            Ok(Err(e)) => {
                metrics.commit_errors.inc();
                tracing::warn!("the last offset commit failed: {e}; the messages since the previous commit will be processed again on the next start (charging nothing)");
            }
            Err(e) => tracing::warn!("the last offset commit failed: {e}"),
        }
    }

    /// Processes a batch; see the module docs.
    async fn process_batch(
        &self,
        batch: &[OwnedMessage],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Progress {
        let started = Instant::now();
        let parsed: Vec<Result<Charge, Invalid>> =
            batch.iter().map(|m| event::parse(m.payload())).collect();
        let skipped: Vec<bool> = parsed.iter().map(|p| self.skips(p)).collect();
        let valid: Vec<usize> = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, p)| (p.is_ok() && !skipped[i]).then_some(i))
            .collect();
        let charges: Vec<&Charge> = valid
            .iter()
            .filter_map(|&i| parsed[i].as_ref().ok())
            .collect();
        let (Some(&first), true) = (valid.first(), charges.len() >= 2) else {
            return self
                .one_at_a_time(batch, &parsed, started, false, shutdown)
                .await;
        };

        let judged = match self.charge_batch(batch, &valid, &charges, shutdown).await {
            BatchResult::Judged(judged) => judged,
            BatchResult::OneAtATime { maybe_committed } => {
                return self
                    .one_at_a_time(batch, &parsed, started, maybe_committed, shutdown)
                    .await
            }
            BatchResult::Interrupted => {
                return Progress {
                    done: vec![false; batch.len()],
                    end: End::Interrupted(first),
                }
            }
        };

        // Committed: the charges and duplicates are done; then the dead
        // letters, in order.
        let mut done = vec![false; batch.len()];
        for (i, _) in skipped.iter().enumerate().filter(|(_, s)| **s) {
            self.metrics.processed(outcome::SNAPSHOT_SKIPPED, started);
            done[i] = true;
        }
        let mut letters: Vec<Option<(String, &'static str)>> = parsed
            .iter()
            .map(|p| p.as_ref().err().map(|e| (e.to_string(), e.kind())))
            .collect();
        for (&i, result) in valid.iter().zip(judged) {
            match result {
                ChargeResult::Charged => {
                    self.metrics.processed(outcome::CHARGED, started);
                    done[i] = true;
                }
                ChargeResult::Duplicate => {
                    self.metrics.processed(outcome::DUPLICATE, started);
                    done[i] = true;
                }
                ChargeResult::Rejected(reason, kind) => letters[i] = Some((reason, kind)),
                // Not produced by a committed batch.
                ChargeResult::Interrupted => {}
            }
        }
        for (i, (message, letter)) in batch.iter().zip(letters).enumerate() {
            let Some((reason, kind)) = letter else {
                continue;
            };
            let at = position(message);
            match self.dead_letter(message, &reason, &at, shutdown).await {
                Ok(true) => {
                    self.metrics.dead_letters.with_label_values(&[kind]).inc();
                    self.metrics.processed(outcome::DEAD_LETTERED, started);
                    done[i] = true;
                }
                Ok(false) => {
                    return Progress {
                        done,
                        end: End::Interrupted(i),
                    }
                }
                Err(e) => {
                    return Progress {
                        done,
                        end: End::Failed(e),
                    }
                }
            }
        }
        Progress {
            done,
            end: End::Complete,
        }
    }

    /// Whether this event is a snapshot record the configuration says to
    /// pass over (`kafka.snapshot_records = "skip"`).
    fn skips(&self, parsed: &Result<Charge, Invalid>) -> bool {
        self.skip_snapshots && parsed.as_ref().is_ok_and(|c| c.snapshot)
    }

    /// Processes the batch one message per transaction, in order.
    async fn one_at_a_time(
        &self,
        batch: &[OwnedMessage],
        parsed: &[Result<Charge, Invalid>],
        started: Instant,
        maybe_committed: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Progress {
        let mut done = vec![false; batch.len()];
        let mut maybe_committed = MaybeCommitted::new(maybe_committed);
        for (i, (message, parsed)) in batch.iter().zip(parsed).enumerate() {
            match self
                .process(message, parsed, started, &mut maybe_committed, shutdown)
                .await
            {
                Ok(true) => done[i] = true,
                Ok(false) => {
                    return Progress {
                        done,
                        end: End::Interrupted(i),
                    }
                }
                Err(e) => {
                    return Progress {
                        done,
                        end: End::Failed(e),
                    }
                }
            }
        }
        Progress {
            done,
            end: End::Complete,
        }
    }

    /// One message in its own transaction; false when interrupted.
    async fn process(
        &self,
        message: &OwnedMessage,
        parsed: &Result<Charge, Invalid>,
        started: Instant,
        maybe_committed: &mut MaybeCommitted,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, ServiceError> {
        let at = position(message);
        if self.skips(parsed) {
            self.metrics.processed(outcome::SNAPSHOT_SKIPPED, started);
            return Ok(true);
        }
        let (reason, kind) = match parsed {
            Ok(charge) => {
                let earlier_commit = maybe_committed.applies(charge);
                match self.charge(charge, &at, earlier_commit, shutdown).await {
                    ChargeResult::Charged => {
                        maybe_committed.claim(charge);
                        self.metrics.processed(outcome::CHARGED, started);
                        return Ok(true);
                    }
                    ChargeResult::Duplicate => {
                        self.metrics.processed(outcome::DUPLICATE, started);
                        return Ok(true);
                    }
                    ChargeResult::Interrupted => return Ok(false),
                    ChargeResult::Rejected(reason, kind) => (reason, kind),
                }
            }
            Err(invalid) => (invalid.to_string(), invalid.kind()),
        };
        if !self.dead_letter(message, &reason, &at, shutdown).await? {
            return Ok(false);
        }
        self.metrics.dead_letters.with_label_values(&[kind]).inc();
        self.metrics.processed(outcome::DEAD_LETTERED, started);
        Ok(true)
    }

    /// Charges one message with retries; see the module docs.
    /// `maybe_committed`: an earlier transaction that may hold this charge
    /// sent its COMMIT and got no answer.
    async fn charge(
        &self,
        charge: &Charge,
        at: &str,
        mut maybe_committed: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> ChargeResult {
        let mut backoff = Backoff::new(self.retry_min, self.retry_max);
        let mut failures = 0u32;
        loop {
            match self.store.charge(charge).await {
                Ok(Recorded::Charged) => {
                    self.recovered(failures, at);
                    tracing::debug!(order_id = charge.order_id, event_id = %charge.event_id, amount = %charge.amount, currency = %charge.currency, %at, "charged");
                    return ChargeResult::Charged;
                }
                Ok(Recorded::Duplicate { existing }) => {
                    self.recovered(failures, at);
                    return judge_duplicate(charge, existing.as_ref(), maybe_committed, at);
                }
                Err(e) if !e.is_transient() => {
                    self.recovered(failures, at);
                    return ChargeResult::Rejected(
                        format!("database refused the payment: {e}"),
                        "rejected_by_database",
                    );
                }
                Err(e) => {
                    failures += 1;
                    // This attempt sent COMMIT and got no answer.
                    maybe_committed |= matches!(e, DbError::CommitUnknown(_));
                    self.metrics.db_errors.inc();
                    let delay = backoff.next();
                    tracing::warn!(order_id = charge.order_id, %at, attempt = failures, retry_in = ?delay, "charging failed: {e}; retrying (the offset does not move until the row is in)");
                    self.metrics.set_stalled(Some(format!(
                        "charging order {} ({at}) failed {failures} times, retrying: {e}",
                        charge.order_id
                    )));
                    if !sleep_unless_stopped(delay, shutdown).await {
                        tracing::warn!(order_id = charge.order_id, %at, "stopping before order {} was charged; it is processed on the next start", charge.order_id);
                        return ChargeResult::Interrupted;
                    }
                }
            }
        }
    }

    /// Charges the valid messages of a batch (`charges`, at `valid` in
    /// `batch`) in one transaction, with retries; see the module docs.
    async fn charge_batch(
        &self,
        batch: &[OwnedMessage],
        valid: &[usize],
        charges: &[&Charge],
        shutdown: &mut watch::Receiver<bool>,
    ) -> BatchResult {
        let at_of = |n: usize| {
            valid
                .get(n)
                .and_then(|&i| batch.get(i))
                .map(position)
                .unwrap_or_default()
        };
        let at = at_of(0);
        let first_order = charges.first().map_or(0, |c| c.order_id);
        let mut backoff = Backoff::new(self.retry_min, self.retry_max);
        let mut failures = 0u32;
        // An earlier attempt sent COMMIT and got no answer.
        let mut maybe_committed = false;
        loop {
            match self.store.charge_batch(charges).await {
                Ok(BatchRecorded::Recorded(recorded)) => {
                    self.recovered(failures, &at);
                    let mut earlier = MaybeCommitted::new(maybe_committed);
                    let mut charged = 0usize;
                    let judged: Vec<ChargeResult> = recorded
                        .iter()
                        .zip(charges)
                        .enumerate()
                        .map(|(n, (recorded, &charge))| {
                            let result = match recorded {
                                Recorded::Charged => {
                                    tracing::debug!(order_id = charge.order_id, event_id = %charge.event_id, amount = %charge.amount, currency = %charge.currency, at = %at_of(n), "charged");
                                    ChargeResult::Charged
                                }
                                Recorded::Duplicate { existing } => judge_duplicate(
                                    charge,
                                    existing.as_ref(),
                                    earlier.applies(charge),
                                    &at_of(n),
                                ),
                            };
                            if matches!(result, ChargeResult::Charged) {
                                earlier.claim(charge);
                                charged += 1;
                            }
                            result
                        })
                        .collect();
                    tracing::debug!(%at, messages = batch.len(), charges = charges.len(), charged, "batch committed");
                    return BatchResult::Judged(judged);
                }
                Ok(BatchRecorded::OneAtATime { reason }) => {
                    self.recovered(failures, &at);
                    self.metrics.batch_fallbacks.inc();
                    tracing::info!(%at, charges = charges.len(), "the batch's insert failed ({reason}); rolled back, nothing charged; charging its messages one per transaction");
                    return BatchResult::OneAtATime { maybe_committed };
                }
                Err(e) if !e.is_transient() => {
                    self.recovered(failures, &at);
                    self.metrics.batch_fallbacks.inc();
                    tracing::info!(%at, charges = charges.len(), "the batch failed ({e}); charging its messages one per transaction");
                    return BatchResult::OneAtATime { maybe_committed };
                }
                Err(e) => {
                    failures += 1;
                    maybe_committed |= matches!(e, DbError::CommitUnknown(_));
                    self.metrics.db_errors.inc();
                    let delay = backoff.next();
                    let more = charges.len() - 1;
                    tracing::warn!(order_id = first_order, more, %at, attempt = failures, retry_in = ?delay, "charging a batch failed: {e}; retrying (the offsets do not move until the rows are in)");
                    self.metrics.set_stalled(Some(format!(
                        "charging order {first_order} and {more} more ({at} …) failed {failures} times, retrying: {e}"
                    )));
                    if !sleep_unless_stopped(delay, shutdown).await {
                        tracing::warn!(order_id = first_order, more, %at, "stopping before the batch was charged; it is processed on the next start");
                        return BatchResult::Interrupted;
                    }
                }
            }
        }
    }

    /// Sends to the dead-letter topic with retries; false when interrupted.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        at: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, ServiceError> {
        let mut backoff = Backoff::new(self.retry_min, self.retry_max);
        let mut failures = 0u32;
        loop {
            match self.dead_letters.send(message, reason).await {
                Ok((partition, offset)) => {
                    self.recovered(failures, at);
                    tracing::warn!(%at, reason, dead_letter = %format!("{}/{partition}@{offset}", self.dead_letters.topic()), "cannot process the message; sent to the dead-letter topic");
                    return Ok(true);
                }
                Err(e) if !e.is_transient() => return Err(ServiceError::DeadLetter(e)),
                Err(e) => {
                    failures += 1;
                    self.metrics.dead_letter_errors.inc();
                    let delay = backoff.next();
                    tracing::warn!(%at, attempt = failures, retry_in = ?delay, "{e}; retrying (the offset does not move until the dead letter is acknowledged)");
                    self.metrics.set_stalled(Some(format!(
                        "dead-lettering {at} failed {failures} times, retrying: {e}"
                    )));
                    if !sleep_unless_stopped(delay, shutdown).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    fn recovered(&self, failures: u32, at: &str) {
        if failures > 0 {
            tracing::info!(%at, failures, "recovered");
            self.metrics.set_stalled(None);
        }
    }
}

/// A charge the table already has a row for: `existing` is the oldest row
/// holding its order or its event id. A duplicate (nothing charged), or a
/// dead letter when the event id charged another order. `maybe_committed`:
/// a COMMIT that may have recorded this very charge went unanswered, so
/// finding its own row means it was charged.
fn judge_duplicate(
    charge: &Charge,
    existing: Option<&Payment>,
    maybe_committed: bool,
    at: &str,
) -> ChargeResult {
    let same_event =
        existing.is_some_and(|p| p.event_id == charge.event_id && p.order_id == charge.order_id);
    if maybe_committed && same_event {
        // An earlier attempt's COMMIT went through but its answer was lost:
        // this is that charge, not a repeat.
        tracing::info!(order_id = charge.order_id, event_id = %charge.event_id, %at, "charged (the row of an earlier attempt was committed)");
        return ChargeResult::Charged;
    }
    match existing {
        Some(p) if p.event_id == charge.event_id && p.order_id != charge.order_id => {
            // The event id is taken by another order: this order would never
            // be charged. Someone must look.
            return ChargeResult::Rejected(
                format!(
                    "conflicting event ids: event id {} already charged order {}; this event is for order {}",
                    charge.event_id, p.order_id, charge.order_id
                ),
                "event_id_conflict",
            );
        }
        Some(p)
            if p.amount != charge.amount
                || p.currency != charge.currency
                || p.order_id != charge.order_id =>
        {
            tracing::warn!(order_id = charge.order_id, event_id = %charge.event_id, amount = %charge.amount, currency = %charge.currency, existing_order_id = p.order_id, existing_event_id = %p.event_id, existing_amount = %p.amount, existing_currency = %p.currency, %at, "already charged, and the event disagrees with the recorded payment; nothing charged");
        }
        Some(p) => {
            tracing::info!(order_id = charge.order_id, event_id = %charge.event_id, existing_event_id = %p.event_id, %at, "already charged; nothing charged");
        }
        None => {
            tracing::info!(order_id = charge.order_id, event_id = %charge.event_id, %at, "already charged; nothing charged");
        }
    }
    ChargeResult::Duplicate
}

/// `topic/partition@offset`.
pub fn position(m: &OwnedMessage) -> String {
    format!("{}/{}@{}", m.topic(), m.partition(), m.offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..5).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350, 350]);
    }

    #[test]
    fn the_consumer_never_commits_by_itself() {
        let mut config: KafkaConfig = toml::from_str(
            r#"
            bootstrap_servers = "127.0.0.1:1"
            properties = { "security.protocol" = "plaintext" }
            consumer_properties = { "session.timeout.ms" = "6000" }
            "#,
        )
        .unwrap();
        config.group_id = "g".into();
        let client = consumer_config(&config);
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
        assert_eq!(client.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(client.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(client.get("isolation.level"), Some("read_committed"));
        assert_eq!(client.get("group.id"), Some("g"));
        assert_eq!(client.get("session.timeout.ms"), Some("6000"));
        assert_eq!(client.get("security.protocol"), Some("plaintext"));
    }
}
