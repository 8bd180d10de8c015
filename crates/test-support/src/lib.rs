//! Fixtures of the integration tests (`tests/`) and the benchmark
//! (`benches/`), compiled once instead of once per test binary: where the
//! local services listen (the same variables and defaults as
//! `tests/env/defaults.env`), connections to them, unique names so tests can
//! run in parallel, and the processes and topics the tests drive.
//!
//! - this file: servers, users, connections, names, ports, HTTP, tools;
//!   [`here!`] and [`repo_root`].
//! - `tailer.rs`: test databases, tailer set-ups and runs, reading topics.
//! - `process.rs`: one child process: its log, signals, exit, kill on drop.
//! - `services.rs`: the order and payment services as child processes.
//! - `kafka.rs`: creating topics, reading them back raw, committed offsets.
//! - `cluster.rs`: the three-node Kafka cluster a test starts and faults.
//! - `faults.rs`: stopping and restarting shared services, order writers.
//! - `scratch.rs`: a MariaDB server of a test's own.
//! - `alltypes.rs`: a table with every column type and its expected values.
//!
//! The services must be running: `make services-up` (or `make test`, which
//! starts them).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use std::path::PathBuf;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

pub mod alltypes;
pub mod cluster;
pub mod faults;
pub mod kafka;
pub mod process;
pub mod random;
pub mod scratch;
pub mod services;
pub mod tailer;

/// What Cargo tells only the package whose tests and benchmarks are being
/// compiled: the paths of its binaries and its scratch directory. A library
/// cannot read them itself (`env!` here would be compiled for this crate),
/// so the test builds this with [`here!`] and hands it to the fixtures that
/// start binaries or write files.
#[derive(Debug, Clone, Copy)]
pub struct Here {
    /// `binlog-tailer`.
    pub tailer_bin: &'static str,
    /// `order-service`.
    pub order_service_bin: &'static str,
    /// `payment-service`.
    pub payment_service_bin: &'static str,
    /// A directory for the test's files (`CARGO_TARGET_TMPDIR`).
    pub tmp: &'static str,
}

impl Here {
    /// A new directory under [`Here::tmp`] named after `prefix`.
    pub fn new_dir(&self, prefix: &str) -> PathBuf {
        let dir = std::path::Path::new(self.tmp).join(unique_name(prefix));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        dir
    }
}

/// The [`Here`] of the test or benchmark that expands it.
#[macro_export]
macro_rules! here {
    () => {
        $crate::Here {
            tailer_bin: env!("CARGO_BIN_EXE_binlog-tailer"),
            order_service_bin: env!("CARGO_BIN_EXE_order-service"),
            payment_service_bin: env!("CARGO_BIN_EXE_payment-service"),
            tmp: env!("CARGO_TARGET_TMPDIR"),
        }
    };
}

/// The repository's root (where `tests/env/` and `schemas/` are).
pub fn repo_root() -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn port(name: &str, default: u16) -> u16 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a port number")),
        Err(_) => default,
    }
}

/// The MariaDB version the services run and scratch servers start with:
/// `BT_MARIADB`, as in `tests/env/defaults.env` ("10.11" or "11.8").
pub fn mariadb_version() -> String {
    var("BT_MARIADB", "10.11")
}

/// Whether the services run MariaDB 11.x (11.8), whose binlog differs from
/// 10.11's (events inside a transaction carry `end_log_pos` 0, `.idx` files
/// beside the binlogs).
pub fn mariadb_11() -> bool {
    mariadb_version().starts_with("11.")
}

/// A MariaDB server program (`mariadbd`, `mariadb-install-db`,
/// `mariadb-binlog`) of [`mariadb_version`], run by `tests/env/mariadb.sh`
/// (for 11.8 in its chroot, with `shared` visible at the same path).
pub fn mariadb_command(shared: &std::path::Path, program: &str) -> std::process::Command {
    let mut command = std::process::Command::new("bash");
    command
        .arg(repo_root().join("tests/env/mariadb.sh"))
        .arg("exec")
        .arg(shared)
        .arg("--")
        .arg(program);
    command
}

/// One row of `SHOW BINLOG EVENTS`.
#[derive(Debug, Clone)]
pub struct BinlogEvent {
    /// Where the event starts.
    pub pos: u64,
    /// Its type as the server names it (`Gtid`, `Query`, `Write_rows_v1`, …).
    pub kind: String,
    /// The header's `end_log_pos` (0 inside a transaction on MariaDB 11.x).
    pub end_log_pos: u64,
    pub info: String,
}

/// Up to `limit` events of binlog `file` from `offset`. An error (the
/// server's "Wrong offset or I/O error") when `offset` is not an event
/// boundary; empty at the end of the file.
pub async fn binlog_events(
    conn: &mut Conn,
    file: &str,
    offset: u64,
    limit: u32,
) -> Result<Vec<BinlogEvent>, mysql_async::Error> {
    let rows: Vec<(String, u64, String, u64, u64, String)> = conn
        .query(format!(
            "SHOW BINLOG EVENTS IN '{file}' FROM {offset} LIMIT {limit}"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(_, pos, kind, _, end_log_pos, info)| BinlogEvent {
            pos,
            kind,
            end_log_pos,
            info,
        })
        .collect())
}

/// Which MariaDB server of the local pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Primary,
    Replica,
}

impl Server {
    pub fn port(self) -> u16 {
        match self {
            Server::Primary => port("BT_PRIMARY_PORT", 13306),
            Server::Replica => port("BT_REPLICA_PORT", 13307),
        }
    }
}

/// The local users, as created by `tests/env/services.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Admin,
    Tailer,
    OrdersApp,
    PaymentsApp,
}

impl User {
    pub fn credentials(self) -> (String, String) {
        match self {
            User::Admin => (
                var("BT_ADMIN_USER", "admin"),
                var("BT_ADMIN_PASSWORD", "admin-local"),
            ),
            User::Tailer => (
                var("BT_TAILER_USER", "tailer"),
                var("BT_TAILER_PASSWORD", "tailer-local"),
            ),
            User::OrdersApp => (
                var("BT_ORDERS_APP_USER", "orders_app"),
                var("BT_ORDERS_APP_PASSWORD", "orders-app-local"),
            ),
            User::PaymentsApp => (
                var("BT_PAYMENTS_APP_USER", "payments_app"),
                var("BT_PAYMENTS_APP_PASSWORD", "payments-app-local"),
            ),
        }
    }
}

pub fn mysql_opts(server: Server, user: User) -> OptsBuilder {
    let (name, password) = user.credentials();
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server.port())
        .user(Some(name))
        .pass(Some(password))
        .prefer_socket(false)
}

/// A connection to one of the local servers. Panics with the fix when the
/// services are not running.
pub async fn connect(server: Server, user: User) -> Conn {
    let opts = mysql_opts(server, user);
    Conn::new(opts).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the MariaDB {server:?} on 127.0.0.1:{} as {user:?}: {e}. \
             Are the services up? Run `make services-up`.",
            server.port()
        )
    })
}

pub fn kafka_bootstrap() -> String {
    format!("127.0.0.1:{}", port("BT_KAFKA_PORT", 19092))
}

/// A name no other test (in this run or an earlier one) uses: for databases
/// and topics. Lower case ASCII, digits and underscores; under 64 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "t_{prefix}_{}_{:x}_{}",
        std::process::id(),
        nanos % 0xffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The value of a global server variable.
pub async fn global_var(conn: &mut Conn, name: &str) -> String {
    let value: Option<String> = conn
        .query_first(format!("SELECT @@GLOBAL.{name}"))
        .await
        .unwrap_or_else(|e| panic!("reading @@GLOBAL.{name}: {e}"));
    value.unwrap_or_else(|| panic!("@@GLOBAL.{name} is NULL"))
}
/// A loopback port free right now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A plain HTTP/1.0 GET on loopback: (status code, body). No client library
/// needed for the small endpoints under test.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, None)
}

/// A plain HTTP/1.0 request on loopback, with an optional JSON body.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n").into_bytes();
    if let Some(body) = body {
        request.extend_from_slice(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
    } else {
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    // Read the head, then exactly Content-Length bytes of body (or to the end
    // when the server sends none): waiting for the server to close could add
    // a delay of its own to every request.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break raw.len();
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end.min(raw.len())]).into_owned();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    loop {
        let have = raw.len().saturating_sub(head_end);
        if length.is_some_and(|len| have >= len) {
            break;
        }
        // A server may answer (413) and close before reading our whole body.
        let n = stream.read(&mut chunk).unwrap_or_default();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = String::from_utf8_lossy(raw.get(head_end..).unwrap_or_default()).into_owned();
    Ok((status, body))
}
/// Whether `cmd` is an executable on PATH.
pub fn on_path(cmd: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(cmd))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Makes sure the test tools are installed: when one of `commands` is
/// missing, runs `tests/env/services.sh install` (the one place that knows
/// how to install them), then insists they are there.
pub fn require_tools(commands: &[&str]) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if commands.iter().all(|c| on_path(c)) {
        return;
    }
    let script = repo_root().join("tests/env/services.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tests/env/services.sh install");
    assert!(
        out.status.success(),
        "{commands:?} missing and `tests/env/services.sh install` failed (it needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in commands {
        assert!(
            on_path(c),
            "{c} still missing after `tests/env/services.sh install`"
        );
    }
}
