//! The payment service's configuration: one TOML file, overridable by
//! environment variables and by `--set` flags, with every default in this
//! file.
//!
//! # Sources, in order of precedence (last wins)
//! 1. The defaults below (`Default` impls and `serde(default = …)`).
//! 2. The TOML file given with `--config`.
//! 3. Environment variables `PAYMENT_SERVICE__<SECTION>__<KEY>` (double
//!    underscores separate the path; e.g. `PAYMENT_SERVICE__DATABASE__PORT=3306`).
//! 4. `--set section.key=value` flags.
//!
//! Override values are read as TOML values when they parse as one (`3306`,
//! `true`, `"text"`) and as plain strings otherwise.
//!
//! The database password never comes from the file or the command line: it
//! is read from the environment variable named by `database.password_env`
//! (default `PAYMENT_SERVICE_DB_PASSWORD`) or from `database.password_file`.
//! Unknown keys are errors, so a typo (or a `database.password`) is refused
//! rather than ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use service_kit::kafka_security::{KafkaSasl, KafkaSecurity, KafkaTls};

/// Environment variable prefix for overrides.
pub const ENV_PREFIX: &str = "PAYMENT_SERVICE__";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    pub database: DatabaseConfig,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub http: HttpConfig,
}

/// The service's own MariaDB database (never the order service's `shop`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Needs SELECT and INSERT on `<database>.payments`.
    pub user: String,
    /// The database holding the `payments` table (`schemas/payments.sql`).
    #[serde(default = "default_database")]
    pub database: String,
    /// Environment variable holding the password.
    #[serde(default = "default_password_env")]
    pub password_env: String,
    /// File holding the password (trailing newline ignored). Takes precedence
    /// over `password_env` when set.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Longest wait for one database operation (connecting included): one
    /// batch's transaction (see `kafka.batch_max_messages`), a lookup or a
    /// health ping. Past it the attempt counts as failed.
    #[serde(default = "default_db_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Connections in the pool, at most (the consumer uses one at a time;
    /// the rest serve `GET /payments/{order_id}` and the health ping).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A failed charge is retried after this, doubling up to `retry_backoff_max`.
    #[serde(default = "default_retry_min", with = "humantime_serde")]
    pub retry_backoff_min: Duration,
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// How often the database is pinged for `/readyz` and `payment_service_db_up`.
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    pub health_interval: Duration,
}

/// The consumer group, and the dead-letter producer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// The topic of `OrderCreated` events (the tailer's `tables.topic`).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The consumer group: several instances with the same group share the
    /// partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Events that cannot be processed go here, with a `dlq.reason` header.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// Offsets of processed messages are committed at most this often (and
    /// at shutdown, and when partitions are revoked). `0s` commits after
    /// every batch. Only offsets of messages whose database commit (or
    /// dead-letter acknowledgement) is done are ever committed.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Longest wait for the broker's metadata at start-up and for one
    /// dead-letter delivery attempt.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most messages taken per batch: the message that arrived plus those
    /// already fetched (never waited for), charged in one database
    /// transaction. At least 1 (1: one transaction per message). Bounds the
    /// memory a batch holds (this many messages) and the size of its
    /// transaction; `database.timeout` must be long enough for it.
    #[serde(default = "default_batch_max_messages")]
    pub batch_max_messages: usize,
    /// What a snapshot record (an event carrying `binlogsnapshot`: a row
    /// binlog-tailer read as it stood, not an insert it saw happen) does:
    /// `charge` (default) charges its order like any `OrderCreated` event,
    /// at most once per order (an order already charged, by its live event
    /// or an earlier snapshot, is a duplicate); `skip` charges nothing and
    /// only acknowledges it, for a service whose historical orders were
    /// charged elsewhere.
    #[serde(default)]
    pub snapshot_records: SnapshotRecords,
    /// TLS to the brokers (see `service_kit::kafka_security`): `ca_file`,
    /// and `cert_file` + `key_file` for a client certificate.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL login: `mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
    /// `username`, and the password from the environment variable
    /// `password_env` (default `PAYMENT_SERVICE_KAFKA_PASSWORD`) or
    /// `password_file`.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Further librdkafka properties for both the consumer and the
    /// dead-letter producer. Those the guarantees rest on
    /// ([`PROTECTED_KAFKA_PROPERTIES`]), secrets (sasl.password,
    /// ssl.key.password, …) and, with `kafka.tls` / `kafka.sasl` set, what
    /// those decide, cannot be set here.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Further librdkafka properties for the consumer only
    /// (session.timeout.ms, heartbeat.interval.ms, max.poll.interval.ms,
    /// group.instance.id, …); the same protected ones are refused.
    #[serde(default)]
    pub consumer_properties: BTreeMap<String, String>,
    /// `tls` and `sasl` as librdkafka properties, secrets read (by
    /// [`PaymentConfig::load`]); `Debug` redacts them.
    #[serde(skip)]
    pub security: KafkaSecurity,
}

impl KafkaConfig {
    /// Sets `kafka.properties`, then the TLS and SASL properties, on a
    /// librdkafka configuration.
    pub fn apply_connection(&self, client: &mut rdkafka::ClientConfig) {
        service_kit::kafka_security::apply_connection(client, &self.properties, &self.security);
    }
}

/// The environment variable read for the Kafka SASL password when
/// `kafka.sasl.password_env` is not set.
pub const DEFAULT_KAFKA_PASSWORD_ENV: &str = "PAYMENT_SERVICE_KAFKA_PASSWORD";

/// librdkafka properties the service sets itself; `kafka.properties` may not.
pub const PROTECTED_KAFKA_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "isolation.level",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "transactional.id",
];

/// The HTTP endpoint: `/payments/{order_id}`, `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; loopback by default. Port 0 picks a free port
    /// (logged at start).
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_port() -> u16 {
    3306
}
fn default_database() -> String {
    "payments".to_owned()
}
fn default_password_env() -> String {
    "PAYMENT_SERVICE_DB_PASSWORD".to_owned()
}
fn default_db_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_connections() -> usize {
    4
}
fn default_retry_min() -> Duration {
    Duration::from_millis(100)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(10)
}
fn default_health_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_topic() -> String {
    "shop.orders.v1".to_owned()
}
fn default_group_id() -> String {
    "payment-service".to_owned()
}
fn default_dead_letter_topic() -> String {
    "shop.orders.v1.dlq".to_owned()
}
fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
/// `kafka.snapshot_records`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotRecords {
    #[default]
    Charge,
    Skip,
}

fn default_batch_max_messages() -> usize {
    500
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9188))
}

/// Why the configuration was refused: the same errors as the tailer's.
pub use service_kit::config::ConfigError;

impl PaymentConfig {
    /// Loads the file (if any), applies environment and `--set` overrides,
    /// and validates the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, variable or key at fault.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<PaymentConfig, ConfigError> {
        let mut config: PaymentConfig =
            service_kit::config::load_layered(path, ENV_PREFIX, env, overrides)?;
        config.validate()?;
        let kafka = &config.kafka;
        config.kafka.security = KafkaSecurity::resolve(
            "kafka",
            kafka.tls.as_ref(),
            kafka.sasl.as_ref(),
            &[
                ("properties", &kafka.properties),
                ("consumer_properties", &kafka.consumer_properties),
            ],
            DEFAULT_KAFKA_PASSWORD_ENV,
        )?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let field = |field: &str, message: String| ConfigError::Field {
            field: field.to_owned(),
            message,
        };
        let db = &self.database;
        if db.user.trim().is_empty() {
            return Err(field("database.user", "is empty".into()));
        }
        if db.database.trim().is_empty() {
            return Err(field("database.database", "is empty".into()));
        }
        if db.database.eq_ignore_ascii_case("shop") {
            return Err(field(
                "database.database",
                "\"shop\" is the order service's database; payments live in their own (payments)"
                    .into(),
            ));
        }
        if db.max_connections == 0 {
            return Err(field(
                "database.max_connections",
                "must be at least 1".into(),
            ));
        }
        if db.timeout.is_zero() {
            return Err(field("database.timeout", "must be more than 0".into()));
        }
        if db.health_interval.is_zero() {
            return Err(field(
                "database.health_interval",
                "must be more than 0".into(),
            ));
        }
        if db.retry_backoff_min.is_zero() {
            return Err(field(
                "database.retry_backoff_min",
                "must be more than 0".into(),
            ));
        }
        if db.retry_backoff_min > db.retry_backoff_max {
            return Err(field(
                "database.retry_backoff_min",
                "is larger than database.retry_backoff_max".into(),
            ));
        }
        let kafka = &self.kafka;
        for (name, value) in [
            ("kafka.bootstrap_servers", &kafka.bootstrap_servers),
            ("kafka.topic", &kafka.topic),
            ("kafka.group_id", &kafka.group_id),
            ("kafka.dead_letter_topic", &kafka.dead_letter_topic),
        ] {
            if value.trim().is_empty() {
                return Err(field(name, "is empty".into()));
            }
        }
        if kafka.dead_letter_topic == kafka.topic {
            return Err(field(
                "kafka.dead_letter_topic",
                "must differ from kafka.topic (dead letters would be consumed again)".into(),
            ));
        }
        if kafka.request_timeout.is_zero() {
            return Err(field("kafka.request_timeout", "must be more than 0".into()));
        }
        if kafka.batch_max_messages == 0 {
            return Err(field(
                "kafka.batch_max_messages",
                "must be at least 1".into(),
            ));
        }
        for (section, map) in [
            ("properties", &kafka.properties),
            ("consumer_properties", &kafka.consumer_properties),
        ] {
            for key in map.keys() {
                if PROTECTED_KAFKA_PROPERTIES.contains(&key.as_str()) {
                    return Err(field(
                        &format!("kafka.{section}.{key}"),
                        "is set by the payment service itself to keep its guarantees".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The database password, from `database.password_file` or the environment.
    ///
    /// # Errors
    /// When neither gives one.
    pub fn database_password(&self) -> Result<String, ConfigError> {
        service_kit::config::read_secret(
            self.database.password_file.as_deref(),
            &self.database.password_env,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [database]
        user = "payments_app"
        [kafka]
        bootstrap_servers = "127.0.0.1:9092"
    "#;

    fn load(text: &str, env: &[(&str, &str)], sets: &[&str]) -> Result<PaymentConfig, ConfigError> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "payment-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        PaymentConfig::load(Some(&path), env, &sets)
    }

    #[test]
    fn shipped_example_parses_and_matches_the_local_services() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/payment-service.example.toml");
        let c = PaymentConfig::load(Some(&path), std::iter::empty(), &[]).unwrap();
        assert_eq!(c.database.port, 13306);
        assert_eq!(c.database.user, "payments_app");
        assert_eq!(c.database.database, "payments");
        assert_eq!(c.kafka.bootstrap_servers, "127.0.0.1:19092");
        assert_eq!(c.kafka.topic, "shop.orders.v1");
        assert_eq!(c.kafka.group_id, "payment-service");
        assert_eq!(c.kafka.dead_letter_topic, "shop.orders.v1.dlq");
        assert_eq!(c.kafka.batch_max_messages, default_batch_max_messages());
        assert_eq!(c.http.listen, default_http_listen());
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = load(MINIMAL, &[], &[]).unwrap();
        assert_eq!(c.database.host, "127.0.0.1");
        assert_eq!(c.database.port, 3306);
        assert_eq!(c.database.database, "payments");
        assert_eq!(c.database.password_env, "PAYMENT_SERVICE_DB_PASSWORD");
        assert_eq!(c.kafka.topic, "shop.orders.v1");
        assert_eq!(c.kafka.group_id, "payment-service");
        assert_eq!(c.kafka.dead_letter_topic, "shop.orders.v1.dlq");
        assert_eq!(c.kafka.commit_interval, Duration::from_secs(1));
        assert_eq!(c.kafka.batch_max_messages, 500);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:9188");
    }

    #[test]
    fn env_and_flags_override_the_file_in_that_order() {
        let c = load(
            MINIMAL,
            &[
                ("PAYMENT_SERVICE__DATABASE__PORT", "13307"),
                ("PAYMENT_SERVICE__KAFKA__GROUP_ID", "g1"),
                ("PAYMENT_SERVICE_DB_PASSWORD", "not a key"),
            ],
            &[
                "database.port=13306",
                "database.database=pay_test",
                "http.listen=127.0.0.1:0",
                "kafka.commit_interval=0s",
                "kafka.batch_max_messages=50",
            ],
        )
        .unwrap();
        assert_eq!(c.database.port, 13306);
        assert_eq!(c.database.database, "pay_test");
        assert_eq!(c.kafka.group_id, "g1");
        assert_eq!(c.http.listen.port(), 0);
        assert_eq!(c.kafka.commit_interval, Duration::ZERO);
        assert_eq!(c.kafka.batch_max_messages, 50);
    }

    #[test]
    fn unknown_keys_passwords_and_bad_values_are_refused() {
        let err = |sets: &[&str]| load(MINIMAL, &[], sets).unwrap_err().to_string();
        assert!(err(&["database.password=hunter2"]).contains("password"));
        assert!(err(&["kafka.topicc=x"]).contains("topicc"));
        assert!(err(&["database.database=shop"]).contains("order service"));
        assert!(err(&["kafka.dead_letter_topic=shop.orders.v1"]).contains("dead_letter_topic"));
        assert!(err(&["kafka.properties.acks=1"]).contains("kafka.properties.acks"));
        let e = load(
            &format!("{MINIMAL}\n[kafka.consumer_properties]\n\"isolation.level\" = \"read_uncommitted\"\n"),
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("kafka.consumer_properties.isolation.level"),
            "{e}"
        );
        assert!(err(&["database.max_connections=0"]).contains("max_connections"));
        assert!(err(&["kafka.batch_max_messages=0"]).contains("batch_max_messages"));
        assert!(err(&["nonsense"]).contains("section.key=value"));
    }

    #[test]
    fn the_password_comes_from_the_file_when_given() {
        let dir = std::env::temp_dir().join(format!("payment-pw-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let c = load(
            MINIMAL,
            &[],
            &[&format!("database.password_file=\"{}\"", file.display())],
        )
        .unwrap();
        assert_eq!(c.database_password().unwrap(), "s3cret");
        let c = load(
            MINIMAL,
            &[],
            &["database.password_env=PAYMENT_SERVICE_TEST_SURELY_UNSET_VARIABLE"],
        )
        .unwrap();
        assert!(c
            .database_password()
            .unwrap_err()
            .to_string()
            .contains("PAYMENT_SERVICE_TEST_SURELY_UNSET_VARIABLE"));
    }
}
