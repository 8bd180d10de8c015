//! The consumer loop: one message at a time, in order per partition;
//! database commit (or dead-letter acknowledgement) first, offset after.
//!
//! # Per message
//! 1. [`super::event::parse`] the payload.
//! 2. Valid: [`Store::charge`] (one transaction). A transient database
//!    error is retried with exponential backoff (`database.retry_backoff_*`)
//!    for as long as it takes; the consumer does not move meanwhile, and
//!    `/readyz` says what is stuck. A row the table refuses is dead-lettered,
//!    and so is an event whose id already charged *another* order (the
//!    order would otherwise never be charged). A duplicate (the order, or
//!    this event, already charged) is counted and moves on.
//! 3. Invalid: [`DeadLetters::send`] and wait for the acknowledgement
//!    (retried the same way).
//! 4. Only then is the message's offset *stored* (librdkafka's
//!    `offset_store`: offset + 1); stored offsets are committed every
//!    `kafka.commit_interval` (asynchronously), when partitions are revoked
//!    (synchronously, in the rebalance callback) and at shutdown
//!    (synchronously). So a committed offset never passes a message whose
//!    outcome is not durable; a crash repeats at most the messages since
//!    the last commit, and the database's unique keys make those repeats
//!    charge nothing.
//!
//! # Shutdown
//! The shutdown signal is looked at between messages and during retry
//! waits, never in the middle of a database transaction: the message being
//! processed is finished, its offset stored and committed, and the loop
//! ends ([`Outcome::Clean`]). A shutdown while a message is waiting to be
//! retried ends without it ([`Outcome::Interrupted`]); its offset is not
//! stored, so it is processed on the next start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tokio::sync::watch;

use super::config::{DatabaseConfig, KafkaConfig};
use super::dead_letter::DeadLetters;
use super::event::{self, Charge};
use super::metrics::{outcome, Client, Metrics};
use super::store::{DbError, Recorded, Store};
use crate::error::{Outcome, ServiceError};

/// The consumer's librdkafka context: statistics → gauges; commits of
/// stored offsets when partitions are taken away; failed commits counted.
pub struct ConsumerCtx {
    metrics: Arc<Metrics>,
    topic: String,
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
    for (key, value) in config.properties.iter().chain(&config.consumer_properties) {
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
pub fn create(config: &KafkaConfig, metrics: Arc<Metrics>) -> Result<PaymentConsumer, KafkaError> {
    consumer_config(config).create_with_context(ConsumerCtx {
        metrics,
        topic: config.topic.clone(),
    })
}

/// Refuses to start when the broker says the topic or the dead-letter topic
/// does not exist (a dead letter would otherwise wait forever). A broker that
/// does not answer is only logged: the consumer connects when it can.
///
/// # Errors
/// [`ServiceError::MissingTopic`].
pub async fn check_topics(
    consumer: &Arc<PaymentConsumer>,
    config: &KafkaConfig,
) -> Result<(), ServiceError> {
    let c = Arc::clone(consumer);
    let timeout = config.request_timeout;
    let metadata = tokio::task::spawn_blocking(move || c.fetch_metadata(None, timeout)).await;
    let metadata = match metadata {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
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
    Ok(())
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

/// How one message ended.
enum Processed {
    Done,
    /// Shutdown while retrying: not processed.
    Interrupted,
}

/// What a charge attempt loop ended with.
enum ChargeResult {
    Charged,
    Duplicate,
    /// Not charged, for good: (reason, `dead_letters_total` label).
    Rejected(String, &'static str),
    Interrupted,
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
                    let message = match received {
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
                    match self.process(&message, &mut shutdown).await {
                        Ok(Processed::Done) => {
                            self.store_offset(&message);
                            uncommitted = true;
                            if self.commit_interval.is_zero() {
                                self.commit(CommitMode::Async);
                                uncommitted = false;
                            }
                        }
                        Ok(Processed::Interrupted) => {
                            break Ok(Outcome::Interrupted { at: position(&message) });
                        }
                        Err(e) => break Err(e),
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

    async fn process(
        &self,
        message: &OwnedMessage,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Processed, ServiceError> {
        let started = Instant::now();
        let at = position(message);
        let (reason, kind) = match event::parse(message.payload()) {
            Ok(charge) => match self.charge(&charge, &at, shutdown).await {
                ChargeResult::Charged => {
                    self.metrics.processed(outcome::CHARGED, started);
                    return Ok(Processed::Done);
                }
                ChargeResult::Duplicate => {
                    self.metrics.processed(outcome::DUPLICATE, started);
                    return Ok(Processed::Done);
                }
                ChargeResult::Interrupted => return Ok(Processed::Interrupted),
                ChargeResult::Rejected(reason, kind) => (reason, kind),
            },
            Err(invalid) => (invalid.to_string(), invalid.kind()),
        };
        if !self.dead_letter(message, &reason, &at, shutdown).await? {
            return Ok(Processed::Interrupted);
        }
        self.metrics.dead_letters.with_label_values(&[kind]).inc();
        self.metrics.processed(outcome::DEAD_LETTERED, started);
        Ok(Processed::Done)
    }

    /// Charges with retries; see the module docs.
    async fn charge(
        &self,
        charge: &Charge,
        at: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> ChargeResult {
        let mut backoff = Backoff::new(self.retry_min, self.retry_max);
        let mut failures = 0u32;
        // An earlier attempt of this loop sent COMMIT and got no answer.
        let mut maybe_committed = false;
        loop {
            match self.store.charge(charge).await {
                Ok(Recorded::Charged) => {
                    self.recovered(failures, at);
                    tracing::debug!(order_id = charge.order_id, event_id = %charge.event_id, amount = %charge.amount, currency = %charge.currency, %at, "charged");
                    return ChargeResult::Charged;
                }
                Ok(Recorded::Duplicate { existing }) => {
                    self.recovered(failures, at);
                    let same_event = existing.as_ref().is_some_and(|p| {
                        p.event_id == charge.event_id && p.order_id == charge.order_id
                    });
                    if maybe_committed && same_event {
                        // An earlier attempt's COMMIT went through but its
                        // answer was lost: this is that charge, not a repeat.
                        tracing::info!(order_id = charge.order_id, event_id = %charge.event_id, %at, "charged (the row of an earlier attempt was committed)");
                        return ChargeResult::Charged;
                    }
                    match &existing {
                        Some(p)
                            if p.event_id == charge.event_id && p.order_id != charge.order_id =>
                        {
                            // The event id is taken by another order: this
                            // order would never be charged. Someone must look.
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
                    return ChargeResult::Duplicate;
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
