//! The dead-letter producer: a message the service cannot process goes to
//! `kafka.dead_letter_topic` unchanged (key, payload, headers) plus headers
//! saying why and where it came from.
//!
//! # Contract
//! [`DeadLetters::send`] returns once the broker has acknowledged the record
//! with `acks=all` (idempotent producer). Only then does the consumer store
//! the original's offset, so a dead letter is never lost; after a crash
//! between the acknowledgement and the offset commit it may be written twice
//! (dead letters are at-least-once, payments exactly-once).
//!
//! # Headers added
//! | header | value |
//! |---|---|
//! | [`HEADER_REASON`] `dlq.reason` | what is wrong, e.g. `schema mismatch: data.amount "-5.00" is negative; a payment cannot be` |
//! | [`HEADER_SOURCE_TOPIC`] `dlq.source.topic` | the topic it was read from |
//! | [`HEADER_SOURCE_PARTITION`] `dlq.source.partition` | its partition (decimal) |
//! | [`HEADER_SOURCE_OFFSET`] `dlq.source.offset` | its offset (decimal) |
//! | [`HEADER_GROUP`] `dlq.consumer.group` | the consumer group that gave up on it |
//!
//! Original headers whose names start with `dlq.` (a dead letter fed back
//! in) are replaced, not repeated.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Statistics};

use super::config::KafkaConfig;
use super::metrics::{Client, Metrics};

pub const HEADER_REASON: &str = "dlq.reason";
pub const HEADER_SOURCE_TOPIC: &str = "dlq.source.topic";
pub const HEADER_SOURCE_PARTITION: &str = "dlq.source.partition";
pub const HEADER_SOURCE_OFFSET: &str = "dlq.source.offset";
pub const HEADER_GROUP: &str = "dlq.consumer.group";

/// Why a dead letter could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("cannot create the dead-letter producer: {0}; fix kafka.tls, kafka.sasl or kafka.properties")]
    Create(String),
    /// Retried by the caller.
    #[error("the dead-letter topic {topic} did not take the record: {source}")]
    Delivery { topic: String, source: KafkaError },
    /// The producer cannot be used any more; the service stops.
    #[error("the dead-letter producer failed fatally ({code}): {reason}")]
    Fatal { code: String, reason: String },
}

impl DeadLetterError {
    pub fn is_transient(&self) -> bool {
        matches!(self, DeadLetterError::Delivery { .. })
    }
}

/// The producer's librdkafka context: its statistics (every second, from
/// its own background thread) report on the broker connection.
pub struct ProducerCtx {
    metrics: Arc<Metrics>,
}

impl ClientContext for ProducerCtx {
    fn stats(&self, statistics: Statistics) {
        // Bootstrap entries have node id -1; a real broker connection is "UP".
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.metrics.broker_report(Client::DeadLetterProducer, up);
    }
}

/// The producer and where it writes.
pub struct DeadLetters {
    producer: FutureProducer<ProducerCtx>,
    topic: String,
    group: String,
    timeout: Duration,
}

impl DeadLetters {
    /// Creates the producer (`acks=all`, idempotent; each attempt bounded by
    /// `kafka.request_timeout`).
    ///
    /// # Errors
    /// When librdkafka refuses the configuration.
    pub fn new(
        config: &KafkaConfig,
        metrics: Arc<Metrics>,
    ) -> Result<DeadLetters, DeadLetterError> {
        let mut client = rdkafka::ClientConfig::new();
        config.apply_connection(&mut client);
        let timeout_ms = config.request_timeout.as_millis().max(1).to_string();
        client
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", &timeout_ms)
            .set("client.id", "payment-service-dlq")
            .set("statistics.interval.ms", "1000");
        let producer = client
            .create_with_context(ProducerCtx { metrics })
            .map_err(|e| DeadLetterError::Create(config.security.redact(&e.to_string())))?;
        Ok(DeadLetters {
            producer,
            topic: config.dead_letter_topic.clone(),
            group: config.group_id.clone(),
            timeout: config.request_timeout,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes `original` to the dead-letter topic with `reason`, and waits
    /// for the acknowledgement. Returns the dead letter's partition and offset.
    ///
    /// # Errors
    /// [`DeadLetterError::Delivery`] (retry) or [`DeadLetterError::Fatal`].
    pub async fn send(
        &self,
        original: &OwnedMessage,
        reason: &str,
    ) -> Result<(i32, i64), DeadLetterError> {
        let headers = dead_letter_headers(original, reason, &self.group);
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = original.key() {
            record = record.key(key);
        }
        if let Some(payload) = original.payload() {
            record = record.payload(payload);
        }
        match self
            .producer
            .send(record, Timeout::After(self.timeout))
            .await
        {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((source, _)) => {
                if let Some((code, reason)) = self.producer.client().fatal_error() {
                    return Err(DeadLetterError::Fatal {
                        code: format!("{code:?}"),
                        reason,
                    });
                }
                Err(DeadLetterError::Delivery {
                    topic: self.topic.clone(),
                    source,
                })
            }
        }
    }

    /// Waits for anything still queued (nothing, normally: every send is
    /// awaited).
    pub fn flush(&self) {
        let _ = self.producer.flush(Timeout::After(self.timeout));
    }
}

/// The original headers (without `dlq.*`) and the dead-letter headers.
pub fn dead_letter_headers(original: &OwnedMessage, reason: &str, group: &str) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(existing) = original.headers() {
        for h in existing.iter() {
            if h.key.starts_with("dlq.") {
                continue;
            }
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let partition = original.partition().to_string();
    let offset = original.offset().to_string();
    for (key, value) in [
        (HEADER_REASON, reason),
        (HEADER_SOURCE_TOPIC, original.topic()),
        (HEADER_SOURCE_PARTITION, partition.as_str()),
        (HEADER_SOURCE_OFFSET, offset.as_str()),
        (HEADER_GROUP, group),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Timestamp;

    #[test]
    fn headers_keep_the_originals_and_say_why_and_where() {
        let original_headers = OwnedHeaders::new()
            .insert(Header {
                key: "binlog.gtid",
                value: Some("0-1-5"),
            })
            .insert(Header {
                key: "dlq.reason",
                value: Some("an older reason"),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            });
        let original = OwnedMessage::new(
            Some(b"{bad".to_vec()),
            Some(b"42".to_vec()),
            "shop.orders.v1".into(),
            Timestamp::NotAvailable,
            2,
            17,
            Some(original_headers),
        );
        let headers = dead_letter_headers(&original, "the payload is not JSON", "payment-service");
        let got: Vec<(String, Option<String>)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        let s = |k: &str, v: &str| (k.to_owned(), Some(v.to_owned()));
        assert_eq!(
            got,
            vec![
                s("binlog.gtid", "0-1-5"),
                ("empty".to_owned(), None),
                s("dlq.reason", "the payload is not JSON"),
                s("dlq.source.topic", "shop.orders.v1"),
                s("dlq.source.partition", "2"),
                s("dlq.source.offset", "17"),
                s("dlq.consumer.group", "payment-service"),
            ]
        );
    }
}
