//! Preflight: everything the tailer needs from the server and the broker,
//! checked before it reads a single event (`binlog-tailer check`, and the
//! start of `run`).
//!
//! Each check is a small named function returning a [`Check`]: what was
//! checked, and either what was found or the [`Problem`]: the setting or
//! object, the value found, the value needed, and how to fix it. All checks
//! run, so one start shows every problem at once.

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, Producer};

use crate::config::{Config, KafkaConfig, TableConfig};
use crate::sink::SecurityWatch;
use service_kit::kafka_security::SecurityFailure;

/// Why the broker's metadata could not be read.
enum Probe {
    Kafka(rdkafka::error::KafkaError),
    Security((SecurityFailure, String)),
}

/// Something that must change before the tailer can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub subject: String,
    pub found: String,
    pub needed: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: found {}, needed {}. Fix: {}",
            self.subject, self.found, self.needed, self.fix
        )
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub outcome: Result<String, Problem>,
    /// A setting the tailer runs with but that lets the server write what
    /// stops it later: what can happen and how to avoid it. Never refuses a
    /// start.
    pub warning: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, found: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Ok(found.into()),
            warning: None,
        }
    }
    fn warn(name: impl Into<String>, found: impl Into<String>, warning: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Ok(found.into()),
            warning: Some(warning.into()),
        }
    }
    fn problem(
        name: impl Into<String>,
        found: impl Into<String>,
        needed: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        let name = name.into();
        Self {
            outcome: Err(Problem {
                subject: name.clone(),
                found: found.into(),
                needed: needed.into(),
                fix: fix.into(),
            }),
            name,
            warning: None,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(found) => match &self.warning {
                None => write!(f, "ok    {}: {}", self.name, found),
                Some(warning) => write!(f, "warn  {}: {}. {}", self.name, found, warning),
            },
            Err(problem) => write!(f, "FAIL  {problem}"),
        }
    }
}

/// The server variables the checks read, in one round trip.
struct ServerVars {
    version: String,
    server_id: u32,
    log_bin: bool,
    binlog_format: String,
    row_image: String,
    row_metadata: String,
    log_slave_updates: bool,
    checksum: String,
    encrypt_binlog: bool,
    gtid_slave_pos: String,
    gtid_strict_mode: bool,
}

async fn server_vars(conn: &mut Conn) -> Result<ServerVars, mysql_async::Error> {
    let row: Option<mysql_async::Row> = conn
        .query_first(
            "SELECT @@version, @@server_id, @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, \
             @@GLOBAL.binlog_row_metadata, @@GLOBAL.log_slave_updates, @@GLOBAL.binlog_checksum, @@GLOBAL.encrypt_binlog, \
             @@gtid_slave_pos, @@GLOBAL.gtid_strict_mode",
        )
        .await?;
    let text = |i: usize| {
        row.as_ref()
            .and_then(|r| r.get::<Option<String>, _>(i))
            .flatten()
            .unwrap_or_default()
    };
    let flag = |i: usize| {
        row.as_ref()
            .and_then(|r| r.get::<Option<i64>, _>(i))
            .flatten()
            .unwrap_or(0)
            != 0
    };
    Ok(ServerVars {
        version: text(0),
        server_id: row
            .as_ref()
            .and_then(|r| r.get::<Option<u32>, _>(1))
            .flatten()
            .unwrap_or(0),
        log_bin: flag(2),
        binlog_format: text(3),
        row_image: text(4),
        row_metadata: text(5),
        log_slave_updates: flag(6),
        checksum: text(7),
        encrypt_binlog: flag(8),
        gtid_slave_pos: text(9),
        gtid_strict_mode: flag(10),
    })
}

fn setting(name: &str, found: &str, needed: &str) -> Check {
    if found.eq_ignore_ascii_case(needed) {
        Check::ok(name, found)
    } else {
        Check::problem(
            name,
            found,
            needed,
            format!(
                "SET GLOBAL {name} = {needed}; and put `{name} = {needed}` under [mariadbd] in the \
                 server's configuration so it survives a restart"
            ),
        )
    }
}

/// Checks the MariaDB server the tailer reads.
///
/// # Errors
/// When the server cannot be queried at all.
pub async fn check_source(
    conn: &mut Conn,
    config: &Config,
) -> Result<Vec<Check>, mysql_async::Error> {
    let vars = server_vars(conn).await?;
    let mut checks = vec![check_version(&vars.version, vars.server_id)];
    if !vars.version.to_ascii_lowercase().contains("mariadb") {
        checks.push(Check::problem(
            "server",
            vars.version.clone(),
            "MariaDB",
            "point source.host at a MariaDB server; MySQL's binlog protocol differs",
        ));
    }
    checks.push(if vars.log_bin {
        Check::ok("log_bin", "ON")
    } else {
        Check::problem(
            "log_bin",
            "OFF",
            "ON",
            "start the server with log_bin (e.g. `log_bin = mariadb-bin` under [mariadbd]); it cannot be switched on at runtime",
        )
    });
    checks.push(match setting("binlog_format", &vars.binlog_format, "ROW") {
        // Right globally; a session may still log its own writes as text.
        Check {
            outcome: Ok(found),
            name,
            warning,
        } => Check {
            outcome: Ok(format!(
                "{found} (a session can still SET SESSION binlog_format; an INSERT into a tailed \
                 table logged as a statement stops the tailer, naming it)"
            )),
            name,
            warning,
        },
        problem => problem,
    });
    checks.push(setting("binlog_row_image", &vars.row_image, "FULL"));
    checks.push(setting("binlog_row_metadata", &vars.row_metadata, "FULL"));
    checks.push(check_gtid_strict_mode(vars.gtid_strict_mode));
    checks.push(check_legacy_event_pos(conn).await);
    checks.push(match vars.checksum.to_ascii_uppercase().as_str() {
        "CRC32" => Check::ok("binlog_checksum", "CRC32 (verified on every event)"),
        other => Check::ok(
            "binlog_checksum",
            format!("{other} (events cannot be verified; CRC32 is recommended)"),
        ),
    });
    checks.push(if vars.encrypt_binlog {
        Check::problem(
            "encrypt_binlog",
            "ON",
            "OFF",
            "binlog-tailer cannot read encrypted binlogs; read a server with encrypt_binlog=OFF",
        )
    } else {
        Check::ok("encrypt_binlog", "OFF")
    });
    checks.push(if vars.server_id == config.source.server_id {
        Check::problem(
            "source.server_id",
            config.source.server_id.to_string(),
            "an id no server or replica uses",
            "the tailer registers as a replica with source.server_id; it must differ from the server's own @@server_id",
        )
    } else {
        Check::ok("source.server_id", format!("{} (distinct from the server's)", config.source.server_id))
    });

    let replica = is_replica(conn, &vars).await;
    checks.push(match (replica, vars.log_slave_updates) {
        (false, _) => Check::ok("log_slave_updates", "not a replica"),
        (true, true) => Check::ok(
            "log_slave_updates",
            "ON (a replica that logs what it applies)",
        ),
        (true, false) => Check::problem(
            "log_slave_updates",
            "OFF on a replica",
            "ON",
            "without it the replica does not write replicated transactions to its own binlog; set \
             `log_slave_updates = ON` under [mariadbd] and restart the replica",
        ),
    });

    checks.push(check_replication_privilege(conn).await);
    checks.push(match conn.query_drop("SHOW BINARY LOGS").await {
        Ok(()) => Check::ok("privilege BINLOG MONITOR", "granted"),
        Err(e) => Check::problem(
            "privilege BINLOG MONITOR",
            server_message(&e),
            "BINLOG MONITOR (or REPLICATION CLIENT)",
            format!("GRANT BINLOG MONITOR ON *.* TO {};", config.source.user),
        ),
    });
    for table in &config.tables {
        checks.push(check_table(conn, config, table).await);
    }
    Ok(checks)
}

/// The MariaDB release lines binlog-tailer is tested on (README, "Supported
/// MariaDB versions").
const TESTED_LINES: [&str; 2] = ["10.11", "11.8"];

/// The server's version: MariaDB, and whether of a tested line (another
/// line is a warning: its binlog may hold what no test has seen).
fn check_version(version: &str, server_id: u32) -> Check {
    let found = format!("MariaDB {version} (server_id {server_id})");
    let line_of = |line: &str| {
        version
            .strip_prefix(line)
            .is_some_and(|rest| rest.starts_with('.'))
    };
    if !version.to_ascii_lowercase().contains("mariadb") || TESTED_LINES.iter().any(|l| line_of(l))
    {
        return Check::ok("server", found);
    }
    Check::warn(
        "server",
        found,
        format!(
            "binlog-tailer is tested on MariaDB {}; this release line may write binlog events \
             or positions no test has seen (an unknown event type stops the tailer, it is never \
             skipped)",
            TESTED_LINES.join(" and ")
        ),
    )
}

/// `binlog_legacy_event_pos` (MariaDB 11.x): OFF, the default, writes
/// `end_log_pos` 0 for the events inside a transaction. Either is fine: the
/// tailer computes every position from event sizes (`source::ends`); said so
/// the operator knows what `mariadb-binlog` will show.
async fn check_legacy_event_pos(conn: &mut Conn) -> Check {
    let name = "binlog_legacy_event_pos";
    match conn
        .query_first::<Option<i64>, _>("SELECT @@GLOBAL.binlog_legacy_event_pos")
        .await
    {
        Ok(Some(Some(on))) if on != 0 => {
            Check::ok(name, "ON (every event carries its end position)")
        }
        Ok(Some(_)) => Check::ok(
            name,
            "OFF (events inside a transaction carry end_log_pos 0; the tailer computes their \
             positions from event sizes)",
        ),
        // MariaDB 10.x has no such setting (1193: unknown system
        // variable): every event carries its position.
        Err(mysql_async::Error::Server(e)) if e.code == 1193 => Check::ok(
            name,
            "not a setting of this server (every event carries its end position)",
        ),
        Ok(None) => Check::ok(name, "not reported by the server"),
        Err(e) => Check::ok(
            name,
            format!(
                "could not be read ({}); not needed to run",
                server_message(&e)
            ),
        ),
    }
}

/// `gtid_strict_mode`: with it OFF, the server accepts a GTID whose
/// sequence number does not increase within its domain, and the tailer stops
/// at one (see `source::txn`); a warning, not a refusal, because MariaDB
/// defaults to OFF and most servers never write such a GTID.
fn check_gtid_strict_mode(on: bool) -> Check {
    if on {
        Check::ok(
            "gtid_strict_mode",
            "ON (sequence numbers only increase within a domain)",
        )
    } else {
        Check::warn(
            "gtid_strict_mode",
            "OFF",
            "The server may then write a GTID whose sequence number is not above the last one of \
             its domain (after SET gtid_seq_no, a restored backup, or two primaries writing one \
             domain); the tailer stops at such a GTID rather than skip or repeat an order. Set \
             gtid_strict_mode = ON on every server of the replication topology (SET GLOBAL \
             gtid_strict_mode = ON, and in the server's configuration)",
        )
    }
}

async fn is_replica(conn: &mut Conn, vars: &ServerVars) -> bool {
    match conn
        .query_first::<mysql_async::Row, _>("SHOW SLAVE STATUS")
        .await
    {
        Ok(row) => row.is_some(),
        // Without SLAVE MONITOR: a server that has applied replicated
        // transactions has a replica position.
        Err(_) => !vars.gtid_slave_pos.trim().is_empty(),
    }
}

async fn check_replication_privilege(conn: &mut Conn) -> Check {
    let privileges: Result<Vec<String>, _> = conn
        .query(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = \
             CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
             SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
        )
        .await;
    let user: String = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    match privileges {
        Ok(list)
            if list
                .iter()
                .any(|p| p == "REPLICATION SLAVE" || p == "SUPER") =>
        {
            Check::ok("privilege REPLICATION SLAVE", "granted")
        }
        Ok(_) => Check::problem(
            "privilege REPLICATION SLAVE",
            format!("not granted to {user}"),
            "REPLICATION SLAVE",
            format!("GRANT REPLICATION SLAVE ON *.* TO {user};"),
        ),
        Err(e) => Check::problem(
            "privilege REPLICATION SLAVE",
            format!("cannot tell ({})", server_message(&e)),
            "REPLICATION SLAVE",
            format!("GRANT REPLICATION SLAVE ON *.* TO {user};"),
        ),
    }
}

async fn check_table(conn: &mut Conn, config: &Config, table: &TableConfig) -> Check {
    let name = format!("table {}", table.table);
    let Some((db, tbl)) = table.split_name() else {
        return Check::problem(name, &table.table, "database.table", "fix the tables entry");
    };
    let probe = format!(
        "SELECT * FROM `{}`.`{}` LIMIT 0",
        db.replace('`', "``"),
        tbl.replace('`', "``")
    );
    if let Err(e) = conn.query_drop(probe).await {
        let code = server_code(&e);
        return match code {
            Some(1146) | Some(1049) => Check::problem(
                name,
                "no such table on this server",
                "an existing table",
                "create it (on the primary), or fix `table` in the configuration",
            ),
            _ => Check::problem(
                name,
                server_message(&e),
                "SELECT privilege",
                format!("GRANT SELECT ON `{db}`.* TO {};", config.source.user),
            ),
        };
    }
    let key: Result<Vec<String>, _> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, tbl),
        )
        .await;
    match key {
        Ok(columns) if !columns.is_empty() => {
            if config.start.from == crate::config::StartFrom::Snapshot {
                if let Some(problem) = snapshot_key(conn, db, tbl, &columns).await {
                    return Check::problem(
                        name,
                        problem,
                        "a one-column integer primary key (start.from = \"snapshot\" reads the \
                         table in ranges of it)",
                        "start from another point (start.from = \"earliest\", \"latest\", a GTID \
                         state), or give the table such a key",
                    );
                }
            }
            let notes = special_columns(conn, db, tbl, table).await;
            Check::ok(
                name,
                format!(
                    "readable, primary key ({}) → topic {}{notes}",
                    columns.join(", "),
                    table.topic
                ),
            )
        }
        Ok(_) => Check::problem(
            name,
            "no primary key",
            "a primary key (it becomes the Kafka key)",
            "add a primary key to the table",
        ),
        Err(e) => Check::problem(
            name,
            server_message(&e),
            "a readable primary key",
            "grant SELECT on the table",
        ),
    }
}

/// Why a snapshot cannot read the table by ranges of its primary key
/// `columns`, if it cannot.
async fn snapshot_key(conn: &mut Conn, db: &str, tbl: &str, columns: &[String]) -> Option<String> {
    let [column] = columns else {
        return Some(format!("primary key ({})", columns.join(", ")));
    };
    let data_type: Option<String> = conn
        .exec_first(
            "SELECT DATA_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            (db, tbl, column),
        )
        .await
        .ok()
        .flatten();
    match data_type.as_deref() {
        Some("tinyint" | "smallint" | "mediumint" | "int" | "bigint") => None,
        other => Some(format!(
            "primary key ({column}) of type {}",
            other.unwrap_or("unknown")
        )),
    }
}

/// Compares the columns the server declares JSON, UUID, INET6 or VECTOR
/// with the table's `json_columns`, `uuid_columns`, `inet6_columns` and
/// `vector_columns`; returns notes
/// for the differences (they are published as plain text or bytes).
async fn special_columns(conn: &mut Conn, db: &str, tbl: &str, table: &TableConfig) -> String {
    use crate::map::Logical;
    let types: Vec<(String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, tbl),
        )
        .await
        .unwrap_or_default();
    let checks: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (db, tbl),
        )
        .await
        .unwrap_or_default();
    let mut notes = Vec::new();
    for (column, data_type) in &types {
        let json = checks.iter().any(|c| {
            c.trim()
                .eq_ignore_ascii_case(&format!("json_valid(`{column}`)"))
        });
        let declared = match data_type.as_str() {
            "uuid" => Some((Logical::Uuid, "UUID", "uuid_columns")),
            "inet6" => Some((Logical::Inet6, "INET6", "inet6_columns")),
            "vector" => Some((Logical::Vector, "VECTOR", "vector_columns")),
            _ if json => Some((Logical::Json, "JSON", "json_columns")),
            _ => None,
        };
        let configured = table.logical(column);
        match declared {
            Some((logical, what, key)) if configured != logical => notes.push(format!(
                "column {column} is {what} on the server but not in {key}, so it is published as {}",
                if logical == Logical::Json { "a string" } else { "base64 bytes" }
            )),
            None if configured != Logical::Plain => notes.push(format!(
                "column {column} is listed as {configured:?} but the server declares it {data_type}"
            )),
            _ => {}
        }
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("; note: {}", notes.join("; "))
    }
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

fn server_message(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("error {}: {}", s.code, s.message),
        other => other.to_string(),
    }
}

/// Checks the broker and the topics; creates missing topics when
/// `kafka.create_topics` is on. A refused SASL login or a failed TLS
/// handshake ends the wait for the broker at once, named as such (librdkafka
/// itself would retry them until `kafka.request_timeout`).
pub async fn check_kafka(config: &KafkaConfig, tables: &[TableConfig]) -> Vec<Check> {
    let client = crate::sink::consumer_config(config);
    let admin: AdminClient<DefaultClientContext> = match client.create() {
        Ok(admin) => admin,
        Err(e) => {
            return vec![Check::problem(
                "kafka",
                config.security.redact(&e.to_string()),
                "a valid client configuration",
                "fix kafka.bootstrap_servers, kafka.tls, kafka.sasl and kafka.properties",
            )]
        }
    };
    let timeout = config.request_timeout;
    // librdkafka's metadata call blocks: run it off the async threads, on a
    // client of its own, and keep only what the checks need. It is asked in
    // short slices so that a security failure reported meanwhile ends it.
    let probe = client.clone();
    let metadata = tokio::task::spawn_blocking(move || {
        let producer: BaseProducer<SecurityWatch> = probe
            .create_with_context(SecurityWatch::default())
            .map_err(Probe::Kafka)?;
        let deadline = std::time::Instant::now() + timeout;
        let metadata = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match producer
                .client()
                .fetch_metadata(None, left.min(Duration::from_millis(400)))
            {
                Ok(metadata) => break metadata,
                Err(e) => {
                    // librdkafka's error and log events wait in the client's
                    // queue until it is polled; a poll with a deadline serves
                    // every event that is there (one without serves one).
                    producer.poll(Duration::from_millis(100));
                    if let Some(failure) = producer.context().failure.get() {
                        return Err(Probe::Security(failure));
                    }
                    if left.is_zero() {
                        return Err(Probe::Kafka(e));
                    }
                }
            }
        };
        // Each topic with its partitions and the fewest replicas any of
        // them has.
        let topics: Vec<(String, usize, usize)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let replicas = t.partitions().iter().map(|p| p.replicas().len()).min();
                (
                    t.name().to_owned(),
                    t.partitions().len(),
                    replicas.unwrap_or(0),
                )
            })
            .collect();
        let brokers = metadata.brokers().len();
        drop(metadata);
        crate::frontier::close_in_background(producer);
        Ok((brokers, topics))
    })
    .await;
    let (brokers, existing) = match metadata {
        Ok(Ok(found)) => found,
        Ok(Err(Probe::Security((failure, detail)))) => {
            let needed = match failure {
                SecurityFailure::Authentication => "a SASL login the broker accepts",
                SecurityFailure::Tls => "a TLS connection the broker accepts",
            };
            return vec![Check::problem(
                "kafka",
                config.security.redact(&failure.problem(&detail)),
                needed,
                failure.fix("kafka"),
            )];
        }
        Ok(Err(Probe::Kafka(e))) => {
            return vec![Check::problem(
                "kafka",
                format!(
                    "no answer from {} within {:?} ({})",
                    config.bootstrap_servers,
                    timeout,
                    config.security.redact(&e.to_string())
                ),
                "a reachable broker",
                "check kafka.bootstrap_servers, the network, and that the broker runs",
            )]
        }
        Err(e) => {
            return vec![Check::problem(
                "kafka",
                format!("the metadata request failed: {e}"),
                "a reachable broker",
                "check kafka.bootstrap_servers",
            )]
        }
    };
    let mut checks = vec![Check::ok(
        "kafka",
        format!(
            "{brokers} broker(s) at {} ({})",
            config.bootstrap_servers,
            config.security.describe()
        ),
    )];
    let mut topics: Vec<&str> = tables.iter().map(|t| t.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let name = format!("topic {topic}");
        let found = existing
            .iter()
            .find(|(t, _, _)| t == topic)
            .map(|&(_, partitions, replicas)| (partitions, replicas));
        checks.push(match found {
            Some((partitions, replicas)) => {
                let min_isr = topic_min_insync_replicas(&admin, topic, timeout).await;
                topic_durability(topic, partitions, replicas, min_isr, brokers)
            }
            None if config.create_topics => {
                create_topic(&admin, config, topic, brokers, timeout).await
            }
            None => Check::problem(
                name,
                "missing",
                "an existing topic",
                format!(
                    "create it (e.g. kafka-topics --create --topic {topic}), or set kafka.create_topics = true"
                ),
            ),
        });
    }
    crate::frontier::close_in_background(admin);
    checks
}

/// A topic's `min.insync.replicas`, read with the admin client (`None`
/// when it cannot be read: not allowed to describe configs, say).
async fn topic_min_insync_replicas(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, String> {
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let resource = ResourceSpecifier::Topic(topic);
    let results = admin
        .describe_configs([&resource], &options)
        .await
        .map_err(|e| e.to_string())?;
    let config = results
        .into_iter()
        .next()
        .ok_or_else(|| "no answer".to_owned())?
        .map_err(|code| code.to_string())?;
    let value = config
        .get("min.insync.replicas")
        .and_then(|e| e.value.clone())
        .ok_or_else(|| "min.insync.replicas not in the answer".to_owned())?;
    value
        .parse()
        .map_err(|_| format!("min.insync.replicas = {value:?} is not a number"))
}

/// An existing topic: its partitions, and a warning when a single broker's
/// loss can lose acknowledged events or stop the tailer on a cluster that
/// has more than one.
fn topic_durability(
    topic: &str,
    partitions: usize,
    replicas: usize,
    min_isr: Result<i32, String>,
    brokers: usize,
) -> Check {
    let isr_text = match &min_isr {
        Ok(n) => n.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    let found = format!(
        "{partitions} partition(s), replication factor {replicas}, min.insync.replicas {isr_text}"
    );
    let name = format!("topic {topic}");
    if let Ok(isr) = min_isr {
        if usize::try_from(isr).unwrap_or(0) > replicas {
            return Check::problem(
                name,
                found,
                format!("min.insync.replicas at most the replication factor ({replicas})"),
                format!(
                    "the broker refuses every acks=all write to it (NOT_ENOUGH_REPLICAS) and the \
                     tailer would wait for ever; lower the topic's min.insync.replicas to at most \
                     {replicas} (kafka-configs --alter --entity-type topics --entity-name {topic} \
                     --add-config min.insync.replicas={replicas}), or recreate it with more replicas"
                ),
            );
        }
    }
    let warnings = service_kit::topics::durability_warnings(topic, replicas, &min_isr, brokers);
    if warnings.is_empty() {
        Check::ok(name, found)
    } else {
        Check::warn(name, found, warnings.join("; "))
    }
}

async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    config: &KafkaConfig,
    topic: &str,
    brokers: usize,
    timeout: Duration,
) -> Check {
    let name = format!("topic {topic}");
    let replicas = match config.topic_replicas(brokers) {
        Ok(r) => r,
        Err(message) => {
            return Check::problem(
                name,
                "missing, and not created",
                "replication settings the cluster can meet",
                message,
            )
        }
    };
    let isr_text = replicas
        .min_insync_replicas
        .map(|n| n.to_string())
        .unwrap_or_else(|| "the broker's default".to_owned());
    let isr_value = replicas.min_insync_replicas.map(|n| n.to_string());
    let mut new = NewTopic::new(
        topic,
        config.topic_partitions,
        TopicReplication::Fixed(replicas.replication_factor),
    );
    if let Some(isr) = &isr_value {
        new = new.set("min.insync.replicas", isr);
    }
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    match admin.create_topics(&[new], &options).await {
        Ok(results) => match results.into_iter().next() {
            Some(Ok(_)) => Check::ok(
                name,
                format!(
                    "created with {} partition(s), replication factor {}, min.insync.replicas {isr_text}",
                    config.topic_partitions, replicas.replication_factor
                ),
            ),            Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => {
                Check::ok(name, "exists")
            }
            Some(Err((_, code))) => Check::problem(
                name,
                format!("creating it failed: {code}"),
                "an existing topic",
                "create the topic by hand, or grant the tailer CreateTopics",
            ),
            None => Check::problem(
                name,
                "no answer to CreateTopics",
                "an existing topic",
                "create it by hand",
            ),
        },
        Err(e) => Check::problem(
            name,
            format!("creating it failed: {e}"),
            "an existing topic",
            "create the topic by hand, or grant the tailer CreateTopics",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_topic_reports_its_replication_and_warns_on_a_cluster() {
        let check = topic_durability("t", 3, 3, Ok(2), 3);
        assert_eq!(check.name, "topic t");
        assert_eq!(
            check.outcome,
            Ok("3 partition(s), replication factor 3, min.insync.replicas 2".to_owned())
        );
        assert_eq!(check.warning, None);
        let rf1 = topic_durability("t", 3, 1, Ok(1), 3);
        assert!(rf1.outcome.is_ok(), "a warning never refuses the start");
        assert!(rf1
            .warning
            .is_some_and(|w| w.contains("replication factor 1")));
        assert_eq!(topic_durability("t", 3, 1, Ok(1), 1).warning, None);
        // No write could ever be acknowledged: refused, with the fix.
        let Err(problem) = topic_durability("t", 3, 1, Ok(2), 3).outcome else {
            panic!("min.insync.replicas above the replicas is a problem")
        };
        assert!(problem.fix.contains("min.insync.replicas=1"), "{problem}");
    }
}
