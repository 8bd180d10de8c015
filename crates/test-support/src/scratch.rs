//! A MariaDB server of a test's own, for tests that change server-wide
//! settings.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::Here;

/// The binlog settings a tailer needs, for [`ScratchServer::start`].
pub const ROW_LOGGING: &str =
    "binlog_format = ROW\nbinlog_row_image = FULL\nbinlog_row_metadata = FULL";

/// A MariaDB server of the test's own (mariadbd of the version the services
/// run, [`crate::mariadb_version`]; a fresh data directory, a free loopback
/// port), so its global settings can be changed without disturbing other
/// tests. Stopped by PID when dropped.
pub struct ScratchServer {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl ScratchServer {
    pub async fn start(here: Here, settings: &str) -> ScratchServer {
        let dir = here.new_dir("scratch");
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
        let status = crate::mariadb_command(shared(&dir), "mariadb-install-db")
            .arg(format!("--defaults-file={}", cnf.display()))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg(format!("--auth-root-socket-user={user}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db (is mariadb-server installed? run `make services-up`)");
        assert!(status.success(), "mariadb-install-db failed");
        let child = spawn_mariadbd(&dir, &cnf);
        let server = ScratchServer { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut conn) = Conn::new(server.root_opts(&user)).await {
                let tailer = crate::User::Tailer.credentials();
                conn.query_drop(format!(
                    "CREATE USER '{u}'@'127.0.0.1' IDENTIFIED BY '{p}'; \
                     GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{u}'@'127.0.0.1'; \
                     GRANT SELECT ON shop.* TO '{u}'@'127.0.0.1'",
                    u = tailer.0,
                    p = tailer.1
                ))
                .await
                .expect("tailer user");
                let schema = std::fs::read_to_string(crate::repo_root().join("schemas/orders.sql"))
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

    /// SIGKILL, as a crash: the server writes nothing more.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on its data directory (after [`Self::kill9`]:
    /// with crash recovery) and waits until it answers.
    pub async fn restart(&mut self) {
        self.child = spawn_mariadbd(&self.dir, &self.dir.join("my.cnf"));
        let user = os_user();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(conn) = Conn::new(self.root_opts(&user)).await {
                let _ = conn.disconnect().await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the scratch server did not restart; see {}",
                self.dir.join("error.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn root_opts(&self, user: &str) -> OptsBuilder {
        OptsBuilder::default()
            .socket(Some(self.dir.join("mariadb.sock").display().to_string()))
            .user(Some(user.to_owned()))
    }

    pub async fn root(&self) -> Conn {
        Conn::new(self.root_opts(&os_user()))
            .await
            .expect("root over the socket")
    }
}

/// What the server program sees of the host (for 11.8, in its chroot): the
/// test's whole scratch area, the parent of `dir`, so that files a test
/// writes beside it (TLS certificates, say) are there too.
fn shared(dir: &std::path::Path) -> &std::path::Path {
    dir.parent().unwrap_or(dir)
}

fn spawn_mariadbd(dir: &std::path::Path, cnf: &std::path::Path) -> Child {
    crate::mariadb_command(shared(dir), "mariadbd")
        .arg(format!("--defaults-file={}", cnf.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mariadbd")
}

fn os_user() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
        .expect("user")
        .trim()
        .to_owned()
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
