//! Preflight and start-up refusals: a server with the wrong settings, bad
//! configuration, a corrupt checkpoint store. Each must stop the tailer with a
//! message that names the problem, and change nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tailer::{Tailed, TailerSetup};
use common::{kafka_bootstrap, unique_name};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// A MariaDB server of the test's own (Debian's mariadbd, a fresh data
/// directory, a free loopback port), so its global settings can be changed
/// without disturbing other tests. Stopped by PID when dropped.
struct ScratchServer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl ScratchServer {
    async fn start(settings: &str) -> ScratchServer {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("scratch"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un")
                .stdout,
        )
        .expect("user name")
        .trim()
        .to_owned();
        let cnf = dir.join("my.cnf");
        std::fs::write(
            &cnf,
            format!(
                "[mariadbd]\nuser = {user}\ndatadir = {d}/data\nsocket = {d}/mariadb.sock\n\
                 pid-file = {d}/mariadb.pid\nlog-error = {d}/error.log\nport = {port}\n\
                 bind-address = 127.0.0.1\nskip-name-resolve\nserver_id = 77\nlog_bin = mariadb-bin\n\
                 innodb_buffer_pool_size = 32M\n{settings}\n",
                d = dir.display()
            ),
        )
        .expect("my.cnf");
        let status = Command::new("mariadb-install-db")
            .arg(format!("--defaults-file={}", cnf.display()))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg(format!("--auth-root-socket-user={user}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db (is mariadb-server installed? run `make services-up`)");
        assert!(status.success(), "mariadb-install-db failed");
        let child = Command::new("mariadbd")
            .arg(format!("--defaults-file={}", cnf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = ScratchServer { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut conn) = Conn::new(server.root_opts(&user)).await {
                let tailer = common::User::Tailer.credentials();
                conn.query_drop(format!(
                    "CREATE USER '{u}'@'127.0.0.1' IDENTIFIED BY '{p}'; \
                     GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{u}'@'127.0.0.1'; \
                     GRANT SELECT ON shop.* TO '{u}'@'127.0.0.1'",
                    u = tailer.0,
                    p = tailer.1
                ))
                .await
                .expect("tailer user");
                let schema = std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/orders.sql"),
                )
                .expect("schema");
                conn.query_drop(schema)
                    .await
                    .expect("apply schemas/orders.sql");
                let _ = conn.disconnect().await;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the scratch server did not start; see {}",
                server.dir.join("error.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    fn root_opts(&self, user: &str) -> OptsBuilder {
        OptsBuilder::default()
            .socket(Some(self.dir.join("mariadb.sock").display().to_string()))
            .user(Some(user.to_owned()))
    }

    async fn root(&self) -> Conn {
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
            .expect("user")
            .trim()
            .to_owned();
        Conn::new(self.root_opts(&user))
            .await
            .expect("root over the socket")
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup_for(port: u16) -> TailerSetup {
    TailerSetup::new(
        "preflight",
        &[Tailed {
            table: "shop.orders".into(),
            topic: unique_name("preflight"),
            event_type: "shop.order.created.v1".into(),
        }],
        "latest",
        "",
    )
    .with_source_port(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_each_wrong_server_setting_and_passes_when_fixed() {
    let server = ScratchServer::start(
        "binlog_format = STATEMENT\nbinlog_row_image = FULL\nbinlog_row_metadata = FULL",
    )
    .await;
    let setup = setup_for(server.port);

    let (code, out, _) = setup.command(&["check"]);
    assert_eq!(code, 3, "check fails with exit code 3:\n{out}");
    assert!(
        out.contains("FAIL  binlog_format: found STATEMENT, needed ROW"),
        "names binlog_format, found and needed:\n{out}"
    );
    assert!(
        out.contains("SET GLOBAL binlog_format = ROW"),
        "says how to fix it:\n{out}"
    );
    // `run` refuses too, before reading anything.
    let (code, _, err) = setup.command(&["run"]);
    assert_eq!(code, 3, "run refuses with exit code 3:\n{err}");
    assert!(err.contains("binlog_format"), "{err}");

    let mut root = server.root().await;
    root.query_drop("SET GLOBAL binlog_format = ROW; SET GLOBAL binlog_row_metadata = MINIMAL")
        .await
        .expect("set globals");
    let (code, out, _) = setup.command(&["check"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAIL  binlog_row_metadata: found MINIMAL, needed FULL"),
        "names binlog_row_metadata:\n{out}"
    );
    assert!(out.contains("ok    binlog_format: ROW"), "{out}");

    root.query_drop("SET GLOBAL binlog_row_metadata = FULL")
        .await
        .expect("set global");
    let (code, out, _) = setup.command(&["check"]);
    assert_eq!(code, 0, "every check passes once fixed:\n{out}");
    assert!(out.contains("checks passed"), "{out}");
    let _ = kafka_bootstrap();
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let setup = setup_for(1);
    let (code, _, err) = setup.command(&["--set", "checkpoint.intervall=1s", "check"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("intervall"), "{err}");
    let setup =
        setup.with_extra("\n[[tables]]\ntable = \"no_dot\"\ntopic = \"t\"\nevent_type = \"e\"\n");
    let (code, _, err) = setup.command(&["check"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no_dot") && err.contains("database.table"),
        "{err}"
    );
}

#[test]
fn a_missing_password_exits_2_naming_the_variable() {
    let setup = setup_for(1);
    let out = Command::new(env!("CARGO_BIN_EXE_binlog-tailer"))
        .arg("--config")
        .arg(&setup.config)
        .arg("run")
        .env_remove("BINLOG_TAILER_SOURCE_PASSWORD")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("BINLOG_TAILER_SOURCE_PASSWORD"), "{err}");
}

#[test]
fn a_corrupt_checkpoint_store_stops_the_tailer_and_stays_untouched() {
    let setup = setup_for(common::Server::Replica.port());
    std::fs::create_dir_all(&setup.state).expect("state dir");
    let file = setup.state.join(binlog_tailer::checkpoint::FILE_NAME);
    let garbage = b"not a checkpoint store".repeat(200);
    std::fs::write(&file, &garbage).expect("write");
    let (code, _, err) = setup.command(&["run"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not usable") && err.contains("checkpoint.sqlite3"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&file).expect("read"),
        garbage,
        "the file is untouched"
    );
    let (code, _, err) = setup.command(&["checkpoint", "show"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not usable"), "{err}");
}

#[test]
fn help_answers_commands_configuration_and_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_binlog-tailer"))
        .arg("--help")
        .output()
        .expect("--help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "run",
        "check",
        "checkpoint",
        "--config",
        "--set",
        "Exit codes",
        "BINLOG_TAILER_SOURCE_PASSWORD",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}:\n{help}");
    }
}
