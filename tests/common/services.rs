//! The system's services (order-service, payment-service) run as real
//! processes for tests, stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{free_port, http_get, http_request, unique_name, User};

/// Stops a child by PID: SIGTERM, then SIGKILL after `grace`.
fn stop_child(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_healthy(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(port, "/healthz"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "{what} did not start; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running order-service, stopped by PID when dropped.
pub struct OrderService {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl OrderService {
    pub fn start(database: &str, db_port: u16) -> OrderService {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("orders-svc"));
        std::fs::create_dir_all(&dir).expect("dir");
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
        let log = dir.join("order-service.log");
        let child = Command::new(env!("CARGO_BIN_EXE_order-service"))
            .arg("--config")
            .arg(&config)
            .env("ORDER_SERVICE_DB_PASSWORD", User::OrdersApp.credentials().1)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start order-service");
        wait_healthy(port, "order-service", &log);
        OrderService { child, port, log }
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
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running payment-service, stopped by PID when dropped.
pub struct PaymentService {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl PaymentService {
    pub fn start(config: &Path, db_port: u16) -> PaymentService {
        let port = free_port();
        let log = config.with_file_name(format!("payment-service-{}.log", unique_name("run")));
        let child = Command::new(env!("CARGO_BIN_EXE_payment-service"))
            .arg("--config")
            .arg(config)
            .arg("--set")
            .arg(format!("http.listen=\"127.0.0.1:{port}\""))
            .arg("--set")
            .arg(format!("database.port={db_port}"))
            .env(
                "PAYMENT_SERVICE_DB_PASSWORD",
                User::PaymentsApp.credentials().1,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start payment-service");
        wait_healthy(port, "payment-service", &log);
        PaymentService { child, port, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to commit anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The sum of a metric's samples whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        let (_, body) = http_get(self.port, "/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
}

impl Drop for PaymentService {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(20));
    }
}

/// JSON of an HTTP response body, or the text as a JSON string.
pub fn json_body(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_owned()))
}
