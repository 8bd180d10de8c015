//! Configuration: one TOML file, overridable by environment variables and by
//! `--set` flags, with every default in this file.
//!
//! # Sources, in order of precedence (last wins)
//! 1. The defaults below (`Default` impls and `serde(default = …)`).
//! 2. The TOML file given with `--config`.
//! 3. Environment variables `BINLOG_TAILER__<SECTION>__<KEY>` (double
//!    underscores separate the path; e.g. `BINLOG_TAILER__SOURCE__PORT=3306`).
//! 4. `--set section.key=value` flags.
//!
//! Values given as overrides are read as TOML values when they parse as one
//! (`3306`, `true`, `"text"`, `["a"]`) and as plain strings otherwise.
//!
//! Secrets never come from the file or the command line: the source password
//! is read from the environment variable named by `source.password_env`
//! (default `BINLOG_TAILER_SOURCE_PASSWORD`) or from `source.password_file`.
//! Unknown keys are errors, so a typo cannot silently fall back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use service_kit::config::ConfigError;
use service_kit::config::{load_layered, read_secret};
use service_kit::kafka_security::{KafkaSasl, KafkaSecurity, KafkaTls};

use crate::position::{BinlogCoord, GtidState};

/// Environment variable prefix for overrides.
pub const ENV_PREFIX: &str = "BINLOG_TAILER__";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    #[serde(default)]
    pub start: StartConfig,
    /// The tables whose inserted rows are published; at least one.
    #[serde(default = "default_tables")]
    pub tables: Vec<TableConfig>,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
}

/// `snapshot` and `start.from = "snapshot"`: reading the rows that exist.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Rows read per query (in primary-key order); a chunk is the unit of
    /// progress a killed snapshot resumes after.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub chunk_rows: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            chunk_rows: default_snapshot_chunk_rows(),
        }
    }
}

fn default_snapshot_chunk_rows() -> u32 {
    10_000
}

/// The HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; loopback by default. Port 0 picks a free port
    /// (logged at start).
    #[serde(default = "default_http_listen")]
    pub listen: std::net::SocketAddr,
    /// `/readyz` answers 503 when the replication lag is above this.
    #[serde(default = "default_ready_max_lag", with = "humantime_serde")]
    pub ready_max_lag: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            ready_max_lag: default_ready_max_lag(),
        }
    }
}

fn default_http_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9187))
}
fn default_ready_max_lag() -> Duration {
    Duration::from_secs(60)
}

/// The MariaDB server to read, usually a replica.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Environment variable holding the password.
    #[serde(default = "default_password_env")]
    pub password_env: String,
    /// File holding the password (trailing newline ignored). Takes precedence
    /// over `password_env` when set.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The replica server id this tailer registers with. It must differ from
    /// every server and replica in the replication topology.
    pub server_id: u32,
    /// The replica server id `replay` registers with, so that a replay can run
    /// beside the live tailer (MariaDB disconnects one of two replicas with
    /// the same id). Default: server_id + 1.
    #[serde(default)]
    pub replay_server_id: Option<u32>,
    /// A logical name for the database cluster, used in each event's
    /// CloudEvents `source`. Keep it when moving between a replica and its
    /// primary, so event identities stay the same.
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How often the server sends a heartbeat when it has nothing else to send.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// No event and no heartbeat for this long: the connection is dead, reconnect.
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    #[serde(default = "default_backoff_min", with = "humantime_serde")]
    pub reconnect_backoff_min: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub reconnect_backoff_max: Duration,
    /// The largest binlog event the tailer accepts, in bytes (the client
    /// side of `max_allowed_packet` on its connections). Default and maximum
    /// 1073741824 (1 GiB), MariaDB's largest event: a row event over the
    /// server's own `max_allowed_packet` is still read. An event over this
    /// limit stops the tailer with the setting named; lower it only to bound
    /// the memory one event may take.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    #[serde(default)]
    pub tls: TlsConfig,
}

/// MariaDB's largest `max_allowed_packet`, and so its largest binlog event.
pub const MAX_EVENT_BYTES: usize = 1 << 30;

/// The smallest `source.max_event_bytes` accepted: every ordinary event
/// fits many times over.
const MIN_EVENT_BYTES: usize = 1 << 20;

/// TLS to MariaDB.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `disabled` (default), `required` (encrypt, verify the certificate
    /// against `ca_file` or the system roots, and the host name) or
    /// `required-no-verify` (encrypt only; for test servers).
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM file of the certificate authority that signed the server's
    /// certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    #[default]
    Disabled,
    Required,
    RequiredNoVerify,
}

/// How to resume, and where to begin when there is no checkpoint yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartConfig {
    /// First start only (no checkpoint in the store): `earliest` (the oldest
    /// binlog the server still has), `latest` (only what is committed from
    /// now on), a GTID state (`0-1-42`), or a binlog coordinate
    /// (`mariadb-bin.000003:1234`).
    #[serde(default)]
    pub from: StartFrom,
    /// How to resume from a checkpoint: `gtid` (default; works across servers
    /// of one replication topology) or `file` (file:offset on the same server).
    #[serde(default)]
    pub resume_by: ResumeBy,
}

/// Where the first start begins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
    Gtid(GtidState),
    Coord(BinlogCoord),
    /// Publish every existing row of the tailed tables from one consistent
    /// read view, then stream from the view's binlog position.
    Snapshot,
}

impl std::str::FromStr for StartFrom {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            "snapshot" => Ok(StartFrom::Snapshot),
            other if other.contains(':') => other
                .parse()
                .map(StartFrom::Coord)
                .map_err(|e| e.to_string()),
            other => match other.parse::<GtidState>() {
                Ok(state) if !state.is_empty() => Ok(StartFrom::Gtid(state)),
                Ok(_) => Err("an empty GTID state".to_owned()),
                Err(e) => Err(format!(
                    "{e}; expected earliest, latest, snapshot, a GTID state (0-1-42) or file:offset"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResumeBy {
    #[default]
    Gtid,
    File,
}

/// One tailed table: its inserted rows become events on `topic`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// `database.table`.
    pub table: String,
    pub topic: String,
    /// CloudEvents `type` of the events.
    pub event_type: String,
    /// CloudEvents `dataschema`: a URI naming the schema of `data`.
    #[serde(default)]
    pub dataschema: Option<String>,
    /// Text columns holding JSON documents (MariaDB's `JSON` is LONGTEXT with
    /// a `json_valid` check): published as JSON rather than as strings. The
    /// binlog does not mark them, so they are listed here; `check` reports
    /// columns the server declares JSON that are missing from the list.
    #[serde(default)]
    pub json_columns: Vec<String>,
    /// MariaDB `UUID` columns (16 bytes in the binlog): published as UUID text.
    #[serde(default)]
    pub uuid_columns: Vec<String>,
    /// MariaDB `INET6` columns (16 bytes in the binlog): published as address text.
    #[serde(default)]
    pub inet6_columns: Vec<String>,
    /// MariaDB `VECTOR(n)` columns (11.7+; logged as VARBINARY(4n), n
    /// little-endian float32): published as a JSON array of numbers.
    #[serde(default)]
    pub vector_columns: Vec<String>,
}

impl TableConfig {
    /// How column `name` is published.
    pub fn logical(&self, name: &str) -> crate::map::Logical {
        use crate::map::Logical;
        let listed = |list: &[String]| list.iter().any(|c| c == name);
        if listed(&self.json_columns) {
            Logical::Json
        } else if listed(&self.uuid_columns) {
            Logical::Uuid
        } else if listed(&self.inet6_columns) {
            Logical::Inet6
        } else if listed(&self.vector_columns) {
            Logical::Vector
        } else {
            Logical::Plain
        }
    }

    /// The database and table names.
    pub fn split_name(&self) -> Option<(&str, &str)> {
        self.table
            .split_once('.')
            .filter(|(d, t)| !d.is_empty() && !t.is_empty() && !t.contains('.'))
    }
}

fn default_tables() -> Vec<TableConfig> {
    vec![TableConfig {
        table: "shop.orders".to_owned(),
        topic: "shop.orders.v1".to_owned(),
        event_type: "shop.order.created.v1".to_owned(),
        dataschema: Some(DEFAULT_ORDERS_DATASCHEMA.to_owned()),
        json_columns: vec!["items".to_owned()],
        uuid_columns: Vec::new(),
        inet6_columns: Vec::new(),
        vector_columns: Vec::new(),
    }]
}

/// `dataschema` of the default `shop.orders` table: the schema in
/// `schemas/order_created.v1.json`.
pub const DEFAULT_ORDERS_DATASCHEMA: &str = "urn:binlog-tailer:schema:order_created.v1";

/// The Kafka producer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// How long the producer waits to fill a batch.
    #[serde(default = "default_linger", with = "humantime_serde")]
    pub linger: Duration,
    /// Events handed to the producer and not yet acknowledged, at most. When
    /// reached, the tailer stops reading the binlog until acknowledgements come.
    /// The default (5,000) covers far more than a round trip to the broker at
    /// full speed; more only holds more memory (past ~10,000 records the
    /// allocator's peak grows by tens of MiB).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// The same bound in bytes (keys, values and headers of the events in
    /// flight): memory stays bounded whatever the rows' size. One event
    /// larger than this is still sent, on its own.
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: usize,
    /// Create missing topics at start-up (with the settings below) instead of
    /// refusing to start.
    #[serde(default)]
    pub create_topics: bool,
    #[serde(default = "default_partitions")]
    pub topic_partitions: i32,
    /// Replicas of each partition of a topic the tailer creates: `"auto"`
    /// (the default) is the smaller of 3 and the number of brokers; a number
    /// is checked against the brokers found.
    #[serde(default)]
    pub topic_replication_factor: TopicSetting,
    /// `min.insync.replicas` of a topic the tailer creates: with `"auto"`
    /// (the default), 2 when it has 3 or more replicas, otherwise the
    /// broker's default; a number must not exceed the replication factor.
    #[serde(default)]
    pub topic_min_insync_replicas: TopicSetting,
    /// How long metadata requests at start-up (preflight) may take.
    #[serde(default = "default_kafka_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// TLS to the brokers (see `service_kit::kafka_security`): `ca_file`,
    /// and `cert_file` + `key_file` for a client certificate.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL login: `mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
    /// `username`, and the password from the environment variable
    /// `password_env` (default `BINLOG_TAILER_KAFKA_PASSWORD`) or
    /// `password_file`.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Further librdkafka properties for every client of the tailer (its
    /// producer, and the admin and consumer clients of `check`, the start-up
    /// read-back and snapshots). The delivery guarantees (acks,
    /// enable.idempotence, message.timeout.ms, max.in.flight…), secrets
    /// (sasl.password, ssl.key.password, …) and, with `kafka.tls` /
    /// `kafka.sasl` set, what those decide, cannot be set here.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// `tls` and `sasl` as librdkafka properties, secrets read (by
    /// [`Config::load`]); `Debug` redacts them.
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
pub const DEFAULT_KAFKA_PASSWORD_ENV: &str = "BINLOG_TAILER_KAFKA_PASSWORD";

/// A topic setting the tailer derives from the cluster unless one is given:
/// `"auto"` or a whole number of at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicSetting {
    #[default]
    Auto,
    Fixed(i32),
}

impl std::fmt::Display for TopicSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicSetting::Auto => f.write_str("\"auto\""),
            TopicSetting::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for TopicSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let bad = |found: &str| {
            serde::de::Error::custom(format!(
                "{found} is not \"auto\" or a whole number from 1 to 32767"
            ))
        };
        let n = match Raw::deserialize(deserializer)? {
            Raw::Text(t) if t.trim().eq_ignore_ascii_case("auto") => return Ok(TopicSetting::Auto),
            // Environment overrides arrive as text.
            Raw::Text(t) => t
                .trim()
                .parse::<i64>()
                .map_err(|_| bad(&format!("{t:?}")))?,
            Raw::Number(n) => n,
        };
        match i16::try_from(n) {
            Ok(n) if n >= 1 => Ok(TopicSetting::Fixed(i32::from(n))),
            _ => Err(bad(&n.to_string())),
        }
    }
}

/// How a topic the tailer creates is replicated on a cluster of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicReplicas {
    pub replication_factor: i32,
    /// `None`: the broker's default.
    pub min_insync_replicas: Option<i32>,
}

impl KafkaConfig {
    /// The replication of a topic created on a cluster of `brokers` brokers.
    ///
    /// # Errors
    /// A replication factor above the brokers found, or a
    /// `min.insync.replicas` above the replication factor (no write could
    /// ever be acknowledged): the message names the setting and the fix.
    pub fn topic_replicas(&self, brokers: usize) -> Result<TopicReplicas, String> {
        let brokers = i32::try_from(brokers).unwrap_or(i32::MAX);
        let replication_factor = match self.topic_replication_factor {
            TopicSetting::Auto => brokers.clamp(1, 3),
            TopicSetting::Fixed(n) if n > brokers => {
                return Err(format!(
                    "kafka.topic_replication_factor = {n} but the cluster has {brokers} broker(s); \
                     set it to at most {brokers}, or to \"auto\" (the smaller of 3 and the brokers)"
                ))
            }
            TopicSetting::Fixed(n) => n,
        };
        let min_insync_replicas = match self.topic_min_insync_replicas {
            TopicSetting::Auto => (replication_factor >= 3).then_some(2),
            TopicSetting::Fixed(n) if n > replication_factor => {
                return Err(format!(
                    "kafka.topic_min_insync_replicas = {n} is above the replication factor \
                     ({replication_factor}): the broker could never acknowledge a write with \
                     acks=all; set it to at most {replication_factor}, or to \"auto\""
                ))
            }
            TopicSetting::Fixed(n) => Some(n),
        };
        Ok(TopicReplicas {
            replication_factor,
            min_insync_replicas,
        })
    }
}

/// Producer properties the tailer's guarantees rest on; `kafka.properties`
/// may not set them.
pub const PROTECTED_KAFKA_PROPERTIES: &[&str] = &[
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "bootstrap.servers",
    "metadata.broker.list",
    "transactional.id",
    "enable.gapless.guarantee",
];

/// The tailer's own store of positions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Directory of the store (`checkpoint.sqlite3` inside it); created if missing.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// How often the acknowledged position is written, at most.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// How many past checkpoints the store keeps, at most.
    #[serde(default = "default_history")]
    pub history_limit: u32,
    /// Past checkpoints older than this are dropped.
    #[serde(default = "default_history_max_age", with = "humantime_serde")]
    pub history_max_age: Duration,
    /// A past checkpoint is kept at most this often (the live position still
    /// moves every `interval`).
    #[serde(default = "default_history_every", with = "humantime_serde")]
    pub history_every: Duration,
}

impl CheckpointConfig {
    pub fn retention(&self) -> crate::checkpoint::Retention {
        crate::checkpoint::Retention {
            max_entries: self.history_limit,
            max_age: self.history_max_age,
            every: self.history_every,
        }
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
            interval: default_checkpoint_interval(),
            history_limit: default_history(),
            history_max_age: default_history_max_age(),
            history_every: default_history_every(),
        }
    }
}

/// Graceful shutdown on SIGINT/SIGTERM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long to wait for the transaction being read to end and for the
    /// broker to acknowledge what was sent.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout: default_drain_timeout(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_port() -> u16 {
    3306
}
fn default_password_env() -> String {
    "BINLOG_TAILER_SOURCE_PASSWORD".to_owned()
}
fn default_cluster_name() -> String {
    "default".to_owned()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(2)
}
fn default_max_event_bytes() -> usize {
    MAX_EVENT_BYTES
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_backoff_min() -> Duration {
    Duration::from_millis(250)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}
fn default_compression() -> String {
    "lz4".to_owned()
}
fn default_linger() -> Duration {
    Duration::from_millis(5)
}
fn default_max_in_flight() -> usize {
    5_000
}
fn default_max_in_flight_bytes() -> usize {
    8 << 20
}
fn default_partitions() -> i32 {
    3
}
fn default_kafka_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_history() -> u32 {
    100_000
}
fn default_history_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_history_every() -> Duration {
    Duration::from_secs(10)
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Config {
    /// Loads the file (if any), applies environment and `--set` overrides,
    /// and validates the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, variable or key at fault.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let mut config: Config = load_layered(path, ENV_PREFIX, env, overrides)?;
        config.validate()?;
        config.kafka.security = KafkaSecurity::resolve(
            "kafka",
            config.kafka.tls.as_ref(),
            config.kafka.sasl.as_ref(),
            &[("properties", &config.kafka.properties)],
            DEFAULT_KAFKA_PASSWORD_ENV,
        )?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let field = |field: &str, message: String| ConfigError::Field {
            field: field.to_owned(),
            message,
        };
        if self.source.replay_server_id == Some(self.source.server_id) {
            return Err(field(
                "source.replay_server_id",
                "must differ from source.server_id, or a replay disconnects the live tailer".into(),
            ));
        }
        if self.source.server_id == 0 {
            return Err(field(
                "source.server_id",
                "must not be 0 (MariaDB refuses replicas with server id 0)".into(),
            ));
        }
        if self.snapshot.chunk_rows == 0 {
            return Err(field("snapshot.chunk_rows", "must be at least 1".into()));
        }
        if self.tables.is_empty() {
            return Err(field("tables", "list at least one table".into()));
        }
        for (i, table) in self.tables.iter().enumerate() {
            if table.split_name().is_none() {
                return Err(field(
                    &format!("tables[{i}].table"),
                    format!("{:?} is not database.table", table.table),
                ));
            }
            if table.topic.trim().is_empty() {
                return Err(field(&format!("tables[{i}].topic"), "is empty".into()));
            }
            if table.event_type.trim().is_empty() {
                return Err(field(&format!("tables[{i}].event_type"), "is empty".into()));
            }
        }
        let mut names: Vec<&str> = self.tables.iter().map(|t| t.table.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(field("tables", format!("{} is listed twice", w[0])));
        }
        for key in self.kafka.properties.keys() {
            if PROTECTED_KAFKA_PROPERTIES.contains(&key.as_str()) {
                return Err(field(
                    &format!("kafka.properties.{key}"),
                    "is set by the tailer itself to keep its delivery guarantees".into(),
                ));
            }
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.kafka.compression.as_str()) {
            return Err(field(
                "kafka.compression",
                format!(
                    "{:?}: expected none, gzip, snappy, lz4 or zstd",
                    self.kafka.compression
                ),
            ));
        }
        if self.kafka.max_in_flight == 0 {
            return Err(field("kafka.max_in_flight", "must be at least 1".into()));
        }
        if self.kafka.max_in_flight_bytes == 0 {
            return Err(field(
                "kafka.max_in_flight_bytes",
                "must be at least 1".into(),
            ));
        }
        if let (TopicSetting::Fixed(rf), TopicSetting::Fixed(isr)) = (
            self.kafka.topic_replication_factor,
            self.kafka.topic_min_insync_replicas,
        ) {
            if isr > rf {
                return Err(field(
                    "kafka.topic_min_insync_replicas",
                    format!(
                        "{isr} is above kafka.topic_replication_factor ({rf}): no write could be \
                         acknowledged with acks=all; lower it to at most {rf}"
                    ),
                ));
            }
        }
        if !(MIN_EVENT_BYTES..=MAX_EVENT_BYTES).contains(&self.source.max_event_bytes) {
            return Err(field(
                "source.max_event_bytes",
                format!(
                    "{} is outside {MIN_EVENT_BYTES}..={MAX_EVENT_BYTES} (1 MiB to 1 GiB, MariaDB's \
                     largest event)",
                    self.source.max_event_bytes
                ),
            ));
        }
        if self.source.read_timeout <= self.source.heartbeat {
            return Err(field(
                "source.read_timeout",
                format!(
                    "({}) must be longer than source.heartbeat ({})",
                    humantime::format_duration(self.source.read_timeout),
                    humantime::format_duration(self.source.heartbeat)
                ),
            ));
        }
        if self.source.heartbeat.is_zero() {
            return Err(field("source.heartbeat", "must be more than 0".into()));
        }
        if self.source.reconnect_backoff_min > self.source.reconnect_backoff_max {
            return Err(field(
                "source.reconnect_backoff_min",
                "is larger than source.reconnect_backoff_max".into(),
            ));
        }
        Ok(())
    }

    /// The source password, from `source.password_file` or the environment.
    ///
    /// # Errors
    /// When neither gives one.
    pub fn source_password(&self) -> Result<String, ConfigError> {
        read_secret(
            self.source.password_file.as_deref(),
            &self.source.password_env,
        )
    }

    /// The configured table for `database.table`, if tailed.
    pub fn table(&self, database: &str, table: &str) -> Option<&TableConfig> {
        self.tables
            .iter()
            .find(|t| t.split_name() == Some((database, table)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)], sets: &[&str]) -> Result<Config, ConfigError> {
        // A file per call: tests run in parallel, and two of them writing
        // one path made each read the other's half-written file.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bt-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load(Some(&path), env, &sets)
    }

    const MINIMAL: &str = r#"
        [source]
        user = "tailer"
        server_id = 4001
        [kafka]
        bootstrap_servers = "127.0.0.1:9092"
    "#;

    #[test]
    fn shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
        let config = Config::load(Some(&path), std::iter::empty(), &[]).unwrap();
        assert_eq!(config.tables[0].table, "shop.orders");
    }

    #[test]
    fn topic_replication_fits_the_cluster_unless_set() {
        let auto = load(MINIMAL, &[], &[]).unwrap().kafka;
        assert_eq!(auto.topic_replication_factor, TopicSetting::Auto);
        let replicas = |k: &KafkaConfig, brokers| k.topic_replicas(brokers);
        assert_eq!(
            replicas(&auto, 1),
            Ok(TopicReplicas {
                replication_factor: 1,
                min_insync_replicas: None
            })
        );
        assert_eq!(
            replicas(&auto, 2),
            Ok(TopicReplicas {
                replication_factor: 2,
                min_insync_replicas: None
            })
        );
        for brokers in [3, 5] {
            assert_eq!(
                replicas(&auto, brokers),
                Ok(TopicReplicas {
                    replication_factor: 3,
                    min_insync_replicas: Some(2)
                })
            );
        }
        let set = |sets: &[&str]| load(MINIMAL, &[], sets).map(|c| c.kafka);
        let two = set(&["kafka.topic_replication_factor=2"]).unwrap();
        assert_eq!(replicas(&two, 3).unwrap().replication_factor, 2);
        let err = replicas(&two, 1).unwrap_err();
        assert!(
            err.contains("kafka.topic_replication_factor = 2") && err.contains("1 broker"),
            "{err}"
        );
        let isr = set(&["kafka.topic_min_insync_replicas=3"]).unwrap();
        assert_eq!(replicas(&isr, 3).unwrap().min_insync_replicas, Some(3));
        let err = replicas(&isr, 2).unwrap_err();
        assert!(err.contains("above the replication factor (2)"), "{err}");
        // From the environment (text), and "auto" spelled out.
        let env = load(
            MINIMAL,
            &[
                ("BINLOG_TAILER__KAFKA__TOPIC_REPLICATION_FACTOR", "3"),
                ("BINLOG_TAILER__KAFKA__TOPIC_MIN_INSYNC_REPLICAS", "auto"),
            ],
            &[],
        )
        .unwrap()
        .kafka;
        assert_eq!(env.topic_replication_factor, TopicSetting::Fixed(3));
        assert_eq!(env.topic_min_insync_replicas, TopicSetting::Auto);
        for bad in ["0", "-1", "\"three\"", "40000"] {
            let err = set(&[&format!("kafka.topic_replication_factor={bad}")])
                .unwrap_err()
                .to_string();
            assert!(err.contains("\"auto\" or a whole number"), "{bad}: {err}");
        }
        let err = set(&[
            "kafka.topic_replication_factor=2",
            "kafka.topic_min_insync_replicas=3",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("kafka.topic_min_insync_replicas"), "{err}");
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = load(MINIMAL, &[], &[]).unwrap();
        assert_eq!(c.source.port, 3306);
        assert_eq!(c.start.from, StartFrom::Earliest);
        assert_eq!(c.tables.len(), 1);
        assert_eq!(c.tables[0].topic, "shop.orders.v1");
        assert_eq!(c.checkpoint.interval, Duration::from_secs(1));
    }

    #[test]
    fn env_and_flags_override_the_file_in_that_order() {
        let c = load(
            MINIMAL,
            &[
                ("BINLOG_TAILER__SOURCE__PORT", "13307"),
                ("BINLOG_TAILER__START__FROM", "0-1-42"),
                ("UNRELATED", "x"),
            ],
            &["source.port=13306", "kafka.linger=20ms"],
        )
        .unwrap();
        assert_eq!(c.source.port, 13306);
        assert_eq!(c.kafka.linger, Duration::from_millis(20));
        assert_eq!(c.start.from, StartFrom::Gtid("0-1-42".parse().unwrap()));
    }

    #[test]
    fn unknown_keys_and_passwords_in_the_file_are_refused() {
        let err = load(
            &format!("{MINIMAL}\n[checkpoint]\nintervall = \"1s\""),
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("intervall"), "{err}");
        let err = load(MINIMAL, &[], &["source.password=hunter2"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
    }

    #[test]
    fn max_event_bytes_defaults_to_mariadbs_largest_event_and_is_bounded() {
        assert_eq!(
            load(MINIMAL, &[], &[]).unwrap().source.max_event_bytes,
            1 << 30
        );
        for bad in ["1000", "2147483648"] {
            let err = load(MINIMAL, &[], &[&format!("source.max_event_bytes={bad}")])
                .unwrap_err()
                .to_string();
            assert!(err.contains("source.max_event_bytes"), "{err}");
        }
    }

    #[test]
    fn guarantees_cannot_be_overridden() {
        let err = load(MINIMAL, &[], &["kafka.properties.acks=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.properties.acks"), "{err}");
    }

    #[test]
    fn the_kafka_password_comes_from_a_file_or_the_environment_and_debug_hides_it() {
        let dir = std::env::temp_dir().join(format!("bt-config-sasl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("kafka-password");
        std::fs::write(&file, "sasl-secret-in-file\n").unwrap();
        let sasl = format!(
            "{MINIMAL}\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"tailer\"\n"
        );
        let c = load(
            &sasl,
            &[],
            &[&format!("kafka.sasl.password_file=\"{}\"", file.display())],
        )
        .unwrap();
        let props: BTreeMap<&str, &str> = c.kafka.security.properties().collect();
        assert_eq!(props["security.protocol"], "SASL_PLAINTEXT");
        assert_eq!(props["sasl.password"], "sasl-secret-in-file");
        let debug = format!("{c:?}");
        assert!(!debug.contains("sasl-secret-in-file"), "{debug}");
        let c = load(
            &sasl,
            &[(
                "BINLOG_TAILER_KAFKA_PASSWORD",
                "ignored: env is read, not taken from here",
            )],
            &[],
        );
        // Config::load reads the process environment for the secret, not the
        // override list: a test process without the variable is refused,
        // naming it.
        if std::env::var(DEFAULT_KAFKA_PASSWORD_ENV).is_err() {
            let err = c.unwrap_err().to_string();
            assert!(err.contains(DEFAULT_KAFKA_PASSWORD_ENV), "{err}");
        }
        let err = load(&sasl, &[], &["kafka.sasl.password=hunter2"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!("latest".parse::<StartFrom>(), Ok(StartFrom::Latest));
        assert_eq!(
            "mariadb-bin.000002:345".parse::<StartFrom>(),
            Ok(StartFrom::Coord(BinlogCoord::new(
                "mariadb-bin.000002",
                345
            )))
        );
        assert!("yesterday".parse::<StartFrom>().is_err());
    }
}
