//! Kafka over TLS and SASL: a broker of this test's own
//! (`tests/env/kafka-secure.sh`: SASL_SSL with PLAIN, SCRAM-SHA-256 and
//! SCRAM-SHA-512; SSL requiring a client certificate; a PLAINTEXT listener
//! the test reads through), certificates made with openssl, SCRAM users made
//! by Kafka's storage tool.
//!
//! - the tailer's `check` passes over SASL_SSL with each mechanism, and over
//!   mutual TLS; without the client certificate it fails;
//! - an order written to MariaDB is published by the tailer over SASL_SSL
//!   (SCRAM-SHA-512) and charged once by the payment service, which reads it
//!   and writes its dead letters over SASL_SSL too;
//! - a wrong password and an untrusted CA end `check`, `run` and the payment
//!   service within seconds, with a message naming the problem and the fix;
//! - secrets in `kafka.properties` are refused, naming the setting to use;
//! - the password is nowhere in the processes' logs (librdkafka's security
//!   and broker debug lines included), `check` output, `--help` or
//!   `/proc/<pid>/cmdline`.
//!
//! One test function: the broker's ports are fixed, so one broker serves
//! every case, started at the beginning and stopped by PID at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use test_support::faults::insert_orders;
use test_support::process::Process;
use test_support::services::{PaymentService, PaymentsDb};
use test_support::tailer::{replica_gtid_state, tailer_password, Tailed, TailerSetup, TestDb};
use test_support::{connect, free_port, repo_root, unique_name, Here, Server, User};

/// How long a refused login or an untrusted certificate may take to end a
/// command: well under the 30 s `kafka.request_timeout` the configurations
/// below set, so passing it proves the failure was recognised, not waited out.
const FAILURE_BOUND: Duration = Duration::from_secs(10);

fn port(name: &str, default: u16) -> u16 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("a port number"))
        .unwrap_or(default)
}

/// The test's broker: started by `kafka-secure.sh up`, stopped by PID
/// (`kafka-secure.sh down`) when dropped, also when the test fails.
struct SecureBroker {
    dir: PathBuf,
    password: String,
    sasl_port: u16,
    mtls_port: u16,
    internal_port: u16,
}

const SCRAM_USER: &str = "btscram";
const PLAIN_USER: &str = "btplain";

impl SecureBroker {
    fn start(here: Here) -> SecureBroker {
        let dir = here.new_dir("kafka-secure");
        // A password of this run only: finding it anywhere is a leak.
        let password = format!("pw-{}", unique_name("secret").replace('_', "-"));
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo_root().join("tests/env/kafka-secure.sh"))
            .arg("up")
            .arg(&dir)
            .env("BT_SECURE_KAFKA_PASSWORD", &password)
            .env("BT_SECURE_KAFKA_SCRAM_USER", SCRAM_USER)
            .env("BT_SECURE_KAFKA_PLAIN_USER", PLAIN_USER)
            .output()
            .expect("run tests/env/kafka-secure.sh");
        let broker = SecureBroker {
            dir,
            password,
            sasl_port: port("BT_SECURE_KAFKA_PORT", 19200),
            mtls_port: port("BT_SECURE_KAFKA_MTLS_PORT", 19201),
            internal_port: port("BT_SECURE_KAFKA_INTERNAL_PORT", 19202),
        };
        assert!(
            out.status.success(),
            "kafka-secure.sh up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("secure broker up in {:?}", started.elapsed());
        broker
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.dir.join("certs").join(name)
    }

    fn internal(&self) -> String {
        format!("127.0.0.1:{}", self.internal_port)
    }

    /// `[kafka]` settings for the SASL_SSL listener, the password in a file.
    fn sasl_settings(&self, mechanism: &str, ca: &str, password_file: &Path) -> String {
        let user = if mechanism == "PLAIN" {
            PLAIN_USER
        } else {
            SCRAM_USER
        };
        format!(
            "\n[kafka.tls]\nca_file = \"{ca}\"\n\n[kafka.sasl]\nmechanism = \"{mechanism}\"\n\
             username = \"{user}\"\npassword_file = \"{file}\"\n",
            ca = self.cert(ca).display(),
            file = password_file.display()
        )
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("tests/env/kafka-secure.sh"))
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}

/// A tailer configuration pointed at `bootstrap` with `kafka` settings
/// appended; `request_timeout` 30 s (see [`FAILURE_BOUND`]).
fn tailer_setup(
    here: Here,
    name: &str,
    tables: &[Tailed],
    from: &str,
    bootstrap: &str,
    kafka: &str,
) -> TailerSetup {
    let setup = TailerSetup::new(here, name, tables, from, "");
    let text = std::fs::read_to_string(&setup.config).expect("config");
    let text = text.replacen(
        &format!(
            "bootstrap_servers = \"{}\"",
            test_support::kafka_bootstrap()
        ),
        &format!("bootstrap_servers = \"{bootstrap}\"\nrequest_timeout = \"30s\""),
        1,
    );
    assert!(text.contains(bootstrap), "bootstrap servers replaced");
    std::fs::write(&setup.config, text).expect("config");
    setup.with_extra(kafka)
}

/// `binlog-tailer --config … <args>` to completion: (exit code, stdout +
/// stderr, time taken).
fn tailer_command(
    setup: &TailerSetup,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = Command::new(setup.bin)
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .env("BINLOG_TAILER_SOURCE_PASSWORD", tailer_password())
        .envs(env.iter().copied())
        .output()
        .expect("run binlog-tailer");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        started.elapsed(),
    )
}

fn assert_secret_absent(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows the password {secret:?}:\n{text}"
        );
    }
}

/// The process's command line, as other users of the machine see it.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .expect("read /proc/<pid>/cmdline")
}

/// A payment-service configuration reading `topic` over SASL_SSL.
fn payment_config(
    dir: &Path,
    db: &str,
    topic: &str,
    dlq: &str,
    http_port: u16,
    kafka: &str,
    bootstrap: &str,
) -> PathBuf {
    let config = dir.join(format!("{}.toml", unique_name("payment")));
    let text = format!(
        r#"
[database]
host = "127.0.0.1"
port = {db_port}
user = "{user}"
database = "{db}"

[kafka]
bootstrap_servers = "{bootstrap}"
topic = "{topic}"
group_id = "{group}"
dead_letter_topic = "{dlq}"
request_timeout = "30s"

[kafka.properties]
debug = "security,broker"

[http]
listen = "127.0.0.1:{http_port}"
{kafka}
"#,
        db_port = Server::Primary.port(),
        user = User::PaymentsApp.credentials().0,
        group = unique_name("group"),
    );
    std::fs::write(&config, text).expect("write payment config");
    config
}

async fn create_topic(bootstrap: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let results = admin
        .create_topics(
            &[NewTopic::new(name, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topic");
    for r in results {
        r.expect("topic created");
    }
}

fn topic_exists(bootstrap: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .is_ok_and(|m| {
            m.topics()
                .iter()
                .any(|t| t.error().is_none() && !t.partitions().is_empty())
        })
}

/// Every message of `topic` (read through the PLAINTEXT listener): order id
/// of each, in order, waiting up to `timeout` for at least `expected`.
fn order_ids_in_topic(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(20))
        .expect("metadata");
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut ids = Vec::new();
    // After the expected count, a little longer: a duplicate would show.
    let mut quiet_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || quiet_until.is_some_and(|q| now >= q) {
            return ids;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let payload: serde_json::Value =
                serde_json::from_slice(m.payload().expect("payload")).expect("JSON event");
            ids.push(payload["data"]["id"].as_u64().expect("data.id"));
        }
        if ids.len() >= expected && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_secs(2));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_tls_and_sasl() {
    test_support::require_tools(&["openssl", "java"]);
    let here = test_support::here!();
    let broker = SecureBroker::start(here);
    let sasl = format!("127.0.0.1:{}", broker.sasl_port);
    let mtls = format!("127.0.0.1:{}", broker.mtls_port);
    let wrong_password = format!("{}-wrong", broker.password);
    let secrets = [broker.password.as_str(), wrong_password.as_str()];
    let files = here.new_dir("kafka-secure-files");
    let password_file = files.join("kafka-password");
    std::fs::write(&password_file, format!("{}\n", broker.password)).expect("password file");
    let wrong_file = files.join("wrong-password");
    std::fs::write(&wrong_file, &wrong_password).expect("password file");

    let db = TestDb::create("secure").await;
    let topic = unique_name("secure.orders");
    let tables = [Tailed::orders(&db, &topic)];

    // `--help` never shows a password (it has none to show: the point is
    // that the password is not an option).
    let setup = tailer_setup(
        here,
        "secure-help",
        &tables,
        "latest",
        &sasl,
        &broker.sasl_settings("SCRAM-SHA-512", "ca.pem", &password_file),
    );
    let (code, help, _) = tailer_command(&setup, &["--help"], &[]);
    assert_eq!(code, 0, "{help}");
    assert!(help.contains("kafka.sasl.password_env"), "{help}");
    assert_secret_absent("--help", &help, &secrets);
    let out = Command::new(here.payment_service_bin)
        .arg("--help")
        .env("PAYMENT_SERVICE_KAFKA_PASSWORD", &broker.password)
        .output()
        .expect("payment-service --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("kafka.sasl.password_env"), "{help}");
    assert_secret_absent("payment-service --help", &help, &secrets);

    // 1. `check` over SASL_SSL with each mechanism (the topic is created by
    //    the admin client over the same listener).
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let setup = tailer_setup(
            here,
            "secure-check",
            &tables,
            "latest",
            &sasl,
            &format!(
                "{}\n[kafka.properties]\ndebug = \"security,broker\"\n",
                broker.sasl_settings(mechanism, "ca.pem", &password_file)
            ),
        );
        let (code, out, took) =
            tailer_command(&setup, &["check"], &[("BINLOG_TAILER_LOG", "debug")]);
        eprintln!("check over SASL_SSL with {mechanism}: exit {code} in {took:?}");
        assert_eq!(code, 0, "check with {mechanism}:\n{out}");
        let user = if mechanism == "PLAIN" {
            PLAIN_USER
        } else {
            SCRAM_USER
        };
        assert!(
            out.contains(&format!("SASL_SSL, {mechanism} as {user}")),
            "check names the protocol, mechanism and user:\n{out}"
        );
        assert_secret_absent("check output", &out, &secrets);
    }

    // 2. Mutual TLS: the SSL listener requires a client certificate.
    let mtls_settings = format!(
        "\n[kafka.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        broker.cert("ca.pem").display(),
        broker.cert("client.pem").display(),
        broker.cert("client.key").display()
    );
    let setup = tailer_setup(
        here,
        "secure-mtls",
        &tables,
        "latest",
        &mtls,
        &mtls_settings,
    );
    let (code, out, took) = tailer_command(&setup, &["check"], &[]);
    eprintln!("check over mutual TLS: exit {code} in {took:?}");
    assert_eq!(code, 0, "check with a client certificate:\n{out}");
    assert!(out.contains("SSL with a client certificate"), "{out}");
    let no_cert = format!(
        "\n[kafka.tls]\nca_file = \"{}\"\n",
        broker.cert("ca.pem").display()
    );
    let setup = tailer_setup(here, "secure-mtls-none", &tables, "latest", &mtls, &no_cert);
    let (code, out, took) = tailer_command(&setup, &["check"], &[]);
    eprintln!("check over mutual TLS without a client certificate: exit {code} in {took:?}");
    assert_eq!(
        code, 3,
        "a broker requiring a client certificate refuses one without:\n{out}"
    );
    assert!(
        took < FAILURE_BOUND,
        "refused within {FAILURE_BOUND:?}, took {took:?}:\n{out}"
    );

    // 3. A wrong password and an untrusted CA: `check` and `run` stop within
    //    seconds, naming the problem and the setting to fix.
    let bad_login = tailer_setup(
        here,
        "secure-wrong-password",
        &tables,
        "latest",
        &sasl,
        &broker.sasl_settings("SCRAM-SHA-512", "ca.pem", &wrong_file),
    );
    let untrusted = tailer_setup(
        here,
        "secure-untrusted-ca",
        &tables,
        "latest",
        &sasl,
        &broker.sasl_settings("SCRAM-SHA-512", "other-ca.pem", &password_file),
    );
    for (setup, what, expected) in [
        (
            &bad_login,
            "a wrong password",
            ["refused the SASL login", "kafka.sasl"],
        ),
        (
            &untrusted,
            "an untrusted CA",
            ["TLS connection to the broker failed", "kafka.tls.ca_file"],
        ),
    ] {
        for command in ["check", "run"] {
            let (code, out, took) = tailer_command(setup, &[command], &[]);
            eprintln!("{command} with {what}: exit {code} in {took:?}");
            assert_eq!(code, 3, "{command} with {what}:\n{out}");
            assert!(
                took < FAILURE_BOUND,
                "{command} with {what} took {took:?}:\n{out}"
            );
            for needle in expected {
                assert!(
                    out.contains(needle),
                    "{command} with {what} names {needle:?}:\n{out}"
                );
            }
            assert_secret_absent(&format!("{command} with {what}"), &out, &secrets);
        }
    }

    // 4. Secrets in kafka.properties are refused, naming the proper setting.
    let setup = tailer_setup(
        here,
        "secure-props",
        &tables,
        "latest",
        &sasl,
        &format!(
            "\n[kafka.properties]\n\"sasl.password\" = \"{}\"\n",
            broker.password
        ),
    );
    let (code, out, _) = tailer_command(&setup, &["check"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("kafka.properties.sasl.password") && out.contains("kafka.sasl"),
        "{out}"
    );
    assert_secret_absent("the refusal", &out, &secrets);

    // 5. End to end over SASL_SSL with SCRAM-SHA-512: the tailer (password
    //    from the environment) publishes, the payment service (password from
    //    a file) charges each order once.
    let dlq = unique_name("secure.dlq");
    create_topic(&broker.internal(), &dlq).await;
    let from = replica_gtid_state().await;
    let setup = tailer_setup(
        here,
        "secure-run",
        &tables,
        &from,
        &sasl,
        &format!(
            "\n[kafka.tls]\nca_file = \"{}\"\n\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"{SCRAM_USER}\"\n\
             \n[kafka.properties]\ndebug = \"security,broker\"\n",
            broker.cert("ca.pem").display()
        ),
    );
    let mut command = Command::new(setup.bin);
    command
        .arg("--config")
        .arg(&setup.config)
        .arg("run")
        .env("BINLOG_TAILER_SOURCE_PASSWORD", tailer_password())
        .env("BINLOG_TAILER_KAFKA_PASSWORD", &broker.password)
        .env("BINLOG_TAILER_LOG", "debug");
    let mut tailer = Process::spawn("binlog-tailer", &mut command, setup.dir.join("tailer.log"));
    // The topic exists once a preflight created it (over SASL_SSL: step 1's
    // `check`, which has kafka.create_topics on, already did).
    let started = Instant::now();
    while !topic_exists(&broker.internal(), &topic) {
        tailer.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no topic within 60 s:\n{}",
            tailer.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("tailer running over SASL_SSL after {:?}", started.elapsed());

    let pay = PaymentsDb::create("pay").await;
    let pay_db = pay.name.clone();
    let http_port = free_port();
    let pay_config = payment_config(
        &files,
        &pay_db,
        &topic,
        &dlq,
        http_port,
        &broker.sasl_settings("SCRAM-SHA-512", "ca.pem", &password_file),
        &sasl,
    );
    let payment = PaymentService::start_as_configured(
        here,
        &pay_config,
        http_port,
        files.join("payment-service.log"),
        "debug",
    );

    let ids: Vec<u64> = (1..=5).map(|i| 9_100_000 + i).collect();
    let mut primary = connect(Server::Primary, User::Admin).await;
    let written = Instant::now();
    primary
        .query_drop(insert_orders(&db.name, ids.iter().copied()))
        .await
        .expect("insert orders");
    let mut paid = BTreeMap::new();
    while paid.len() < ids.len() {
        assert!(
            written.elapsed() < Duration::from_secs(60),
            "payments after 60 s: {paid:?}\ntailer log:\n{}\npayment log:\n{}",
            tailer.log(),
            payment.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        paid = pay.charges().await;
    }
    eprintln!(
        "{} orders paid {:?} after the commit",
        ids.len(),
        written.elapsed()
    );
    // What the cmdlines show while both run.
    let tailer_cmdline = cmdline(tailer.child.id());
    let payment_cmdline = cmdline(payment.process.child.id());

    let in_topic = order_ids_in_topic(
        &broker.internal(),
        &topic,
        ids.len(),
        Duration::from_secs(30),
    );
    let mut sorted = in_topic.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ids, "each order once in the topic");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paid = pay.charges().await;
    assert_eq!(
        paid,
        ids.iter().map(|id| (*id, 1)).collect::<BTreeMap<_, _>>(),
        "each order charged once"
    );

    let status = tailer.terminate(Duration::from_secs(30));
    assert!(status.success(), "tailer exit {status}:\n{}", tailer.log());
    let payment_log = payment.log();
    drop(payment);
    let tailer_log = tailer.log();
    // librdkafka's own security debug lines reach both logs, so the checks
    // below cover what librdkafka says too.
    for (name, log) in [("tailer", &tailer_log), ("payment service", &payment_log)] {
        assert!(
            log.contains("librdkafka: SASL"),
            "librdkafka's SASL debug lines in the {name}'s log:\n{log}"
        );
    }
    assert_secret_absent("the tailer's log", &tailer_log, &secrets);
    assert_secret_absent("the payment service's log", &payment_log, &secrets);
    assert_secret_absent("the tailer's command line", &tailer_cmdline, &secrets);
    assert_secret_absent(
        "the payment service's command line",
        &payment_cmdline,
        &secrets,
    );

    // 6. The payment service with a wrong password or an untrusted CA stops
    //    within seconds, naming the problem.
    for (what, settings, needle) in [
        (
            "a wrong password",
            broker.sasl_settings("SCRAM-SHA-512", "ca.pem", &wrong_file),
            "refused the SASL login",
        ),
        (
            "an untrusted CA",
            broker.sasl_settings("SCRAM-SHA-512", "other-ca.pem", &password_file),
            "TLS connection to the broker failed",
        ),
    ] {
        let http_port = free_port();
        let config = payment_config(&files, &pay_db, &topic, &dlq, http_port, &settings, &sasl);
        let mut command = Command::new(here.payment_service_bin);
        command
            .arg("--config")
            .arg(&config)
            .env(
                "PAYMENT_SERVICE_DB_PASSWORD",
                User::PaymentsApp.credentials().1,
            )
            .env("PAYMENT_SERVICE_LOG", "debug");
        let started = Instant::now();
        let mut process = Process::spawn(
            "payment-service",
            &mut command,
            files.join(format!("{}.log", unique_name("payment-refused"))),
        );
        let status = process.wait(Duration::from_secs(40));
        let took = started.elapsed();
        let log = process.log();
        eprintln!("payment-service with {what}: {status} in {took:?}");
        assert_eq!(
            status.code(),
            Some(1),
            "payment-service with {what}:\n{log}"
        );
        assert!(
            took < FAILURE_BOUND,
            "payment-service with {what} took {took:?}:\n{log}"
        );
        assert!(
            log.contains(needle),
            "payment-service with {what} names it:\n{log}"
        );
        assert_secret_absent(&format!("payment-service with {what}"), &log, &secrets);
    }
}
