//! Running the real `binlog-tailer` binary against the local services, and
//! reading back what it published.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use binlog_tailer::checkpoint::{Checkpoint, Store};
use binlog_tailer::position::{Gtid, GtidState};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::process::Process;
use crate::{connect, kafka_bootstrap, unique_name, Here, Server, User};

/// The tailer's password, as the services script sets it.
pub fn tailer_password() -> String {
    User::Tailer.credentials().1
}

/// A database of the test's own on the primary, with an `orders` table shaped
/// like `shop.orders`, readable by the tailer, and present on the replica.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn create(prefix: &str) -> TestDb {
        let name = unique_name(prefix);
        let mut admin = connect(Server::Primary, User::Admin).await;
        let (tailer, _) = User::Tailer.credentials();
        admin
            .query_drop(format!(
                "CREATE DATABASE {name}; \
                 CREATE TABLE {name}.orders LIKE shop.orders; \
                 GRANT SELECT ON {name}.* TO '{tailer}'@'127.0.0.1'"
            ))
            .await
            .expect("create the test database");
        wait_for_replica(&mut admin).await;
        TestDb { name }
    }

    pub fn table(&self, table: &str) -> String {
        format!("{}.{}", self.name, table)
    }

    /// One statement inserting `count` orders into this database's orders
    /// table, ids from `first` (a session needs `max_recursive_iterations`
    /// at least `count`).
    pub fn insert_many(&self, first: u64, count: u64) -> String {
        format!(
            "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
             WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < {count}) \
             SELECT {first} + n, n % 5 + 1, '9.99', 'EUR', '[]', NOW(6) FROM s",
            self.name
        )
    }
}

/// Waits until the replica has applied everything the primary has committed.
pub async fn wait_for_replica(primary: &mut Conn) {
    let pos: String = primary
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let mut replica = connect(Server::Replica, User::Admin).await;
    let waited: i64 = replica
        .exec_first("SELECT MASTER_GTID_WAIT(?, 60)", (pos.as_str(),))
        .await
        .expect("MASTER_GTID_WAIT")
        .unwrap_or(-1);
    assert_eq!(waited, 0, "the replica did not reach {pos} within 60 s");
}

/// The replica's current GTID state: a starting point for a tailer that
/// should see only what the test does next.
pub async fn replica_gtid_state() -> String {
    let mut replica = connect(Server::Replica, User::Admin).await;
    replica
        .query_first::<String, _>("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default()
}

/// The GTID of the last transaction committed on `conn`.
pub async fn last_gtid(conn: &mut Conn) -> Gtid {
    let text: String = conn
        .query_first("SELECT @@last_gtid")
        .await
        .expect("@@last_gtid")
        .expect("a GTID");
    text.parse().expect("GTID text")
}

/// One tailed table for a test configuration.
pub struct Tailed {
    pub table: String,
    pub topic: String,
    pub event_type: String,
}

impl Tailed {
    /// The `orders` table of `db` (shaped like shop.orders), published to
    /// `topic` as `shop.order.created.v1`: what most tests tail.
    pub fn orders(db: &TestDb, topic: &str) -> Tailed {
        Tailed {
            table: db.table("orders"),
            topic: topic.to_owned(),
            event_type: "shop.order.created.v1".into(),
        }
    }
}

/// The JSON/UUID/INET6 column lists of the test tables, by their event type:
/// order tables are shaped like shop.orders (`items` is JSON; `meta` is the
/// JSON column the schema-change test adds and drops); the all-types table
/// has one column of each.
pub fn special_columns(event_type: &str) -> &'static str {
    match event_type {
        "shop.order.created.v1" => "json_columns = [\"items\", \"meta\"]\n",
        "test.alltypes.created.v1" => {
            "json_columns = [\"j\"]\nuuid_columns = [\"u\"]\ninet6_columns = [\"ip\"]\n"
        }
        "test.alltexts.created.v1" => "vector_columns = [\"vec\"]\n",
        _ => "",
    }
}

/// A configuration file and state directory of a test's own.
pub struct TailerSetup {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    /// The `binlog-tailer` binary under test.
    pub bin: &'static str,
    /// `source.server_id`: the replica id the tailer registers with.
    pub server_id: u32,
}

impl TailerSetup {
    pub fn new(
        here: Here,
        name: &str,
        tables: &[Tailed],
        start_from: &str,
        extra: &str,
    ) -> TailerSetup {
        let dir = here.new_dir(name);
        let state = dir.join("state");
        let config = dir.join("tailer.toml");
        // Distinct replica ids for tailers running at the same time.
        let server_id = 10_000 + (std::process::id() % 10_000) * 100 + (unique_counter() % 100);
        let mut text = format!(
            r#"
[source]
host = "127.0.0.1"
port = {port}
user = "{user}"
server_id = {server_id}
cluster_name = "test"
heartbeat = "1s"
read_timeout = "5s"
reconnect_backoff_min = "100ms"
reconnect_backoff_max = "2s"

[start]
from = "{start_from}"

[kafka]
bootstrap_servers = "{kafka}"
create_topics = true
linger = "2ms"

[checkpoint]
dir = "{state}"
interval = "200ms"
history_every = "0s"

[shutdown]
drain_timeout = "20s"

[http]
listen = "127.0.0.1:0"
"#,
            port = Server::Replica.port(),
            user = User::Tailer.credentials().0,
            kafka = kafka_bootstrap(),
            state = state.display(),
        );
        for t in tables {
            text.push_str(&format!(
                "\n[[tables]]\ntable = \"{}\"\ntopic = \"{}\"\nevent_type = \"{}\"\ndataschema = \"urn:binlog-tailer:schema:order_created.v1\"\n{}",
                t.table,
                t.topic,
                t.event_type,
                special_columns(&t.event_type)
            ));
        }
        text.push_str(extra);
        std::fs::write(&config, text).expect("write config");
        TailerSetup {
            dir,
            config,
            state,
            bin: here.tailer_bin,
            server_id,
        }
    }

    /// Points the configuration at another MariaDB port.
    pub fn with_source_port(self, port: u16) -> TailerSetup {
        let text = std::fs::read_to_string(&self.config).expect("config");
        // The first `port = ` line is [source]'s (the file starts with it).
        let text: String = {
            let mut done = false;
            text.lines()
                .map(|line| {
                    if !done && line.starts_with("port = ") {
                        done = true;
                        format!("port = {port}\n")
                    } else {
                        format!("{line}\n")
                    }
                })
                .collect()
        };
        std::fs::write(&self.config, text).expect("config");
        self
    }

    /// Points the configuration at another Kafka cluster.
    pub fn with_bootstrap(self, bootstrap: &str) -> TailerSetup {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text.replacen(
            &format!("bootstrap_servers = \"{}\"", kafka_bootstrap()),
            &format!("bootstrap_servers = \"{bootstrap}\""),
            1,
        );
        std::fs::write(&self.config, text).expect("config");
        self
    }

    /// Sets the HTTP endpoint's address (the default in tests is port 0).
    pub fn with_http_listen(self, addr: std::net::SocketAddr) -> TailerSetup {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text.replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{addr}\""),
            1,
        );
        std::fs::write(&self.config, text).expect("config");
        self
    }

    /// Appends TOML to the configuration.
    pub fn with_extra(self, extra: &str) -> TailerSetup {
        let mut text = std::fs::read_to_string(&self.config).expect("config");
        text.push_str(extra);
        std::fs::write(&self.config, text).expect("config");
        self
    }

    /// Starts `binlog-tailer run`, its log in `<dir>/tailer-<n>.log`.
    pub fn spawn(&self) -> Tailer {
        self.spawn_with(&[])
    }

    /// Starts `binlog-tailer <args> run` (e.g. `--set` overrides).
    pub fn spawn_with(&self, args: &[&str]) -> Tailer {
        self.spawn_wrapped(&[], args)
    }

    /// Starts `<wrapper…> binlog-tailer <args> run`: with a wrapper such as
    /// `valgrind --tool=callgrind`, the process is the wrapper's.
    pub fn spawn_wrapped(&self, wrapper: &[&str], args: &[&str]) -> Tailer {
        let n = unique_counter();
        let log_path = self.dir.join(format!("tailer-{n}.log"));
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(self.bin);
                command
            }
            None => Command::new(self.bin),
        };
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .arg("run")
            .env("BINLOG_TAILER_SOURCE_PASSWORD", tailer_password())
            .env("BINLOG_TAILER_LOG", "info,binlog_tailer=debug");
        Tailer(Process::spawn("binlog-tailer", &mut command, log_path))
    }

    /// Runs another subcommand to completion: (exit code, stdout, stderr).
    pub fn command(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("BINLOG_TAILER_SOURCE_PASSWORD", tailer_password())
            .output()
            .expect("run binlog-tailer");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The live checkpoint, if any.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        Store::open_existing(&self.state)
            .expect("readable store")
            .and_then(|s| s.current().expect("readable checkpoint"))
    }

    /// Waits (without blocking the runtime) until the checkpoint counts at
    /// least `events` published events; panics with the tailer's log if it
    /// exits or `timeout` passes first.
    pub async fn wait_published(&self, events: u64, timeout: Duration, tailer: &mut Tailer) {
        let deadline = Instant::now() + timeout;
        while self
            .checkpoint()
            .is_none_or(|c| c.events_published < events)
        {
            assert!(
                Instant::now() < deadline,
                "fewer than {events} events published within {timeout:?}; log:\n{}",
                tailer.log()
            );
            if let Some(status) = tailer.child.try_wait().expect("try_wait") {
                panic!("the tailer exited ({status}); log:\n{}", tailer.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the checkpoint covers `gtid`: then every event of that
    /// transaction and before it is acknowledged by the broker.
    pub fn wait_checkpoint(&self, gtid: Gtid, timeout: Duration, tailer: Option<&mut Tailer>) {
        let deadline = Instant::now() + timeout;
        let mut tailer = tailer;
        loop {
            if let Some(cp) = self.checkpoint() {
                if cp.position.gtid.contains(gtid) {
                    return;
                }
            }
            if let Some(t) = tailer.as_deref_mut() {
                if let Some(status) = t.child.try_wait().expect("try_wait") {
                    panic!(
                        "the tailer exited ({status}) before checkpointing {gtid}; log:\n{}",
                        t.log()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "the checkpoint did not reach {gtid} within {timeout:?}: it is {:?}; log:\n{}",
                    self.checkpoint().map(|c| c.position.to_string()),
                    tailer.map(|t| t.log()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn unique_counter() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running tailer process (killed when dropped).
pub struct Tailer(pub Process);

impl std::ops::Deref for Tailer {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl std::ops::DerefMut for Tailer {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

impl Tailer {
    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        self.0.terminate(timeout)
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill(mut self) {
        self.0.kill();
    }
}

/// A consumed Kafka message.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: serde_json::Value,
    pub raw_payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Every message in `topic` now: reads each partition up to its high
/// watermark. Call it once the checkpoint covers what the test wrote: the
/// checkpoint only moves after the broker has acknowledged.
pub fn consume_all(topic: &str) -> Vec<Consumed> {
    consume_all_at(&kafka_bootstrap(), topic)
}

/// [`consume_all`] on the cluster at `bootstrap`.
pub fn consume_all_at(bootstrap: &str, topic: &str) -> Vec<Consumed> {
    let messages = crate::kafka::read_topic_at(bootstrap, topic);
    messages
        .into_iter()
        .map(|m| {
            let raw_payload = m.payload.unwrap_or_default();
            Consumed {
                partition: m.partition,
                offset: m.offset,
                key: String::from_utf8_lossy(&m.key.unwrap_or_default()).into_owned(),
                payload: serde_json::from_slice(&raw_payload).expect("payload is JSON"),
                raw_payload,
                headers: m.headers.into_iter().collect(),
            }
        })
        .collect()
}

/// Parses a GTID state (for start.from).
pub fn gtid_state(text: &str) -> GtidState {
    text.parse().expect("GTID state")
}

/// Within each partition, offsets follow commit order in each replication
/// domain: (GTID sequence, row index) of one domain strictly increase with
/// the offset (domains interleave freely).
pub fn assert_commit_order_per_partition(messages: &[Consumed]) {
    // (partition, domain) → (offset, GTID sequence, row) of each message.
    type Positions = Vec<(i64, u64, u64)>;
    let mut per_partition: BTreeMap<(i32, u32), Positions> = BTreeMap::new();
    for m in messages {
        let gtid: Gtid = m.payload["binloggtid"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .expect("binloggtid");
        let row = m.payload["binlogrow"].as_u64().expect("binlogrow");
        per_partition
            .entry((m.partition, gtid.domain))
            .or_default()
            .push((m.offset, gtid.seq, row));
    }
    for ((partition, domain), list) in &mut per_partition {
        list.sort_unstable();
        let order: Vec<(u64, u64)> = list.iter().map(|&(_, seq, row)| (seq, row)).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "partition {partition}, domain {domain}: offsets do not follow commit order: {order:?}"
        );
    }
}

/// Fails unless the checkpoint `after` (read again) is still `before`:
/// same position, server, event count and write time.
pub fn assert_checkpoint_unchanged(before: &Checkpoint, after: Option<Checkpoint>, what: &str) {
    let after = after.unwrap_or_else(|| panic!("{what}: the checkpoint is gone"));
    assert_eq!(
        (
            &after.position,
            after.source_server_id,
            after.events_published,
            after.written_at_ms
        ),
        (
            &before.position,
            before.source_server_id,
            before.events_published,
            before.written_at_ms
        ),
        "{what}: the checkpoint changed"
    );
}
