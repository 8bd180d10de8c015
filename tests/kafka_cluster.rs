//! The tailer and the payment service against a three-node Kafka cluster
//! (`tests/env/kafka-cluster.sh`: replication factor 3,
//! `min.insync.replicas=2`, unclean leader election off) while brokers fail,
//! with orders committed on the primary throughout:
//!
//! (a) the leader of partition 0 SIGKILLed, then started again, twice;
//! (b) the leader of partition 0 frozen with SIGSTOP for 60 s, then SIGCONT:
//!     SIGKILL is (a), and SIGTERM makes a controlled shutdown that moves
//!     the leaderships before the broker goes; a frozen broker keeps its
//!     sockets open and answers nothing, so the producer's requests to it
//!     must time out before they are sent again to the new leader (a long
//!     GC pause, a hung VM);
//! (c) the active controller (the metadata quorum's leader, also a broker)
//!     SIGKILLed, then started again.
//!
//! In each: every committed order is in the topic exactly once (missing and
//! repeated counted), in commit order per partition; every checkpoint the
//! tailer wrote while the fault lasted (sampled every 250 ms) covers only
//! orders that are in the topic; `/readyz` answers 503 while acknowledgements
//! stall for 5 s or more, and the metrics count the stall or the producer's
//! retries; the payment service, consuming from the cluster, charges every
//! order exactly once. The tailer is never restarted.
//!
//! Before the faults, `check` against the cluster: a replication factor
//! above the brokers and a topic no write can be acknowledged on are
//! refused; replication factor 1 and `min.insync.replicas=1` are warned
//! about, by the payment service at start-up too.
//!
//! The test starts the cluster itself (state in target/kafka-cluster-tests/,
//! removed at the end) beside the ordinary single broker, which it does not
//! touch. Each scenario prints its figures.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use binlog_tailer::position::{Gtid, GtidState};
use test_support::cluster::Cluster;
use test_support::faults::{delivery, expected_data, Delivery, Writer};
use test_support::services::{sample, PaymentService, PaymentsDb};
use test_support::tailer::{
    assert_commit_order_per_partition, consume_all_at, replica_gtid_state, Tailed, TailerSetup,
    TestDb,
};
use test_support::{free_port, here, http_get, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_and_controller_failover_lose_nothing_and_repeat_nothing() {
    let started = Instant::now();
    let cluster = Arc::new(Cluster::up());
    println!(
        "cluster of 3 nodes up in {:.1} s: {}",
        cluster.started_in.as_secs_f64(),
        cluster.bootstrap()
    );

    topic_settings_fit_the_cluster(&cluster).await;
    let mut reports = Vec::new();
    reports.push(scenario(&cluster, "leader_killed_twice", Fault::KillLeaderTwice).await);
    reports.push(
        scenario(
            &cluster,
            "leader_frozen_60s",
            Fault::FreezeLeader(Duration::from_secs(60)),
        )
        .await,
    );
    reports.push(scenario(&cluster, "controller_killed", Fault::KillController).await);
    drop(cluster);
    println!("\nsummary:");
    for r in &reports {
        println!("  {r}");
    }
    println!(
        "kafka_cluster: {:.0} s in all (cluster start and stop included)",
        started.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------ topic settings

/// `check` on the cluster: a replication factor the cluster cannot give is
/// refused, topics that one broker's loss can hurt are warned about, and so
/// does the payment service at start-up for its dead-letter topic.
async fn topic_settings_fit_the_cluster(cluster: &Cluster) {
    let db = TestDb::create("cluster_check").await;
    let start = replica_gtid_state().await;

    // Explicit replication above the brokers: refused, naming both.
    let topic = unique_name("cluster_rf4");
    let setup = TailerSetup::new(
        here!(),
        "cluster_rf4",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    )
    .with_bootstrap(cluster.bootstrap());
    let (code, out, err) = setup.command(&["--set", "kafka.topic_replication_factor=4", "check"]);
    println!("check with kafka.topic_replication_factor=4 (exit {code}):");
    print_lines(&out, "FAIL");
    assert_eq!(code, 3, "refused; stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("kafka.topic_replication_factor = 4 but the cluster has 3 broker(s)"),
        "{out}"
    );

    // Replication factor 1 under the cluster's min.insync.replicas=2: no
    // write could be acknowledged; refused.
    let stuck = unique_name("cluster_stuck");
    cluster.create_topic_with(&stuck, 3, 1, &[]).await;
    let setup = TailerSetup::new(
        here!(),
        "cluster_stuck",
        &[Tailed::orders(&db, &stuck)],
        &start,
        "",
    )
    .with_bootstrap(cluster.bootstrap());
    let (code, out, err) = setup.command(&["check"]);
    println!("check with a topic of replication factor 1 and min.insync.replicas 2 (exit {code}):");
    print_lines(&out, "FAIL");
    assert_eq!(code, 3, "refused; stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("NOT_ENOUGH_REPLICAS"), "{out}");

    // Replication factor 1, and min.insync.replicas 1: warned, not refused.
    let rf1 = unique_name("cluster_rf1");
    cluster
        .create_topic_with(&rf1, 3, 1, &[("min.insync.replicas", "1")])
        .await;
    let isr1 = unique_name("cluster_isr1");
    cluster
        .create_topic_with(&isr1, 3, 3, &[("min.insync.replicas", "1")])
        .await;
    let setup = TailerSetup::new(
        here!(),
        "cluster_warn",
        &[
            Tailed::orders(&db, &rf1),
            Tailed {
                table: db.table("orders_copy"),
                topic: isr1.clone(),
                event_type: "shop.order.created.v1".into(),
            },
        ],
        &start,
        "",
    )
    .with_bootstrap(cluster.bootstrap());
    {
        use mysql_async::prelude::Queryable;
        let mut admin =
            test_support::connect(test_support::Server::Primary, test_support::User::Admin).await;
        admin
            .query_drop(format!(
                "CREATE TABLE {} LIKE {}",
                db.table("orders_copy"),
                db.table("orders")
            ))
            .await
            .expect("second table");
        test_support::tailer::wait_for_replica(&mut admin).await;
    }
    let (code, out, err) = setup.command(&["check"]);
    println!("check with a topic of replication factor 1 and one of min.insync.replicas 1 (exit {code}):");
    print_lines(&out, "topic");
    assert_eq!(
        code, 0,
        "warnings do not refuse; stdout:\n{out}\nstderr:\n{err}"
    );
    let line = |topic: &str| {
        out.lines()
            .find(|l| l.contains(&format!("topic {topic}:")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line(&rf1).starts_with("warn") && line(&rf1).contains("has replication factor 1"),
        "{out}"
    );
    assert!(
        line(&isr1).starts_with("warn") && line(&isr1).contains("min.insync.replicas=1"),
        "{out}"
    );

    // The payment service warns about a dead-letter topic of replication 1.
    let pay = PaymentsDb::create("pay_cluster_check").await;
    let dir = here!().new_dir("cluster_pay_check");
    let (config, port) = pay.service_config(&dir, cluster.bootstrap(), &isr1, &rf1);
    let service = PaymentService::start_as_configured(
        here!(),
        &config,
        port,
        dir.join("payment-service.log"),
        "info",
    );
    let log = service.log();
    drop(service);
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("topic "))
        .collect();
    println!("payment-service start-up warnings:");
    for w in &warned {
        println!("  {w}");
    }
    assert!(
        warned
            .iter()
            .any(|l| l.contains(&format!("topic {rf1} has replication factor 1"))),
        "the payment service warns about its dead-letter topic; log:\n{log}"
    );
    assert!(
        warned
            .iter()
            .any(|l| l.contains(&format!("topic {isr1} has min.insync.replicas=1"))),
        "and about its topic; log:\n{log}"
    );
}

fn print_lines(text: &str, containing: &str) {
    for l in text.lines().filter(|l| l.contains(containing)) {
        println!("  {l}");
    }
}

// ------------------------------------------------------------ faults

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillLeaderTwice,
    FreezeLeader(Duration),
    KillController,
}

/// Waits until partition 0 of `topic` has a leader other than `old`; how long.
fn wait_new_leader(cluster: &Cluster, topic: &str, old: i32) -> (i32, Duration) {
    let started = Instant::now();
    loop {
        let leader = cluster.leader(topic, 0);
        if leader >= 0 && leader != old {
            return (leader, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "partition 0 of {topic} had no new leader within 60 s of losing node {old}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the fault (blocking: the script and metadata calls); what it did.
fn run_fault(fault: Fault, cluster: &Cluster, topics: &[&str]) -> Vec<String> {
    let topic = topics[0];
    let mut steps = Vec::new();
    let started = Instant::now();
    let at = || format!("{:5.1} s", started.elapsed().as_secs_f64());
    let restart = |node| {
        let up = cluster.start(node);
        format!(
            "{} node {node} started again ({:.1} s)",
            at(),
            up.as_secs_f64()
        )
    };
    let back_in_sync = || {
        let sync = cluster.wait_fully_in_sync(topics, Duration::from_secs(120));
        format!(
            "{} every replica back in sync ({:.1} s)",
            at(),
            sync.as_secs_f64()
        )
    };
    match fault {
        Fault::KillLeaderTwice => {
            for round in 1..=2 {
                let leader = cluster.leader(topic, 0);
                assert!(leader > 0, "partition 0 has a leader");
                cluster.kill(leader);
                steps.push(format!(
                    "{} round {round}: SIGKILL node {leader} (leader of partition 0)",
                    at()
                ));
                let (new, took) = wait_new_leader(cluster, topic, leader);
                steps.push(format!(
                    "{} node {new} leads partition 0 ({:.1} s after the kill)",
                    at(),
                    took.as_secs_f64()
                ));
                // Orders keep flowing on two brokers (2 in sync = min.insync.replicas).
                std::thread::sleep(Duration::from_secs(8));
                steps.push(restart(leader));
                steps.push(back_in_sync());
            }
        }
        Fault::FreezeLeader(how_long) => {
            let leader = cluster.leader(topic, 0);
            assert!(leader > 0, "partition 0 has a leader");
            cluster.pause(leader);
            steps.push(format!(
                "{} SIGSTOP node {leader} (leader of partition 0)",
                at()
            ));
            let (new, took) = wait_new_leader(cluster, topic, leader);
            steps.push(format!(
                "{} node {new} leads partition 0 ({:.1} s after the freeze)",
                at(),
                took.as_secs_f64()
            ));
            std::thread::sleep(how_long.saturating_sub(took));
            cluster.resume(leader);
            steps.push(format!("{} SIGCONT node {leader}", at()));
            steps.push(back_in_sync());
        }
        Fault::KillController => {
            let controller = cluster.controller();
            let leads: Vec<i32> = cluster
                .partitions(topic)
                .iter()
                .filter(|p| p.leader == controller)
                .map(|p| p.partition)
                .collect();
            cluster.kill(controller);
            steps.push(format!(
                "{} SIGKILL node {controller} (active controller; leader of partitions {leads:?})",
                at()
            ));
            let new = cluster.controller();
            steps.push(format!("{} node {new} is the active controller", at()));
            assert_ne!(new, controller, "another node took over the quorum");
            std::thread::sleep(Duration::from_secs(8));
            steps.push(restart(controller));
            steps.push(back_in_sync());
        }
    }
    steps
}

// ------------------------------------------------------------ a scenario

struct Report {
    name: &'static str,
    orders: usize,
    messages: usize,
    repeated: usize,
    missing: usize,
    stalled_s: f64,
    max_ack_wait_s: f64,
    not_ready_s: f64,
    retries: f64,
    errors: f64,
    fault_s: f64,
    took_s: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} orders, {} records, {} repeated, {} missing; stalled {:.1} s (longest wait {:.1} s), \
             not ready {:.1} s, {} retries, {} request errors; fault {:.0} s, scenario {:.0} s",
            self.name,
            self.orders,
            self.messages,
            self.repeated,
            self.missing,
            self.stalled_s,
            self.max_ack_wait_s,
            self.not_ready_s,
            self.retries,
            self.errors,
            self.fault_s,
            self.took_s
        )
    }
}

fn metrics(port: u16) -> String {
    match http_get(port, "/metrics") {
        Ok((200, body)) => body,
        other => panic!("/metrics: {other:?}"),
    }
}

async fn scenario(cluster: &Arc<Cluster>, name: &'static str, fault: Fault) -> Report {
    let started = Instant::now();
    println!("\n== {name}");
    let db = TestDb::create(name).await;
    let topic = unique_name(name);
    let dlq = format!("{topic}.dlq");
    cluster.create_topic(&dlq, 1).await;
    let http_port = free_port();
    let setup = TailerSetup::new(
        here!(),
        name,
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    )
    .with_bootstrap(cluster.bootstrap())
    .with_http_listen(([127, 0, 0, 1], http_port).into());
    let mut tailer = setup.spawn();
    // 50 single-order transactions a second.
    let writer = Writer::start(&db, Duration::from_millis(20), 0, 0);
    setup
        .wait_published(50, Duration::from_secs(60), &mut tailer)
        .await;

    // The tailer created the topic with the defaults ("auto").
    let partitions = cluster.partitions(&topic);
    assert!(
        partitions.len() == 3 && partitions.iter().all(|p| p.replicas.len() == 3),
        "{topic} created with 3 partitions of 3 replicas: {partitions:?}"
    );
    assert_eq!(
        cluster
            .topic_setting(&topic, "min.insync.replicas")
            .await
            .as_deref(),
        Some("2"),
        "{topic} created with min.insync.replicas=2"
    );

    let pay = PaymentsDb::create("pay_cluster").await;
    let (pay_config, pay_port) = pay.service_config(&setup.dir, cluster.bootstrap(), &topic, &dlq);
    let mut payments = PaymentService::start_as_configured(
        here!(),
        &pay_config,
        pay_port,
        setup.dir.join("payment-service.log"),
        "info",
    );

    let before = metrics(http_port);
    let fault_started = Instant::now();
    let task = {
        let cluster = Arc::clone(cluster);
        let topics = [topic.clone(), dlq.clone()];
        tokio::task::spawn_blocking(move || {
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            run_fault(fault, &cluster, &topics)
        })
    };

    // While the fault lasts: the checkpoint, /readyz and the wait gauge.
    let mut checkpoints: Vec<GtidState> = Vec::new();
    let mut max_ack_wait: f64 = 0.0;
    let mut not_ready_samples = 0u32;
    let mut samples = 0u32;
    let mut reasons = BTreeSet::new();
    while !task.is_finished() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!(
                "the tailer exited ({status}) during the fault; log:\n{}",
                tailer.log()
            );
        }
        payments.assert_running();
        if let Some(cp) = setup.checkpoint() {
            if checkpoints.last() != Some(&cp.position.gtid) {
                checkpoints.push(cp.position.gtid);
            }
        }
        samples += 1;
        if let Ok((503, body)) = http_get(http_port, "/readyz") {
            not_ready_samples += 1;
            for l in body.lines().filter(|l| !l.starts_with("not ready")) {
                // The figures change from sample to sample; keep the kind.
                reasons.insert(l.split(" for ").next().unwrap_or(l).to_owned());
            }
        }
        if let Ok((200, body)) = http_get(http_port, "/metrics") {
            max_ack_wait = max_ack_wait.max(sample(&body, "binlog_tailer_ack_wait_seconds"));
        }
    }
    let steps = task.await.expect("the fault ran");
    let fault_took = fault_started.elapsed();

    // Back to normal: a few more seconds of orders, then stop writing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (committed, last) = writer.finish_with_gtids().await;
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let ids: Vec<u64> = committed.iter().map(|&(id, _)| id).collect();
    let after = metrics(http_port);
    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    let stalled = delta("binlog_tailer_ack_stalled_seconds_total");
    let retries = delta("binlog_tailer_kafka_request_retries_total");
    let errors = delta("binlog_tailer_kafka_request_errors_total");
    let latency_max_bucket = slowest_bucket(&after);

    // The payment service catches up.
    let want: BTreeSet<u64> = ids.iter().copied().collect();
    let pay_started = Instant::now();
    let charges = loop {
        let charges = pay.charges().await;
        if charges.len() >= want.len() || pay_started.elapsed() > Duration::from_secs(120) {
            break charges;
        }
        payments.assert_running();
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let duplicates_refused = payments.outcome("duplicate");
    let dead_lettered = payments.outcome("dead_lettered");
    let pay_log = payments.log();
    drop(payments);
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));

    let messages = consume_all_at(cluster.bootstrap(), &topic);
    let Delivery {
        by_id,
        repeated,
        missing,
    } = delivery(&messages, &ids);

    // Every checkpoint written during the fault covers only orders the topic holds.
    let mut covered_by_last = 0;
    let mut uncovered: Vec<(String, u64)> = Vec::new();
    for cp in &checkpoints {
        let covered: Vec<u64> = committed
            .iter()
            .filter(|(_, g)| contains(cp, *g))
            .map(|&(id, _)| id)
            .collect();
        covered_by_last = covered.len();
        for id in covered {
            if !by_id.contains_key(&id) {
                uncovered.push((cp.to_string(), id));
            }
        }
    }
    let charged: BTreeSet<u64> = charges.keys().copied().collect();
    let not_charged: Vec<u64> = want.difference(&charged).copied().collect();
    let charged_extra: Vec<u64> = charged.difference(&want).copied().collect();
    let charged_twice: Vec<u64> = charges
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();

    for s in &steps {
        println!("  {s}");
    }
    println!(
        "  orders committed: {}; records in the topic: {}; repeated: {}; missing: {}",
        ids.len(),
        messages.len(),
        repeated.len(),
        missing.len()
    );
    println!(
        "  checkpoint during the fault: {} distinct positions in {samples} samples; the last covered {covered_by_last} orders, {} of them not in the topic",
        checkpoints.len(),
        uncovered.len()
    );
    println!(
        "  tailer waited for acknowledgements: {stalled:.1} s stalled in all (ack_stalled_seconds_total), longest wait sampled {max_ack_wait:.1} s, slowest publish latency bucket {latency_max_bucket}"
    );
    println!(
        "  /readyz 503 in {not_ready_samples} of {samples} samples (~{:.1} s): {reasons:?}",
        f64::from(not_ready_samples) * 0.25
    );
    println!("  producer: {retries} produce requests retried, {errors} request errors");
    for (when, text) in [("before", &before), ("after", &after)] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("binlog_tailer_kafka_request"))
            .collect();
        println!("    {when} the fault: {}", lines.join(", "));
    }
    println!(
        "  payment service: {} orders charged ({} not charged, {} not committed, {} charged twice), {duplicates_refused} duplicate events refused, {dead_lettered} dead-lettered, caught up {:.1} s after the tailer",
        charged.len(),
        not_charged.len(),
        charged_extra.len(),
        charged_twice.len(),
        pay_started.elapsed().as_secs_f64()
    );

    assert!(missing.is_empty(), "{name}: orders lost: {missing:?}");
    assert!(
        repeated.is_empty(),
        "{name}: orders published more than once: {repeated:?}"
    );
    for (id, ms) in &by_id {
        assert_eq!(
            ms[0].payload["data"],
            expected_data(*id),
            "{name}: order {id}"
        );
    }
    assert_eq!(
        by_id.len(),
        ids.len(),
        "{name}: nothing but the committed orders"
    );
    assert_commit_order_per_partition(&messages);
    assert!(
        checkpoints.len() > 1,
        "{name}: the checkpoint moved during the fault (orders kept flowing): {checkpoints:?}"
    );
    assert!(
        uncovered.is_empty(),
        "{name}: a checkpoint passed orders the topic does not hold: {uncovered:?}"
    );
    assert!(
        stalled > 0.0 || retries > 0.0 || errors > 0.0,
        "{name}: the metrics show nothing of the fault (no stall, retry or request error)"
    );
    if max_ack_wait >= 5.5 {
        assert!(
            reasons.iter().any(|r| r.contains("no acknowledgement from Kafka")),
            "{name}: acknowledgements waited {max_ack_wait:.1} s, yet /readyz never said so: {reasons:?}"
        );
    }
    assert!(
        not_charged.is_empty() && charged_extra.is_empty() && charged_twice.is_empty(),
        "{name}: payments: not charged {not_charged:?}, not committed {charged_extra:?}, twice {charged_twice:?}; log:\n{pay_log}"
    );
    assert_eq!(
        dead_lettered, 0,
        "{name}: no event is dead-lettered; log:\n{pay_log}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "{name}: SIGTERM after the fault exits 0; log:\n{log}"
    );

    Report {
        name,
        orders: ids.len(),
        messages: messages.len(),
        repeated: repeated.len(),
        missing: missing.len(),
        stalled_s: stalled,
        max_ack_wait_s: max_ack_wait,
        not_ready_s: f64::from(not_ready_samples) * 0.25,
        retries,
        errors,
        fault_s: fault_took.as_secs_f64(),
        took_s: started.elapsed().as_secs_f64(),
    }
}

fn contains(state: &GtidState, gtid: Gtid) -> bool {
    state.contains(gtid)
}

/// The lowest publish-latency bucket bound that holds every publish.
fn slowest_bucket(metrics: &str) -> String {
    let count = sample(metrics, "binlog_tailer_publish_latency_seconds_count");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("binlog_tailer_publish_latency_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, value) = rest.split_once("\"} ")?;
            Some((le.to_owned(), value.trim().parse::<f64>().ok()?))
        })
        .find(|(_, v)| *v >= count)
        .map(|(le, _)| format!("<= {le} s"))
        .unwrap_or_else(|| "unknown".into())
}
