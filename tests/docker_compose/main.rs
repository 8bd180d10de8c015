//! docker/compose.yml, without a Docker engine: `docker-compose config`
//! (Debian's docker-compose) must accept it, and what it resolves to must
//! say what the local services of tests/env/services.sh say: the same
//! MariaDB binlog settings, server ids, users, privileges, schemas and
//! passwords, the same Kafka settings, the tailer reading the replica with
//! the configuration of config/example.toml, the order-service and the
//! payment-service writing to the primary as their own users with the
//! configurations of their example files, the topics (the dead-letter topic
//! above all) created before the payment-service starts, every image built
//! from its own stage of docker/Dockerfile, Prometheus loading
//! dashboards/alerts.yml and scraping the three services, Grafana
//! provisioning the dashboard. Nothing here starts a container.
//!
//! Each part of the compose file is checked by a test of its own; they share
//! one run of `docker-compose config` per test binary (see [`shared`]).
//!
//! The last test also hands the tailer's compose configuration
//! (docker/binlog-tailer.toml) to the real binary's `check`, pointed at the
//! local services: it parses, and passes the preflight against servers set up
//! like the compose file's.

mod parse;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use binlog_tailer::config::Config;
use order_service::OrderConfig;
use payment_service::PaymentConfig;
use serde_json::Value as Json;

use parse::{
    bootstrap_primary, cnf_file, cnf_pairs, command, defaults_env, depends_on,
    depends_on_conditions, dockerfile_stage, environment, grants, heredoc_after, mounted_at,
    mounts, ports, properties, read, repo, scrape_targets, text, words, yaml_to_json,
};

// ---------------------------------------------------------------- installing

// ---------------------------------------------------------------- reading the files

// The parsers are in parse.rs; what is left here checks (check_own_image)
// or runs a tool (compose_config).

/// One of the system's own services, built from docker/Dockerfile: its
/// compose entry builds the stage named after the binary from the repository
/// root, runs it with `--config` at the path its compose configuration file
/// (`config_rel`) is mounted at (followed by `tail`), publishes `http_port`
/// on the host's loopback at `host_port`; the stage runs the binary the build
/// stage built, as a user of its own, with a health check on `/healthz` at
/// that port.
fn check_own_image(
    service: &Json,
    name: &str,
    config_rel: &str,
    tail: &[&str],
    http_port: u16,
    host_port: &str,
    dockerfile: &str,
) {
    assert_eq!(
        Path::new(&text(&service["build"]["context"])),
        repo(),
        "{name} is built from the repository root"
    );
    assert_eq!(text(&service["build"]["dockerfile"]), "docker/Dockerfile");
    assert_eq!(
        text(&service["build"]["target"]),
        name,
        "{name} is built from its own stage"
    );
    assert_eq!(text(&service["image"]), format!("{name}:local"));
    let config_path = mounted_at(service, name, config_rel);
    assert_eq!(
        config_path,
        format!("/etc/{name}/{name}.toml"),
        "{name}'s configuration is mounted where the image expects it"
    );
    let mut expected = vec!["--config".to_owned(), config_path];
    expected.extend(tail.iter().map(|w| (*w).to_owned()));
    assert_eq!(command(service), expected, "{name}'s command");
    assert!(
        ports(service).contains(&(
            "127.0.0.1".into(),
            host_port.to_owned(),
            http_port.to_string()
        )),
        "{name}'s HTTP port {http_port} is not published on 127.0.0.1:{host_port}: {:?}",
        ports(service)
    );
    assert_eq!(
        text(&service["restart"]),
        "on-failure",
        "{name} is restarted after an error exit"
    );

    let build = dockerfile_stage(dockerfile, "build");
    assert!(
        build.contains("cargo build --release --locked --bins"),
        "the build stage builds every binary in one cargo build"
    );
    assert!(
        build.contains(&format!("target/release/{name}")),
        "the build stage installs {name} into /out"
    );
    let stage = dockerfile_stage(dockerfile, name);
    for needed in [
        format!("COPY --from=build /out/{name} /usr/local/bin/{name}\n"),
        "useradd --system ".to_owned(),
        format!("USER {name}\n"),
        format!("EXPOSE {http_port}\n"),
        "STOPSIGNAL SIGTERM\n".to_owned(),
        "HEALTHCHECK ".to_owned(),
        format!("CMD curl -fsS http://127.0.0.1:{http_port}/healthz || exit 1\n"),
        format!("ENTRYPOINT [\"{name}\"]\n"),
        format!("/etc/{name}/"),
    ] {
        assert!(
            stage.contains(&needed),
            "docker/Dockerfile's stage {name} lacks {needed:?}:\n{stage}"
        );
    }
    assert!(
        dockerfile_stage(dockerfile, "runtime").contains("ca-certificates libssl3 zlib1g curl"),
        "the runtime stages have the shared libraries and curl"
    );
}

/// `docker-compose -f docker/compose.yml config`, with the BT_* variables of
/// the test's environment removed so that the compose file's defaults apply:
/// (its YAML, as JSON).
fn compose_config() -> Json {
    test_support::require_tools(&["docker-compose"]);
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(repo())
        .args(["-f", "docker/compose.yml", "config"])
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("BT_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().expect("run docker-compose");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "docker-compose -f docker/compose.yml config failed ({}):\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("WARNING"),
        "docker-compose config warns:\n{stderr}"
    );
    yaml_to_json(&stdout, "docker-compose config's output")
}

// ---------------------------------------------------------------- the shared set-up

/// What every test starts from: the services of the resolved compose file
/// (checked to be the system's nine), tests/env/services.sh and the defaults
/// of tests/env/defaults.env.
struct Shared {
    services: serde_json::Map<String, Json>,
    services_sh: String,
    defaults: BTreeMap<String, String>,
}

/// The shared set-up, made once per test binary: `docker-compose config`
/// runs once, whichever test asks first. (If it panics, the next test to ask
/// tries again, and fails the same way.)
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let config = compose_config();
        let services = config["services"].as_object().expect("services");
        let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "mariadb-primary",
                "mariadb-replica",
                "kafka",
                "kafka-init",
                "binlog-tailer",
                "order-service",
                "payment-service",
                "prometheus",
                "grafana"
            ]),
            "the services of docker/compose.yml"
        );
        let services_sh = read("tests/env/services.sh");
        let defaults = defaults_env();
        Shared {
            services: services.clone(),
            services_sh,
            defaults,
        }
    })
}

/// A service of the resolved compose file.
fn service(name: &str) -> &'static Json {
    &shared().services[name]
}

// What the containers run with: each compose configuration file with the
// variables compose sets for its service. Several tests need them; each
// loads them itself, so that no test depends on another.

/// docker/binlog-tailer.toml with binlog-tailer's environment.
fn compose_tailer_config() -> Config {
    Config::load(
        Some(&repo().join("docker/binlog-tailer.toml")),
        environment(service("binlog-tailer")),
        &[],
    )
    .expect("docker/binlog-tailer.toml with compose's environment")
}

/// docker/order-service.toml with order-service's environment.
fn compose_order_config() -> OrderConfig {
    OrderConfig::load(
        Some(&repo().join("docker/order-service.toml")),
        environment(service("order-service")),
        &[],
    )
    .expect("docker/order-service.toml with compose's environment")
}

/// docker/payment-service.toml with payment-service's environment.
fn compose_payment_config() -> PaymentConfig {
    PaymentConfig::load(
        Some(&repo().join("docker/payment-service.toml")),
        environment(service("payment-service")),
        &[],
    )
    .expect("docker/payment-service.toml with compose's environment")
}

/// The topics the tailer publishes to.
fn published_topics(tailer_config: &Config) -> BTreeSet<&str> {
    tailer_config
        .tables
        .iter()
        .map(|t| t.topic.as_str())
        .collect()
}

/// Every kafka-topics.sh --create of kafka-init's script: topic → its
/// arguments.
fn kafka_init_topics(kafka_init: &Json) -> BTreeMap<String, BTreeMap<String, String>> {
    let script = match &kafka_init["command"] {
        Json::Array(list) if list.len() == 1 => text(&list[0]),
        other => panic!("kafka-init's command is one script for sh -c: {other}"),
    };
    let mut created: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in script.replace("\\\n", " ").lines() {
        let args: Vec<&str> = line.split_whitespace().collect();
        if !args
            .first()
            .is_some_and(|c| c.ends_with("/kafka-topics.sh"))
            || !args.contains(&"--create")
        {
            continue;
        }
        let mut options = BTreeMap::new();
        let mut rest = args[1..].iter().peekable();
        while let Some(arg) = rest.next() {
            let value = match rest.peek() {
                Some(v) if !v.starts_with("--") => rest.next().map(|v| (*v).to_owned()),
                _ => None,
            };
            options.insert((*arg).to_owned(), value.unwrap_or_default());
        }
        let topic = options.get("--topic").cloned().unwrap_or_else(|| {
            panic!("kafka-init: kafka-topics.sh --create without --topic: {line}")
        });
        created.insert(topic, options);
    }
    created
}

// ---------------------------------------------------------------- the tests

/// MariaDB: the binlog settings, each server's role, its ports.
#[test]
fn mariadb_servers_have_the_binlog_settings_and_roles() {
    let Shared {
        services_sh,
        defaults,
        ..
    } = shared();
    let local_cnf = cnf_pairs(&heredoc_after(services_sh, "write_mariadb_cnf() {"));
    let local_replica_cnf = cnf_pairs(&heredoc_after(services_sh, "if [ \"$name\" = replica ]"));
    for key in [
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "log_slave_updates",
        "gtid_strict_mode",
    ] {
        assert!(
            local_cnf.contains_key(key),
            "services.sh no longer sets {key}; this test reads it from there"
        );
    }
    let shared = cnf_file("docker/mariadb/binlog.cnf");
    for (role, port_var, role_cnf) in [
        ("primary", "BT_PRIMARY_PORT", "docker/mariadb/primary.cnf"),
        ("replica", "BT_REPLICA_PORT", "docker/mariadb/replica.cnf"),
    ] {
        let name = format!("mariadb-{role}");
        let svc = service(&name);
        assert!(
            text(&svc["image"]).starts_with("mariadb:"),
            "{name} runs the mariadb image"
        );
        // Both option files reach the server's include directory.
        for rel in ["docker/mariadb/binlog.cnf", role_cnf] {
            let target = mounted_at(svc, &name, rel);
            assert!(
                target.starts_with("/etc/mysql/conf.d/") && target.ends_with(".cnf"),
                "{name} mounts {rel} at {target}, where the server does not read it"
            );
        }
        let mut effective = shared.clone();
        effective.extend(cnf_file(role_cnf));
        // Every setting of the local servers that is not about where the
        // files and sockets are has the same value.
        for (key, value) in &local_cnf {
            if value.contains('$') || key == "bind_address" {
                continue;
            }
            assert_eq!(
                effective.get(key),
                Some(value),
                "{name}: {key} differs from tests/env/services.sh"
            );
        }
        // server_id as services.sh starts each server.
        let started = services_sh
            .lines()
            .find(|l| {
                l.trim_start()
                    .starts_with(&format!("start_mariadb {role} "))
            })
            .unwrap_or_else(|| panic!("services.sh does not start the {role}"));
        let id = started.split_whitespace().last().expect("server id");
        assert_eq!(
            effective.get("server_id").map(String::as_str),
            Some(id),
            "{name}: server_id"
        );
        // Replica only: relay log and read_only as services.sh; never on the primary.
        for (key, value) in &local_replica_cnf {
            if role == "replica" {
                assert_eq!(effective.get(key), Some(value), "{name}: {key}");
            } else {
                assert!(
                    !effective.contains_key(key),
                    "{name} sets the replica's {key}"
                );
            }
        }
        // Users and passwords: tests/env/defaults.env's defaults.
        let env = environment(svc);
        let users = defaults
            .iter()
            .filter(|(var, _)| var.ends_with("_USER") || var.ends_with("_PASSWORD"));
        for (var, value) in users {
            assert_eq!(env.get(var), Some(value), "{name}: {var}");
        }
        // Published on the host's loopback at the local services' port.
        assert!(
            ports(svc).contains(&(
                "127.0.0.1".into(),
                defaults[port_var].clone(),
                "3306".into()
            )),
            "{name} is not published on 127.0.0.1:{}: {:?}",
            defaults[port_var],
            ports(svc)
        );
    }
}

/// The primary's first start: the same users, privileges and schemas.
#[test]
fn primary_first_start_creates_the_local_users_privileges_and_schemas() {
    let Shared { services_sh, .. } = shared();
    let primary = service("mariadb-primary");
    let init = mounted_at(primary, "mariadb-primary", "docker/mariadb/primary-init.sh");
    assert!(
        init.starts_with("/docker-entrypoint-initdb.d/"),
        "primary-init.sh at {init}"
    );
    let schemas = mounted_at(primary, "mariadb-primary", "schemas");
    let primary_init = read("docker/mariadb/primary-init.sh");
    let bootstrap = bootstrap_primary(services_sh);
    assert_eq!(
        grants(&primary_init),
        grants(&bootstrap),
        "docker/mariadb/primary-init.sh grants differ from services.sh's bootstrap_primary"
    );
    assert!(
        grants(&bootstrap).len() >= 6,
        "services.sh's grants, as read"
    );
    for entry in std::fs::read_dir(repo().join("schemas")).expect("schemas/") {
        let file = entry.expect("schemas/ entry").file_name();
        let file = file.to_string_lossy();
        if file.ends_with(".sql") {
            assert!(
                primary_init.contains(&format!("docker_process_sql <{schemas}/{file}")),
                "primary-init.sh does not apply schemas/{file}"
            );
        }
    }
}

/// The replica follows the primary by GTID.
#[test]
fn replica_follows_the_primary_by_gtid() {
    let Shared { services_sh, .. } = shared();
    let replica = service("mariadb-replica");
    let init = mounted_at(replica, "mariadb-replica", "docker/mariadb/replica-init.sh");
    assert!(
        init.starts_with("/docker-entrypoint-initdb.d/"),
        "replica-init.sh at {init}"
    );
    let replica_init = read("docker/mariadb/replica-init.sh");
    for needed in [
        "MASTER_HOST = '$BT_PRIMARY_HOST'",
        "MASTER_PORT = 3306",
        "MASTER_USER = '$BT_REPL_USER'",
        "MASTER_USE_GTID = slave_pos",
        "START SLAVE",
    ] {
        assert!(
            replica_init.contains(needed),
            "replica-init.sh lacks {needed:?}"
        );
    }
    assert!(
        services_sh.contains("MASTER_USE_GTID = slave_pos"),
        "services.sh no longer replicates by GTID"
    );
    assert_eq!(
        environment(replica)
            .get("BT_PRIMARY_HOST")
            .map(String::as_str),
        Some("mariadb-primary")
    );
    assert!(depends_on(replica).contains("mariadb-primary"));
}

/// Kafka: KRaft, the local broker's settings.
#[test]
fn kafka_runs_kraft_with_the_local_broker_settings() {
    let Shared {
        services_sh,
        defaults,
        ..
    } = shared();
    let kafka = service("kafka");
    let kafka_env = environment(kafka);
    let local_kafka = properties(&heredoc_after(services_sh, "write_kafka_properties() {"));
    assert!(
        local_kafka.len() >= 15,
        "services.sh's Kafka properties, as read"
    );
    for (key, value) in &local_kafka {
        let var = format!(
            "KAFKA_{}",
            key.replace('_', "__")
                .replace('.', "_")
                .to_ascii_uppercase()
        );
        let found = kafka_env
            .get(&var)
            .unwrap_or_else(|| panic!("kafka: {key} (services.sh) has no {var}"));
        // Addresses and paths are the container's own; the extra HOST
        // listener changes the protocol map.
        if value.contains('$') || key == "listener.security.protocol.map" {
            continue;
        }
        assert_eq!(found, value, "kafka: {key} differs from services.sh");
    }
    assert_eq!(
        kafka_env["KAFKA_PROCESS_ROLES"], "broker,controller",
        "KRaft"
    );
    assert!(
        ports(kafka).contains(&(
            "127.0.0.1".into(),
            defaults["BT_KAFKA_PORT"].clone(),
            "19092".into()
        )),
        "kafka is not published on 127.0.0.1:{}: {:?}",
        defaults["BT_KAFKA_PORT"],
        ports(kafka)
    );
    assert!(
        kafka_env["KAFKA_ADVERTISED_LISTENERS"]
            .contains(&format!("127.0.0.1:{}", defaults["BT_KAFKA_PORT"])),
        "the host listener is advertised at the published port"
    );
}

/// binlog-tailer: built here, reading the replica, the example's settings.
#[test]
fn binlog_tailer_reads_the_replica_with_the_example_settings() {
    let Shared { defaults, .. } = shared();
    let kafka_env = environment(service("kafka"));
    let dockerfile = read("docker/Dockerfile");
    let tailer = service("binlog-tailer");
    let tailer_env = environment(tailer);
    let tailer_file = Config::load(
        Some(&repo().join("docker/binlog-tailer.toml")),
        std::iter::empty(),
        &[],
    )
    .expect("docker/binlog-tailer.toml is a valid configuration");
    // What the container runs with: the file and the BINLOG_TAILER__*
    // variables compose sets, which only restate it under the defaults.
    let tailer_config = compose_tailer_config();
    assert_eq!(
        format!("{tailer_config:#?}"),
        format!("{tailer_file:#?}"),
        "compose.yml's BINLOG_TAILER__* variables change what docker/binlog-tailer.toml says"
    );
    assert_eq!(
        tailer_config.source.host, "mariadb-replica",
        "the tailer reads the replica"
    );
    assert_eq!(tailer_config.source.port, 3306);
    assert_eq!(tailer_config.source.user, defaults["BT_TAILER_USER"]);
    assert_eq!(
        tailer_env.get("BINLOG_TAILER__SOURCE__USER"),
        Some(&defaults["BT_TAILER_USER"]),
        "the tailer's user follows BT_TAILER_USER, as primary-init.sh's does"
    );
    assert!(![1, 2].contains(&tailer_config.source.server_id));
    assert_eq!(
        tailer_env.get(&tailer_config.source.password_env),
        Some(&defaults["BT_TAILER_PASSWORD"]),
        "the tailer's password comes from {}",
        tailer_config.source.password_env
    );
    assert_eq!(tailer_config.kafka.bootstrap_servers, "kafka:9092");
    assert!(kafka_env["KAFKA_ADVERTISED_LISTENERS"].contains("//kafka:9092"));
    let tailer_deps = depends_on_conditions(tailer);
    for (dep, condition) in [
        ("mariadb-replica", "service_healthy"),
        ("kafka", "service_healthy"),
        ("kafka-init", "service_completed_successfully"),
    ] {
        assert_eq!(
            tailer_deps.get(dep).map(String::as_str),
            Some(condition),
            "binlog-tailer waits for {dep}: {tailer_deps:?}"
        );
    }
    let http_port = tailer_config.http.listen.port();
    assert!(
        tailer_config.http.listen.ip().is_unspecified(),
        "the tailer must listen beyond its container's loopback for Prometheus"
    );
    let metrics_port = defaults
        .get("BT_TAILER_HTTP_PORT")
        .cloned()
        .unwrap_or_else(|| "9187".to_owned());
    check_own_image(
        tailer,
        "binlog-tailer",
        "docker/binlog-tailer.toml",
        &["run"],
        http_port,
        &metrics_port,
        &dockerfile,
    );
    assert!(
        mounts(tailer).contains_key(&tailer_config.checkpoint.dir.display().to_string()),
        "the checkpoint directory is a volume"
    );
    assert!(
        dockerfile
            .trim_end()
            .ends_with(dockerfile_stage(&dockerfile, "binlog-tailer").trim_end()),
        "binlog-tailer is the Dockerfile's last stage (what a build without --target gives)"
    );
    // The same settings as config/example.toml, but for the addresses.
    let example = Config::load(
        Some(&repo().join("config/example.toml")),
        std::iter::empty(),
        &[
            "source.host=\"mariadb-replica\"".to_owned(),
            "source.port=3306".to_owned(),
            "kafka.bootstrap_servers=\"kafka:9092\"".to_owned(),
            format!(
                "checkpoint.dir=\"{}\"",
                tailer_config.checkpoint.dir.display()
            ),
            format!("http.listen=\"{}\"", tailer_config.http.listen),
        ],
    )
    .expect("config/example.toml");
    assert_eq!(
        format!("{tailer_config:#?}"),
        format!("{example:#?}"),
        "docker/binlog-tailer.toml differs from config/example.toml beyond the addresses"
    );
}

/// kafka-init: creates the topics, then exits; nothing waits on a guess.
#[test]
fn kafka_init_creates_the_topics_then_exits() {
    let kafka = service("kafka");
    let tailer_config = compose_tailer_config();
    let tailer_topics = published_topics(&tailer_config);
    let kafka_init = service("kafka-init");
    assert_eq!(
        text(&kafka_init["image"]),
        text(&kafka["image"]),
        "kafka-init runs the broker's own image (its kafka-topics.sh)"
    );
    assert_eq!(
        depends_on_conditions(kafka_init)
            .get("kafka")
            .map(String::as_str),
        Some("service_healthy"),
        "kafka-init waits for a healthy broker"
    );
    assert!(
        matches!(text(&kafka_init["restart"]).as_str(), "" | "no"),
        "kafka-init runs once: restart {:?}",
        kafka_init["restart"]
    );
    let entrypoint = words(&kafka_init["entrypoint"]);
    assert!(
        entrypoint.first().is_some_and(|sh| sh.ends_with("/sh"))
            && entrypoint
                .iter()
                .any(|flag| flag.starts_with('-') && flag.contains('e') && flag.contains('c')),
        "kafka-init's script runs with sh -ec, so a failed creation fails it: {entrypoint:?}"
    );
    let created = kafka_init_topics(kafka_init);
    for (topic, options) in &created {
        assert_eq!(
            options.get("--bootstrap-server").map(String::as_str),
            Some("kafka:9092"),
            "kafka-init creates {topic} on kafka:9092"
        );
        assert!(
            options.contains_key("--if-not-exists"),
            "kafka-init creates {topic} with --if-not-exists (a second `up` must not fail)"
        );
        assert_eq!(
            options.get("--partitions"),
            Some(&tailer_config.kafka.topic_partitions.to_string()),
            "{topic}: the tailer's topic_partitions"
        );
        // The compose file runs one broker: what the tailer would create
        // there.
        let replicas = tailer_config
            .kafka
            .topic_replicas(1)
            .expect("the tailer's replication settings fit one broker");
        assert_eq!(
            options.get("--replication-factor"),
            Some(&replicas.replication_factor.to_string()),
            "{topic}: the tailer's topic_replication_factor on the compose file's one broker"
        );
    }
    for topic in &tailer_topics {
        assert!(
            created.contains_key(*topic),
            "kafka-init does not create the tailer's topic {topic}: {:?}",
            created.keys()
        );
    }
}

/// order-service: writes shop on the primary as orders_app.
#[test]
fn order_service_writes_shop_on_the_primary_as_orders_app() {
    let Shared { defaults, .. } = shared();
    let primary_init = read("docker/mariadb/primary-init.sh");
    let dockerfile = read("docker/Dockerfile");
    let tailer_config = compose_tailer_config();
    let order = service("order-service");
    let order_env = environment(order);
    let order_file = OrderConfig::load(
        Some(&repo().join("docker/order-service.toml")),
        std::iter::empty(),
        &[],
    )
    .expect("docker/order-service.toml is a valid configuration");
    let order_config = compose_order_config();
    assert_eq!(
        format!("{order_config:#?}"),
        format!("{order_file:#?}"),
        "compose.yml's ORDER_SERVICE__* variables change what docker/order-service.toml says"
    );
    assert_eq!(
        order_config.database.host, "mariadb-primary",
        "the order-service writes to the primary"
    );
    assert_eq!(order_config.database.port, 3306);
    assert_eq!(order_config.database.user, defaults["BT_ORDERS_APP_USER"]);
    assert_eq!(
        order_env.get("ORDER_SERVICE__DATABASE__USER"),
        Some(&defaults["BT_ORDERS_APP_USER"]),
        "the order-service's user follows BT_ORDERS_APP_USER, as primary-init.sh's does"
    );
    assert_eq!(
        order_config.database.password_env,
        "ORDER_SERVICE_DB_PASSWORD"
    );
    assert_eq!(
        order_env.get(&order_config.database.password_env),
        Some(&defaults["BT_ORDERS_APP_PASSWORD"]),
        "the order-service's password comes from {}",
        order_config.database.password_env
    );
    assert!(order_config.database.password_file.is_none());
    assert_eq!(order_config.database.name, "shop");
    assert!(
        primary_init.contains(&format!(
            "GRANT SELECT, INSERT ON {}.* TO '$BT_ORDERS_APP_USER'@'%';",
            order_config.database.name
        )),
        "primary-init.sh lets the order-service's user write {}",
        order_config.database.name
    );
    let tailed: BTreeSet<&str> = tailer_config
        .tables
        .iter()
        .map(|t| t.table.split('.').next().unwrap_or_default())
        .collect();
    assert!(
        tailed.contains(order_config.database.name.as_str()),
        "the tailer publishes a table of the order-service's database: {tailed:?}"
    );
    assert_eq!(
        depends_on_conditions(order)
            .get("mariadb-primary")
            .map(String::as_str),
        Some("service_healthy"),
        "the order-service waits for a healthy primary"
    );
    assert!(
        order_config.http.listen.ip().is_unspecified(),
        "the order-service must listen beyond its container's loopback"
    );
    let order_port = order_config.http.listen.port();
    check_own_image(
        order,
        "order-service",
        "docker/order-service.toml",
        &[],
        order_port,
        "8080",
        &dockerfile,
    );
    let order_example = OrderConfig::load(
        Some(&repo().join("config/order-service.example.toml")),
        std::iter::empty(),
        &[
            "database.host=\"mariadb-primary\"".to_owned(),
            "database.port=3306".to_owned(),
            format!("http.listen=\"{}\"", order_config.http.listen),
        ],
    )
    .expect("config/order-service.example.toml");
    assert_eq!(
        format!("{order_config:#?}"),
        format!("{order_example:#?}"),
        "docker/order-service.toml differs from config/order-service.example.toml beyond the addresses"
    );
}

/// payment-service: consumes the tailer's topic, writes payments on the
/// primary as payments_app, starts only once its topics exist.
#[test]
fn payment_service_consumes_the_tailer_topic_and_writes_payments() {
    let Shared { defaults, .. } = shared();
    let primary_init = read("docker/mariadb/primary-init.sh");
    let dockerfile = read("docker/Dockerfile");
    let tailer_config = compose_tailer_config();
    let tailer_topics = published_topics(&tailer_config);
    let created = kafka_init_topics(service("kafka-init"));
    let payment = service("payment-service");
    let payment_env = environment(payment);
    let payment_file = PaymentConfig::load(
        Some(&repo().join("docker/payment-service.toml")),
        std::iter::empty(),
        &[],
    )
    .expect("docker/payment-service.toml is a valid configuration");
    let payment_config = compose_payment_config();
    assert_eq!(
        format!("{payment_config:#?}"),
        format!("{payment_file:#?}"),
        "compose.yml's PAYMENT_SERVICE__* variables change what docker/payment-service.toml says"
    );
    let db = &payment_config.database;
    assert_eq!(
        db.host, "mariadb-primary",
        "the payment-service writes to the primary"
    );
    assert_eq!(db.port, 3306);
    assert_eq!(db.user, defaults["BT_PAYMENTS_APP_USER"]);
    assert_eq!(
        payment_env.get("PAYMENT_SERVICE__DATABASE__USER"),
        Some(&defaults["BT_PAYMENTS_APP_USER"]),
        "the payment-service's user follows BT_PAYMENTS_APP_USER, as primary-init.sh's does"
    );
    assert_eq!(db.password_env, "PAYMENT_SERVICE_DB_PASSWORD");
    assert_eq!(
        payment_env.get(&db.password_env),
        Some(&defaults["BT_PAYMENTS_APP_PASSWORD"]),
        "the payment-service's password comes from {}",
        db.password_env
    );
    assert!(db.password_file.is_none());
    assert_eq!(db.database, "payments");
    assert!(
        primary_init.contains(&format!(
            "ON {}.* TO '$BT_PAYMENTS_APP_USER'@'%';",
            db.database
        )),
        "primary-init.sh gives the payment-service's user its database {}",
        db.database
    );
    let kafka_cfg = &payment_config.kafka;
    assert_eq!(kafka_cfg.bootstrap_servers, "kafka:9092");
    assert!(
        tailer_topics.contains(kafka_cfg.topic.as_str()),
        "the payment-service consumes {}, which the tailer does not publish to: {tailer_topics:?}",
        kafka_cfg.topic
    );
    for (setting, topic) in [
        ("kafka.topic", &kafka_cfg.topic),
        ("kafka.dead_letter_topic", &kafka_cfg.dead_letter_topic),
    ] {
        assert!(
            created.contains_key(topic),
            "kafka-init does not create the payment-service's {setting} {topic} (it refuses to \
             start without it): {:?}",
            created.keys()
        );
    }
    let payment_deps = depends_on_conditions(payment);
    for (dep, condition) in [
        ("mariadb-primary", "service_healthy"),
        ("kafka", "service_healthy"),
        ("kafka-init", "service_completed_successfully"),
    ] {
        assert_eq!(
            payment_deps.get(dep).map(String::as_str),
            Some(condition),
            "the payment-service waits for {dep}: {payment_deps:?}"
        );
    }
    assert!(
        payment_config.http.listen.ip().is_unspecified(),
        "the payment-service must listen beyond its container's loopback"
    );
    let payment_port = payment_config.http.listen.port();
    check_own_image(
        payment,
        "payment-service",
        "docker/payment-service.toml",
        &[],
        payment_port,
        "9188",
        &dockerfile,
    );
    let payment_example = PaymentConfig::load(
        Some(&repo().join("config/payment-service.example.toml")),
        std::iter::empty(),
        &[
            "database.host=\"mariadb-primary\"".to_owned(),
            "database.port=3306".to_owned(),
            "kafka.bootstrap_servers=\"kafka:9092\"".to_owned(),
            format!("http.listen=\"{}\"", payment_config.http.listen),
        ],
    )
    .expect("config/payment-service.example.toml");
    assert_eq!(
        format!("{payment_config:#?}"),
        format!("{payment_example:#?}"),
        "docker/payment-service.toml differs from config/payment-service.example.toml beyond the addresses"
    );
}

/// Prometheus: the rules of dashboards/alerts.yml, scraping the three services.
#[test]
fn prometheus_loads_the_alerts_and_scrapes_the_three_services() {
    let http_port = compose_tailer_config().http.listen.port();
    let order_port = compose_order_config().http.listen.port();
    let payment_port = compose_payment_config().http.listen.port();
    let prometheus = service("prometheus");
    let prom_config_path = mounted_at(prometheus, "prometheus", "docker/prometheus/prometheus.yml");
    assert!(
        command(prometheus).contains(&format!("--config.file={prom_config_path}")),
        "prometheus reads {prom_config_path}"
    );
    let rules_path = mounted_at(prometheus, "prometheus", "dashboards/alerts.yml");
    let prom_config = yaml_to_json(&read("docker/prometheus/prometheus.yml"), "prometheus.yml");
    let rule_files: Vec<String> = prom_config["rule_files"]
        .as_array()
        .map(|l| l.iter().map(text).collect())
        .unwrap_or_default();
    assert_eq!(rule_files, vec![rules_path.clone()], "rule_files");
    // The alerts and the dashboard select the job binlog-tailer.
    for (job, target) in [
        ("binlog-tailer", format!("binlog-tailer:{http_port}")),
        ("order-service", format!("order-service:{order_port}")),
        ("payment-service", format!("payment-service:{payment_port}")),
    ] {
        assert_eq!(
            scrape_targets(&prom_config, job),
            vec![target],
            "Prometheus' job {job}"
        );
    }
    assert!(read("dashboards/alerts.yml").contains("job=\"binlog-tailer\""));
    // promtool checks the configuration and the rule file it names.
    test_support::require_tools(&["promtool"]);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test_support::unique_name("compose"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let checked = dir.join("prometheus.yml");
    std::fs::write(
        &checked,
        read("docker/prometheus/prometheus.yml").replace(
            &rules_path,
            &repo().join("dashboards/alerts.yml").display().to_string(),
        ),
    )
    .expect("write prometheus.yml copy");
    let out = Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(&checked)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check config docker/prometheus/prometheus.yml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Grafana: the data source is this Prometheus, the dashboard is provisioned.
#[test]
fn grafana_provisions_the_prometheus_data_source_and_the_dashboard() {
    let prom_config = yaml_to_json(&read("docker/prometheus/prometheus.yml"), "prometheus.yml");
    let grafana = service("grafana");
    let provisioning = mounted_at(grafana, "grafana", "docker/grafana/provisioning");
    assert_eq!(provisioning, "/etc/grafana/provisioning");
    let dashboards_dir = mounted_at(grafana, "grafana", "dashboards");
    let providers = yaml_to_json(
        &read("docker/grafana/provisioning/dashboards/binlog-tailer.yml"),
        "the dashboard provider",
    );
    assert_eq!(
        text(&providers["providers"][0]["options"]["path"]),
        dashboards_dir,
        "the provider reads where dashboards/ is mounted"
    );
    assert_eq!(text(&providers["providers"][0]["type"]), "file");
    assert!(repo().join("dashboards/binlog-tailer.json").is_file());
    let datasources = yaml_to_json(
        &read("docker/grafana/provisioning/datasources/prometheus.yml"),
        "the data source",
    );
    let ds = &datasources["datasources"][0];
    assert_eq!(text(&ds["type"]), "prometheus");
    assert_eq!(text(&ds["url"]), "http://prometheus:9090");
    assert_eq!(
        text(&ds["jsonData"]["timeInterval"]),
        text(&prom_config["global"]["scrape_interval"]),
        "Grafana's timeInterval is Prometheus' scrape interval ($__rate_interval = 1m)"
    );
    let home = environment(grafana)
        .get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        .cloned()
        .unwrap_or_default();
    assert_eq!(home, format!("{dashboards_dir}/binlog-tailer.json"));
}

/// The Dockerfile builds with Cargo.toml's toolchain.
#[test]
fn dockerfile_builds_with_the_cargo_toml_toolchain() {
    let dockerfile = read("docker/Dockerfile");
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let rust_version = manifest["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("rust-version");
    assert!(
        dockerfile.contains(&format!("ARG RUST_VERSION={rust_version}\n")),
        "docker/Dockerfile builds with Rust {rust_version} (Cargo.toml's rust-version)"
    );
    let ignore = read("docker/Dockerfile.dockerignore");
    let copied_from_context: BTreeSet<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[1..words.len() - 1].to_vec()
        })
        .collect();
    for copied in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "crates",
        "benches",
        "config/example.toml",
        "config/order-service.example.toml",
        "config/payment-service.example.toml",
    ] {
        assert!(
            copied_from_context.contains(copied),
            "the Dockerfile copies {copied}: {copied_from_context:?}"
        );
        assert!(
            ignore.contains(&format!("!{copied}")),
            "Dockerfile.dockerignore lets {copied} into the context"
        );
        assert!(repo().join(copied).exists());
    }
    // What the tests compared, counted (each test reads its own copy).
    let Shared {
        services,
        services_sh,
        ..
    } = shared();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    let local_cnf = cnf_pairs(&heredoc_after(services_sh, "write_mariadb_cnf() {"));
    let local_replica_cnf = cnf_pairs(&heredoc_after(services_sh, "if [ \"$name\" = replica ]"));
    let bootstrap = bootstrap_primary(services_sh);
    let local_kafka = properties(&heredoc_after(services_sh, "write_kafka_properties() {"));
    eprintln!(
        "docker-compose config: {} services; {} MariaDB settings, {} grants and {} Kafka \
         settings compared with tests/env/services.sh",
        names.len(),
        local_cnf.len() + local_replica_cnf.len(),
        grants(&bootstrap).len(),
        local_kafka.len()
    );
}

/// docker/binlog-tailer.toml with only its addresses pointed at the local
/// services passes `binlog-tailer check`: the server settings, privileges,
/// table and topic it expects are the ones the compose file sets up.
/// (Creates the topic shop.orders.v1 on the local broker if missing, as
/// `make demo` does.)
#[test]
fn the_compose_tailer_configuration_passes_check_against_the_local_services() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(test_support::unique_name("compose_check"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_binlog-tailer"))
        .current_dir(repo())
        .args(["--config", "docker/binlog-tailer.toml", "check"])
        .env(
            "BINLOG_TAILER_SOURCE_PASSWORD",
            test_support::tailer::tailer_password(),
        )
        .env("BINLOG_TAILER__SOURCE__HOST", "127.0.0.1")
        .env(
            "BINLOG_TAILER__SOURCE__PORT",
            test_support::Server::Replica.port().to_string(),
        )
        .env(
            "BINLOG_TAILER__KAFKA__BOOTSTRAP_SERVERS",
            test_support::kafka_bootstrap(),
        )
        .env("BINLOG_TAILER__CHECKPOINT__DIR", dir.join("state"))
        .env("BINLOG_TAILER__HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .expect("run binlog-tailer check");
    assert_eq!(
        out.status.code(),
        Some(0),
        "binlog-tailer check with docker/binlog-tailer.toml failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
