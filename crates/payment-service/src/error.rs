//! How the service ends: [`Outcome`] when it stopped on request,
//! [`ServiceError`] when it stopped on an error or could not start.

use std::net::SocketAddr;

use rdkafka::error::KafkaError;

use crate::config::ConfigError;
use crate::dead_letter;

/// How [`run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped on request; every processed message's offset committed.
    Clean,
    /// Stopped on request while the message at `at` (`topic/partition@offset`;
    /// for a batch waiting for its transaction, the batch's first charge)
    /// was waiting for a retry; it is processed on the next start.
    Interrupted { at: String },
}

/// Why the service stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on http.listen = {addr}: {source}; choose another address (port 0 picks a free one)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("Kafka consumer: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "cannot create the Kafka consumer: {0}; fix kafka.tls, kafka.sasl or kafka.properties"
    )]
    KafkaCreate(String),
    #[error("Kafka: {0}")]
    KafkaSecurity(String),
    #[error("{setting} = {topic:?}: the broker has no such topic; create it (kafka-topics.sh --create --topic {topic}) or fix the setting")]
    MissingTopic {
        setting: &'static str,
        topic: String,
    },
    #[error(transparent)]
    DeadLetter(#[from] dead_letter::DeadLetterError),
    #[error("the Kafka consumer failed fatally: {0}")]
    ConsumerFatal(String),
}
