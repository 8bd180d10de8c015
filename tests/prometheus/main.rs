//! dashboards/ against a real Prometheus (Debian's `prometheus` package,
//! started here on loopback) scraping a real tailer while orders flow:
//!
//! - `promtool check rules dashboards/alerts.yml` passes;
//! - every PromQL expression of the dashboard's panels returns data, and so
//!   does every series each alert rule is built from (see
//!   [`condition_operands`] for why an alert is not queried as a whole);
//! - every rule evaluates without error, and none is pending or firing while
//!   the tailer is healthy;
//! - every metric name `binlog_tailer_…` written in dashboards/ is one the
//!   tailer exports in a live scrape of /metrics;
//! - /healthz and /readyz answer;
//! - and, with `promtool test rules` on synthetic series (no services
//!   needed), each alert fires when it should and none fires while the
//!   tailer is idle and caught up.
//!
//! The dashboard's expressions use Grafana's variables; they are replaced
//! before querying (see [`GRAFANA_VARIABLES`]).

mod promql;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use serde_json::Value as Json;
use test_support::tailer::{last_gtid, replica_gtid_state, Tailed, TailerSetup, TestDb};
use test_support::{connect, free_port, http_get, unique_name, Server, User};

use promql::{condition_operands, exported_names, metric_names, unexported};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The scrape job name the dashboard and the alert rules select
/// (`up{job="binlog-tailer"}`); docker/prometheus/prometheus.yml uses it too.
const JOB: &str = "binlog-tailer";

/// Grafana's variables in the dashboard's expressions and what stands in for
/// them here. `$__rate_interval` becomes `1m`: what Grafana computes for a
/// data source whose scrape interval is 15 s (4 × 15 s), as the compose
/// file's is; with this test's 1 s scrapes a minute holds ~60 samples.
/// `$instance` becomes `.+`, the variable's "All" value in the dashboard.
/// An expression still holding a `$` after this fails the test, so a new
/// variable cannot slip through unchecked.
const GRAFANA_VARIABLES: &[(&str, &str)] = &[
    ("${__rate_interval}", "1m"),
    ("$__rate_interval", "1m"),
    ("${__interval}", "15s"),
    ("$__interval", "15s"),
    ("${instance}", ".+"),
    ("$instance", ".+"),
];

fn substitute(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (var, value) in GRAFANA_VARIABLES {
        out = out.replace(var, value);
    }
    assert!(
        !out.contains('$'),
        "a Grafana variable this test does not know: {expr}"
    );
    out
}

// ---------------------------------------------------------------- installing

// ---------------------------------------------------------------- the dashboard

/// One query of a dashboard panel.
#[derive(Debug)]
struct PanelQuery {
    panel: String,
    ref_id: String,
    expr: String,
}

fn panel_queries(panels: &Json, out: &mut Vec<PanelQuery>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_else(|| {
                panic!("panel {title:?}: a target without a PromQL expr: {target}")
            });
            out.push(PanelQuery {
                panel: title.clone(),
                ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                expr: expr.to_owned(),
            });
        }
        // Rows (collapsed or not) may hold panels of their own.
        panel_queries(&panel["panels"], out);
    }
}

/// The dashboard's template variables of type query: (name, metric, label)
/// for each `label_values(metric, label)`.
fn label_values_variables(dashboard: &Json) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let name = var["name"].as_str().unwrap_or("?").to_owned();
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str())
            .unwrap_or_else(|| panic!("variable {name}: no query"));
        let args = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: only label_values(…) is checked: {query}"));
        let (metric, label) = args.rsplit_once(',').expect("label_values(metric, label)");
        out.push((name, metric.trim().to_owned(), label.trim().to_owned()));
    }
    out
}

// ---------------------------------------------------------------- Prometheus

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus process of the test's own, stopped (SIGTERM to its PID) when
/// dropped, whatever happened.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on 127.0.0.1 (a free port), storage in `dir`,
    /// scraping the tailer every second and evaluating dashboards/alerts.yml
    /// every second.
    fn start(dir: &Path, tailer_port: u16) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - \"{rules}\"
scrape_configs:
  - job_name: {JOB}
    static_configs:
      - targets: [\"127.0.0.1:{tailer_port}\"]
",
                rules = repo().join("dashboards/alerts.yml").display(),
            ),
        )
        .expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("prometheus log"))
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Prometheus { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(port, "/-/ready") {
                return prometheus;
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}); log:\n{}", prometheus.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s; log:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET an API path; its `data`.
    fn api(&self, path: &str) -> Json {
        let (status, body) = http_get(self.port, path).expect("prometheus API");
        let reply: Json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}), status {status}: {body}"));
        assert_eq!(
            reply["status"], "success",
            "GET {path}: status {status}: {body}"
        );
        reply["data"].clone()
    }

    /// An instant query; its `data`.
    fn query(&self, expr: &str) -> Json {
        self.api(&format!("/api/v1/query?query={}", url_encode(expr)))
    }

    /// The first value of an instant query, if it has one.
    fn value(&self, expr: &str) -> Option<f64> {
        let data = self.query(expr);
        data["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a query's `data` holds at least one series (or a scalar).
fn has_data(data: &Json) -> bool {
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => true,
        _ => data["result"].as_array().is_some_and(|r| !r.is_empty()),
    }
}

/// A short account of a query's result for the test's output.
fn describe(data: &Json) -> String {
    let result = data["result"].as_array().cloned().unwrap_or_default();
    let first = result
        .first()
        .map(|s| format!("{} = {}", s["metric"], s["value"][1]))
        .unwrap_or_default();
    format!("{} series; {first}", result.len())
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Inserts an order every 100 ms until told to stop: orders flow while
/// Prometheus scrapes. Returns how many and the last one's GTID.
async fn insert_orders(db: String, stop: Arc<AtomicBool>) -> (u64, Gtid) {
    let mut primary = connect(Server::Primary, User::Admin).await;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) || n == 0 {
        n += 1;
        primary
            .query_drop(format!(
                "INSERT INTO {db}.orders (id, customer_id, amount, currency, items) \
                 VALUES ({n}, {}, '19.99', 'EUR', '[{{\"sku\": \"book\", \"qty\": 1}}]')",
                n % 7 + 1
            ))
            .await
            .expect("insert an order");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (n, last_gtid(&mut primary).await)
}

// ---------------------------------------------------------------- the live test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_expression_has_data_in_a_real_prometheus() {
    test_support::require_tools(&["prometheus", "promtool"]);
    let alerts_text = read("dashboards/alerts.yml");
    let alert_names: BTreeSet<String> = alerts_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect();

    // promtool accepts the rule file.
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo().join("dashboards/alerts.yml"))
        .output()
        .expect("run promtool");
    let promtool_says =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "promtool check rules dashboards/alerts.yml:\n{promtool_says}"
    );
    assert!(
        promtool_says.contains(&format!("SUCCESS: {} rules found", alert_names.len())),
        "promtool found another number of rules than the {} alerts in the file:\n{promtool_says}",
        alert_names.len()
    );
    eprintln!("promtool check rules: {}", promtool_says.trim());

    // A tailer of the test's own, its endpoint on a port picked here.
    let db = TestDb::create("prom").await;
    let topic = unique_name("prom");
    let http_port = free_port();
    let setup = TailerSetup::new(
        test_support::here!(),
        "prom",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    )
    .with_http_listen(([127, 0, 0, 1], http_port).into());
    let mut tailer = setup.spawn();
    wait_for(
        "the tailer's /readyz answering 200",
        Duration::from_secs(60),
        || matches!(http_get(http_port, "/readyz"), Ok((200, _))),
        || tailer.log(),
    );
    assert_eq!(
        http_get(http_port, "/readyz").expect("/readyz"),
        (200, "ready\n".to_owned())
    );
    assert_eq!(
        http_get(http_port, "/healthz").expect("/healthz"),
        (200, "ok\n".to_owned())
    );

    let prometheus = Prometheus::start(&setup.dir, http_port);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(insert_orders(db.name.clone(), Arc::clone(&stop)));

    // A few scrapes, and published events seen by two of them at least (so
    // that rates over the orders exist), and every rule evaluated.
    let (p, t) = (&prometheus, &tailer);
    let logs = || format!("prometheus log:\n{}\ntailer log:\n{}", p.log(), t.log());
    wait_for(
        "five scrapes of the tailer, and a publish rate above 0",
        Duration::from_secs(90),
        || {
            p.value(&format!("count_over_time(up{{job=\"{JOB}\"}}[1m])"))
                .is_some_and(|n| n >= 5.0)
                && p.value(&format!("min(up{{job=\"{JOB}\"}})")) == Some(1.0)
                && p.value(&format!(
                    "sum(rate(binlog_tailer_events_published_total{{job=\"{JOB}\"}}[1m]))"
                ))
                .is_some_and(|r| r > 0.0)
        },
        logs,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let loaded_rules: Vec<Json> = loop {
        let rules: Vec<Json> = p.api("/api/v1/rules")["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = !rules.is_empty()
            && rules
                .iter()
                .all(|r| r["health"] == "ok" && r["lastError"].as_str().unwrap_or("").is_empty());
        if evaluated {
            break rules;
        }
        assert!(
            Instant::now() < deadline,
            "rules not all evaluated without error within 30 s: {rules:#?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    // Every expression of the dashboard's panels has data.
    let dashboard: Json =
        serde_json::from_str(&read("dashboards/binlog-tailer.json")).expect("dashboard JSON");
    let mut queries = Vec::new();
    panel_queries(&dashboard["panels"], &mut queries);
    assert!(queries.len() >= 20, "the dashboard's queries, as read");
    let mut empty = Vec::new();
    for q in &queries {
        let expr = substitute(&q.expr);
        let data = prometheus.query(&expr);
        eprintln!(
            "panel {:?} {}: {} → {}",
            q.panel,
            q.ref_id,
            expr,
            describe(&data)
        );
        if !has_data(&data) {
            empty.push(format!("panel {:?} {}: {expr}", q.panel, q.ref_id));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard expressions without data:\n{}",
        empty.join("\n")
    );
    // Its template variables list something.
    let variables = label_values_variables(&dashboard);
    for (name, metric, label) in &variables {
        let data = prometheus.query(metric);
        assert!(
            data["result"]
                .as_array()
                .is_some_and(|r| r.iter().any(|s| s["metric"][label.as_str()].is_string())),
            "variable ${name}: no {metric} series with a {label} label"
        );
    }

    // Every alert rule is loaded, and every series it is made of has data.
    let loaded: BTreeSet<String> = loaded_rules
        .iter()
        .filter(|r| r["type"] == "alerting")
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        loaded, alert_names,
        "alerts loaded vs. alerts in dashboards/alerts.yml"
    );
    let mut operands_checked = 0;
    let mut missing = Vec::new();
    for rule in &loaded_rules {
        let name = rule["name"].as_str().unwrap_or_default();
        let expr = rule["query"].as_str().expect("rule query");
        let whole = prometheus.query(expr);
        eprintln!("alert {name}: {expr} → now {}", describe(&whole));
        for operand in condition_operands(expr) {
            let data = prometheus.query(&operand);
            eprintln!("    {operand} → {}", describe(&data));
            operands_checked += 1;
            if !has_data(&data) {
                missing.push(format!("{name}: {operand}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "alert conditions built on series without data:\n{}",
        missing.join("\n")
    );
    // And while the tailer is healthy, none is pending or firing.
    let active = prometheus.api("/api/v1/alerts")["alerts"].clone();
    assert!(
        active.as_array().is_some_and(Vec::is_empty),
        "alerts pending or firing on a healthy tailer: {active:#}"
    );

    // Every metric name written in dashboards/ is exported by the tailer.
    let (status, scrape) = http_get(http_port, "/metrics").expect("/metrics");
    assert_eq!(status, 200);
    let exported = exported_names(&scrape);
    let mut used = BTreeSet::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo().join("dashboards")).expect("dashboards/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".json") || name.ends_with(".yml") || name.ends_with(".yaml") {
            used.extend(metric_names(&std::fs::read_to_string(&path).expect("read")));
            files.push(name);
        }
    }
    assert!(files.len() >= 2, "dashboards/ files: {files:?}");
    let not_exported = unexported(&used, &exported);
    assert!(
        not_exported.is_empty(),
        "metric names in dashboards/ ({files:?}) that the tailer does not export: \
         {not_exported:?}\n/metrics:\n{scrape}"
    );

    // Stop the orders; everything written is published and counted.
    stop.store(true, Ordering::Relaxed);
    let (orders, last) = writer.await.expect("the order writer");
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let (_, scrape) = http_get(http_port, "/metrics").expect("/metrics");
    let published = format!("binlog_tailer_events_published_total{{topic=\"{topic}\"}} {orders}");
    assert!(
        scrape.lines().any(|l| l == published),
        "/metrics lacks `{published}`:\n{scrape}"
    );

    eprintln!(
        "checked: {} dashboard expressions ({} panels with queries), {} template variable(s), \
         {} alert rules ({} series they are built from), {} metric names used in {files:?} \
         against {} names exported; {orders} orders published while Prometheus scraped",
        queries.len(),
        queries
            .iter()
            .map(|q| &q.panel)
            .collect::<BTreeSet<_>>()
            .len(),
        variables.len(),
        loaded.len(),
        operands_checked,
        used.len(),
        exported.len(),
    );

    let mut prometheus = prometheus;
    prometheus.stop();
    let status = tailer.terminate(Duration::from_secs(60));
    assert!(status.success(), "the tailer's exit: {status}");
}

// ---------------------------------------------------------------- alert semantics

/// dashboards/alerts.yml without its annotations: `promtool test rules`
/// compares annotations too, and the tests below are about when alerts fire,
/// not about their wording. Expressions, `for` and labels are untouched.
fn alerts_without_annotations(text: &str) -> String {
    let mut out = String::new();
    let mut skipping_deeper_than: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(level) = skipping_deeper_than {
            if line.trim().is_empty() || indent > level {
                continue;
            }
            skipping_deeper_than = None;
        }
        if line.trim() == "annotations:" {
            skipping_deeper_than = Some(indent);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// One `promtool test rules` case: series (1-minute steps), and which
/// alerts fire at `at` (with their labels besides `alertname`).
struct Case {
    name: &'static str,
    series: &'static [(&'static str, &'static str)],
    at: &'static str,
    firing: &'static [(&'static str, &'static str)],
}

/// Labels every synthetic series carries, as a scrape of the tailer would.
const TARGET: &str = "job=\"binlog-tailer\", instance=\"tailer:9187\"";

/// The healthy, idle tailer: everything connected, nothing to read, the
/// checkpoint current (its age is 0 then, however long ago it was written).
const IDLE: &[(&str, &str)] = &[
    ("up", "1x60"),
    ("binlog_tailer_source_connected", "1x60"),
    ("binlog_tailer_broker_connected", "1x60"),
    ("binlog_tailer_ready", "1x60"),
    ("binlog_tailer_replication_lag_seconds", "0x60"),
    ("binlog_tailer_lag_bytes", "0x60"),
    ("binlog_tailer_lag_transactions", "0x60"),
    ("binlog_tailer_events_in_flight", "0x60"),
    ("binlog_tailer_ack_wait_seconds", "0x60"),
    ("binlog_tailer_transactions_total", "500x60"),
    ("binlog_tailer_checkpoint_age_seconds", "0x60"),
    ("binlog_tailer_publish_errors_total{kind=\"other\"}", "0x60"),
    ("binlog_tailer_reconnects_total", "2x60"),
];

const CASES: &[Case] = &[
    Case {
        name: "idle and caught up for an hour: nothing fires",
        series: IDLE,
        at: "60m",
        firing: &[],
    },
    Case {
        name: "scrapes fail",
        series: &[("up", "1 1 0x10")],
        at: "5m",
        firing: &[("BinlogTailerDown", "severity: critical")],
    },
    Case {
        name: "no target at all",
        series: &[("some_other_metric", "1x15")],
        at: "10m",
        firing: &[("BinlogTailerAbsent", "severity: critical")],
    },
    Case {
        name: "MariaDB away",
        series: &[("binlog_tailer_source_connected", "1 0x10")],
        at: "5m",
        firing: &[("BinlogTailerSourceDisconnected", "severity: critical")],
    },
    Case {
        name: "Kafka away",
        series: &[
            ("binlog_tailer_broker_connected", "1 0x10"),
            ("binlog_tailer_ready", "1 0x10"),
        ],
        at: "8m",
        firing: &[
            ("BinlogTailerBrokerDisconnected", "severity: critical"),
            ("BinlogTailerNotReady", "severity: warning"),
        ],
    },
    Case {
        name: "connected to Kafka, no acknowledgement for minutes",
        series: &[
            ("binlog_tailer_broker_connected", "1x10"),
            ("binlog_tailer_events_in_flight", "0 5000x10"),
            ("binlog_tailer_ack_wait_seconds", "0 0+60x10"),
        ],
        at: "6m",
        firing: &[("BinlogTailerAcknowledgementsStalled", "severity: critical")],
    },
    Case {
        name: "6 minutes behind",
        series: &[("binlog_tailer_replication_lag_seconds", "0 360x15")],
        at: "10m",
        firing: &[("BinlogTailerLagHigh", "severity: warning")],
    },
    Case {
        name: "40 minutes behind",
        series: &[("binlog_tailer_replication_lag_seconds", "0 2400x15")],
        at: "10m",
        firing: &[
            ("BinlogTailerLagHigh", "severity: warning"),
            ("BinlogTailerLagCritical", "severity: critical"),
        ],
    },
    Case {
        name: "2 GB of binlog behind",
        series: &[("binlog_tailer_lag_bytes", "0 2000000000x25")],
        at: "20m",
        firing: &[("BinlogTailerLagBytesHigh", "severity: warning")],
    },
    Case {
        name: "the server has transactions the tailer does not read",
        series: &[
            ("binlog_tailer_lag_transactions", "0 40x20"),
            ("binlog_tailer_transactions_total", "500x20"),
        ],
        at: "15m",
        firing: &[("BinlogTailerStalled", "severity: critical")],
    },
    Case {
        name: "events wait for the broker, the checkpoint does not move",
        series: &[
            ("binlog_tailer_checkpoint_age_seconds", "0+60x30"),
            ("binlog_tailer_lag_transactions", "0x30"),
            ("binlog_tailer_events_in_flight", "0 20000x30"),
            ("binlog_tailer_transactions_total", "500x30"),
        ],
        at: "20m",
        firing: &[("BinlogTailerCheckpointStale", "severity: critical")],
    },
    Case {
        name: "transactions are read, the checkpoint does not move",
        series: &[
            ("binlog_tailer_checkpoint_age_seconds", "0+60x30"),
            ("binlog_tailer_lag_transactions", "0x30"),
            ("binlog_tailer_events_in_flight", "0x30"),
            ("binlog_tailer_transactions_total", "0+10x30"),
        ],
        at: "20m",
        firing: &[("BinlogTailerCheckpointStale", "severity: critical")],
    },
    Case {
        name: "the broker refuses an event",
        series: &[(
            "binlog_tailer_publish_errors_total{kind=\"other\"}",
            "0 0 1x5",
        )],
        at: "3m",
        firing: &[(
            "BinlogTailerPublishErrors",
            "severity: critical\nkind: other",
        )],
    },
    Case {
        name: "the binlog stream keeps breaking",
        series: &[("binlog_tailer_reconnects_total", "0+1x20")],
        at: "16m",
        firing: &[("BinlogTailerReconnecting", "severity: warning")],
    },
];

/// The `promtool test rules` file for [`CASES`]: in each case every alert of
/// the rule file is checked, so the ones not listed must stay silent.
fn promtool_tests(alert_names: &BTreeSet<String>) -> String {
    let mut out = String::from("rule_files:\n  - alerts.yml\nevaluation_interval: 1m\ntests:\n");
    for case in CASES {
        out.push_str(&format!(
            "  # {}\n  - interval: 1m\n    input_series:\n",
            case.name
        ));
        // A scraped target, unless the case is about the target itself:
        // without one BinlogTailerAbsent would fire in every case.
        let about_target = case.series.iter().any(|(s, _)| *s == "up")
            || case.firing.iter().any(|(a, _)| *a == "BinlogTailerAbsent");
        let up: &[(&str, &str)] = if about_target { &[] } else { &[("up", "1x60")] };
        for (series, values) in case.series.iter().chain(up) {
            let series = match series.split_once('{') {
                Some((name, labels)) => format!("{name}{{{TARGET}, {labels}"),
                None => format!("{series}{{{TARGET}}}"),
            };
            out.push_str(&format!(
                "      - series: '{series}'\n        values: '{values}'\n"
            ));
        }
        out.push_str("    alert_rule_test:\n");
        for alert in alert_names {
            out.push_str(&format!(
                "      - eval_time: {}\n        alertname: {alert}\n        exp_alerts:",
                case.at
            ));
            match case.firing.iter().find(|(name, _)| name == alert) {
                None => out.push_str(" []\n"),
                Some((_, labels)) => {
                    out.push_str("\n          - exp_labels:\n");
                    // Absent has only the label its selector fixes.
                    let target = if *alert == "BinlogTailerAbsent" {
                        "job: binlog-tailer".to_owned()
                    } else {
                        "job: binlog-tailer\ninstance: tailer:9187".to_owned()
                    };
                    for label in labels.lines().chain(target.lines()) {
                        out.push_str(&format!("              {label}\n"));
                    }
                }
            }
        }
    }
    out
}

/// Each alert fires when its condition has held long enough, and none fires
/// on an idle, caught-up tailer: `promtool test rules` on synthetic series.
#[test]
fn each_alert_fires_when_it_should_and_none_while_idle() {
    test_support::require_tools(&["prometheus", "promtool"]);
    let text = read("dashboards/alerts.yml");
    let alert_names: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect();
    let covered: BTreeSet<String> = CASES
        .iter()
        .flat_map(|c| c.firing.iter().map(|(n, _)| (*n).to_owned()))
        .collect();
    assert_eq!(
        covered, alert_names,
        "every alert needs a case in which it fires (and only those alerts)"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("promtool"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("alerts.yml"), alerts_without_annotations(&text)).expect("rules copy");
    std::fs::write(dir.join("tests.yml"), promtool_tests(&alert_names)).expect("tests file");
    let out = Command::new("promtool")
        .args(["test", "rules", "tests.yml"])
        .current_dir(&dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool test rules ({}):\n{}{}",
        dir.join("tests.yml").display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "promtool test rules: {} cases × {} alerts",
        CASES.len(),
        alert_names.len()
    );
}

// ---------------------------------------------------------------- the checker, checked

// The PromQL splitter and the metric names are checked in promql.rs.

#[test]
fn annotations_are_removed_and_nothing_else() {
    let rules = "\
groups:
  - name: g
    rules:
      - alert: A
        expr: x > 1
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: \"s\"
          description: >-
            long
            text

      # comment
      - alert: B
        expr: y == 0
        annotations:
          summary: t
";
    let kept = "\
groups:
  - name: g
    rules:
      - alert: A
        expr: x > 1
        for: 1m
        labels:
          severity: critical
      # comment
      - alert: B
        expr: y == 0
";
    assert_eq!(alerts_without_annotations(rules), kept);
}
