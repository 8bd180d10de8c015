//! What the three binaries (binlog-tailer, order-service, payment-service)
//! share at their edge, and nothing else: no Kafka client, no MariaDB.
//!
//! - `config.rs`: the layered loader (file, `<PREFIX>SECTION__KEY`
//!   environment variables, `--set` flags) and secrets.
//! - `process.rs`: logging set-up; SIGINT/SIGTERM as a shutdown signal.
//! - `ops_http.rs`: `/metrics`, `/healthz` and `/readyz`, written once.
//! - `metrics.rs`: registering metrics whose names are constants.
//! - `kafka_security.rs`: `kafka.tls` and `kafka.sasl` as librdkafka
//!   properties, secrets read and kept out of logs.
//! - `topics.rs`: warnings about a Kafka topic's replication, from numbers
//!   the service read with its own client.

pub mod config;
pub mod kafka_security;
pub mod metrics;
pub mod ops_http;
pub mod process;
pub mod topics;
