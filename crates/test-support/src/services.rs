//! The system's services (order-service, payment-service) run as real
//! processes for tests, stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::process::Process;
use crate::{free_port, http_get, http_request, unique_name, Here, User};

/// Waits for `/healthz` on `port`; fails, with the log, if the process
/// exits or 30 s pass.
fn wait_healthy(process: &mut Process, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(port, "/healthz"), Ok((200, _))) {
        process.assert_running();
        assert!(
            Instant::now() < deadline,
            "{}: no /healthz within 30 s; log:\n{}",
            process.name,
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running order-service, stopped by PID when dropped.
pub struct OrderService {
    pub process: Process,
    pub port: u16,
}

impl OrderService {
    pub fn start(here: Here, database: &str, db_port: u16) -> OrderService {
        let dir = here.new_dir("orders-svc");
        let port = free_port();
        let config = dir.join("order-service.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nhost = \"127.0.0.1\"\nport = {db_port}\nuser = \"{user}\"\nname = \"{database}\"\ntimeout = \"2s\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
                user = User::OrdersApp.credentials().0
            ),
        )
        .expect("config");
        let mut command = Command::new(here.order_service_bin);
        command
            .arg("--config")
            .arg(&config)
            .env("ORDER_SERVICE_DB_PASSWORD", User::OrdersApp.credentials().1);
        let mut process =
            Process::spawn("order-service", &mut command, dir.join("order-service.log"));
        wait_healthy(&mut process, port);
        OrderService { process, port }
    }

    pub fn post(&self, body: &Json) -> (u16, Json) {
        let (status, text) = http_request(
            self.port,
            "POST",
            "/orders",
            Some(body.to_string().as_bytes()),
        )
        .expect("POST");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Json::String(text)),
        )
    }
}

impl Drop for OrderService {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

/// A running payment-service, stopped by PID when dropped (SIGTERM, then
/// SIGKILL after 20 s).
pub struct PaymentService {
    pub process: Process,
    pub port: u16,
}

impl PaymentService {
    /// Starts it with `config`, its HTTP endpoint on a free port and its
    /// database port set to `db_port`; the log beside the config.
    pub fn start(here: Here, config: &Path, db_port: u16) -> PaymentService {
        let port = free_port();
        let log = config.with_file_name(format!("payment-service-{}.log", unique_name("run")));
        let overrides = [
            format!("http.listen=\"127.0.0.1:{port}\""),
            format!("database.port={db_port}"),
        ];
        Self::launch(here, config, &overrides, port, log, None)
    }

    /// Starts it with `config` as it is (which listens on `port`), logging
    /// at `log_filter` into `log`.
    pub fn start_as_configured(
        here: Here,
        config: &Path,
        port: u16,
        log: PathBuf,
        log_filter: &str,
    ) -> PaymentService {
        Self::launch(here, config, &[], port, log, Some(log_filter))
    }

    fn launch(
        here: Here,
        config: &Path,
        overrides: &[String],
        port: u16,
        log: PathBuf,
        log_filter: Option<&str>,
    ) -> PaymentService {
        let mut command = Command::new(here.payment_service_bin);
        command.arg("--config").arg(config);
        for o in overrides {
            command.arg("--set").arg(o);
        }
        if let Some(filter) = log_filter {
            command.env("PAYMENT_SERVICE_LOG", filter);
        }
        command.env(
            "PAYMENT_SERVICE_DB_PASSWORD",
            User::PaymentsApp.credentials().1,
        );
        let mut process = Process::spawn("payment-service", &mut command, log);
        wait_healthy(&mut process, port);
        PaymentService { process, port }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// SIGKILL: no chance to commit anything.
    pub fn kill(mut self) {
        self.process.kill();
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        match http_get(self.port, "/metrics") {
            Ok((200, body)) => body,
            other => panic!("/metrics: {other:?}"),
        }
    }

    /// The sum of a metric's samples whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        let (_, body) = http_get(self.port, "/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// One sample's value from `/metrics` (exact series text; 0 when absent).
    pub fn sample(&self, series: &str) -> f64 {
        sample(&self.metrics(), series)
    }

    /// `payment_service_events_total{outcome}`.
    pub fn outcome(&self, outcome: &str) -> u64 {
        self.sample(&format!(
            "payment_service_events_total{{outcome=\"{outcome}\"}}"
        )) as u64
    }

    /// Messages processed to the end, whatever the outcome.
    pub fn processed(&self) -> u64 {
        ["charged", "duplicate", "dead_lettered", "snapshot_skipped"]
            .iter()
            .map(|o| self.outcome(o))
            .sum()
    }

    /// Fails the test, with the log, if the process has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }

    /// Waits until `done` says so (checked every 100 ms), or fails.
    pub async fn wait_until<F, Fut>(&mut self, what: &str, timeout: Duration, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if done().await {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`, `TERM`) by PID.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// SIGTERM and the exit status (within `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        self.process.terminate(timeout)
    }
}

impl Drop for PaymentService {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(20));
    }
}

/// A payments database of a test's own, made from `schemas/payments.sql`
/// with its name replaced, writable by payments_app.
pub struct PaymentsDb {
    pub name: String,
}

impl PaymentsDb {
    pub async fn create(prefix: &str) -> PaymentsDb {
        use mysql_async::prelude::Queryable;
        let name = unique_name(prefix);
        let schema = std::fs::read_to_string(crate::repo_root().join("schemas/payments.sql"))
            .expect("schemas/payments.sql");
        let sql = schema
            .replace(
                "CREATE DATABASE IF NOT EXISTS payments\n",
                &format!("CREATE DATABASE IF NOT EXISTS {name}\n"),
            )
            .replace(
                "TABLE IF NOT EXISTS payments.payments",
                &format!("TABLE IF NOT EXISTS {name}.payments"),
            );
        assert!(
            sql.matches(&name).count() == 2,
            "schemas/payments.sql changed shape; the test cannot rename its database:\n{sql}"
        );
        let (user, _) = User::PaymentsApp.credentials();
        let mut admin = crate::connect(crate::Server::Primary, User::Admin).await;
        admin
            .query_drop(sql)
            .await
            .expect("create the payments database");
        admin
            .query_drop(format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {name}.* TO '{user}'@'127.0.0.1'"
            ))
            .await
            .expect("grant payments_app");
        PaymentsDb { name }
    }

    /// Each charged order id with the number of payment rows it has.
    pub async fn charges(&self) -> std::collections::BTreeMap<u64, u64> {
        use mysql_async::prelude::Queryable;
        let mut admin = crate::connect(crate::Server::Primary, User::Admin).await;
        let rows: Vec<(u64, u64)> = admin
            .query(format!(
                "SELECT order_id, COUNT(*) FROM {}.payments GROUP BY order_id",
                self.name
            ))
            .await
            .expect("read payments");
        rows.into_iter().collect()
    }

    /// A payment-service configuration for this database, consuming `topic`
    /// from `bootstrap` (dead letters to `dlq`), in `dir`; its path and HTTP port.
    pub fn service_config(
        &self,
        dir: &Path,
        bootstrap: &str,
        topic: &str,
        dlq: &str,
    ) -> (PathBuf, u16) {
        let port = free_port();
        let config = dir.join("payment-service.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[database]
host = "127.0.0.1"
port = {db_port}
user = "{user}"
database = "{db}"
timeout = "3s"
retry_backoff_min = "50ms"
retry_backoff_max = "500ms"
health_interval = "300ms"

[kafka]
bootstrap_servers = "{bootstrap}"
topic = "{topic}"
group_id = "{group}"
dead_letter_topic = "{dlq}"
commit_interval = "1s"
request_timeout = "20s"

[kafka.consumer_properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[http]
listen = "127.0.0.1:{port}"
"#,
                db_port = crate::Server::Primary.port(),
                user = User::PaymentsApp.credentials().0,
                db = self.name,
                group = unique_name("payments"),
            ),
        )
        .expect("write the payment-service config");
        (config, port)
    }
}

/// The value of the sample line `series` (exact series text) in a
/// `/metrics` text, 0 if absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// JSON of an HTTP response body, or the text as a JSON string.
pub fn json_body(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_owned()))
}
