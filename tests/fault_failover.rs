//! Failover: a tailer that read the replica is pointed at the primary and
//! resumes from its checkpoint by GTID, with no gap and no repeat across the
//! switch; the events after it name the primary (server_id 1). Resuming by
//! file:offset across servers is refused: a binlog coordinate means nothing
//! on another server.
//!
//! Its own test binary, like the other fault tests.

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use binlog_tailer::position::{Gtid, GtidState};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::json;
use test_support::tailer::{
    assert_checkpoint_unchanged, consume_all, last_gtid, replica_gtid_state, Consumed, Tailed,
    Tailer, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

/// Waits for the tailer to exit on its own; returns its status and how long
/// it ran. Panics (after killing it) if it is still running at the deadline.
fn exits_within(tailer: &mut Tailer, timeout: Duration, what: &str) -> (ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            return (status, started.elapsed());
        }
        if started.elapsed() > timeout {
            let _ = tailer.child.kill();
            let _ = tailer.child.wait();
            panic!(
                "{what}: the tailer was still running after {timeout:?}; it must refuse and \
                 exit 1; log:\n{}",
                tailer.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Inserts single-row order transactions for `ids` on the primary; returns
/// the last GTID.
async fn insert_orders(
    primary: &mut Conn,
    db: &TestDb,
    ids: std::ops::RangeInclusive<u64>,
) -> Gtid {
    for id in ids {
        primary
            .query_drop(format!(
                "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
                 VALUES ({id}, {}, '{}.50', 'EUR', '[{{\"sku\": \"s{id}\"}}]', '2026-11-26 12:00:00.{id:06}')",
                db.name,
                id % 5 + 1,
                id
            ))
            .await
            .expect("insert");
    }
    last_gtid(primary).await
}

fn error_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_from_replica_to_primary_by_gtid_and_file_offsets_refused_across_servers() {
    const REFUSE_WITHIN: Duration = Duration::from_secs(60);

    let db = TestDb::create("failover").await;
    let topic = unique_name("failover");
    let setup = TailerSetup::new(
        test_support::here!(),
        "failover",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    );
    let mut primary = connect(Server::Primary, User::Admin).await;
    let primary_id: u32 = primary
        .query_first("SELECT @@server_id")
        .await
        .expect("server_id")
        .expect("a value");
    let mut replica = connect(Server::Replica, User::Admin).await;
    let replica_id: u32 = replica
        .query_first("SELECT @@server_id")
        .await
        .expect("server_id")
        .expect("a value");

    // 1. Reading the replica.
    let mut on_replica = setup.spawn();
    let last_on_replica = insert_orders(&mut primary, &db, 1..=50).await;
    setup.wait_checkpoint(
        last_on_replica,
        Duration::from_secs(60),
        Some(&mut on_replica),
    );
    let log = on_replica.log();
    let status = on_replica.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; log:\n{log}");
    let cp_replica = setup.checkpoint().expect("a checkpoint");

    // 2. More orders while no tailer runs.
    insert_orders(&mut primary, &db, 51..=100).await;

    // 3. Resuming the replica's file:offset on the primary is refused.
    let primary_port = Server::Primary.port().to_string();
    let replica_port = Server::Replica.port().to_string();
    let mut refused = setup.spawn_with(&[
        "--set",
        &format!("source.port={primary_port}"),
        "--set",
        "start.resume_by=\"file\"",
    ]);
    let (to_primary_status, to_primary_took) = exits_within(
        &mut refused,
        REFUSE_WITHIN,
        "file:offset of the replica on the primary",
    );
    let to_primary_log = refused.log();
    assert_checkpoint_unchanged(
        &cp_replica,
        setup.checkpoint(),
        "refused file:offset on the primary",
    );

    // 4. The switch: the primary, by GTID (the default).
    let setup = setup.with_source_port(Server::Primary.port());
    let switched_at = Instant::now();
    let mut on_primary = setup.spawn();
    let caught_up = insert_orders(&mut primary, &db, 101..=101).await;
    setup.wait_checkpoint(caught_up, Duration::from_secs(60), Some(&mut on_primary));
    let switch_took = switched_at.elapsed();
    let last_on_primary = insert_orders(&mut primary, &db, 102..=150).await;
    setup.wait_checkpoint(
        last_on_primary,
        Duration::from_secs(60),
        Some(&mut on_primary),
    );
    let primary_log = on_primary.log();
    let status = on_primary.terminate(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0; log:\n{primary_log}"
    );
    let cp_primary = setup.checkpoint().expect("a checkpoint");

    // 5. And the primary's file:offset on the replica is refused too.
    let mut refused = setup.spawn_with(&[
        "--set",
        &format!("source.port={replica_port}"),
        "--set",
        "start.resume_by=\"file\"",
    ]);
    let (to_replica_status, to_replica_took) = exits_within(
        &mut refused,
        REFUSE_WITHIN,
        "file:offset of the primary on the replica",
    );
    let to_replica_log = refused.log();
    assert_checkpoint_unchanged(
        &cp_primary,
        setup.checkpoint(),
        "refused file:offset on the replica",
    );

    // 6. Control: by file:offset on the server it was read from, it resumes.
    let mut by_file = setup.spawn_with(&["--set", "start.resume_by=\"file\""]);
    let last = insert_orders(&mut primary, &db, 151..=160).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut by_file));
    let by_file_log = by_file.log();
    let by_file_status = by_file.terminate(Duration::from_secs(60));
    let cp_last = setup.checkpoint().expect("a checkpoint");

    let messages = consume_all(&topic);
    let mut by_id: BTreeMap<u64, Vec<&Consumed>> = BTreeMap::new();
    for m in &messages {
        by_id
            .entry(m.payload["data"]["id"].as_u64().expect("data.id"))
            .or_default()
            .push(m);
    }
    let repeated: Vec<u64> = by_id
        .iter()
        .filter(|(_, ms)| ms.len() > 1)
        .map(|(&id, _)| id)
        .collect();
    let missing: Vec<u64> = (1..=160).filter(|id| !by_id.contains_key(id)).collect();
    let server_of = |id: u64| -> Option<u64> {
        by_id
            .get(&id)
            .and_then(|ms| ms[0].payload["binlogserverid"].as_u64())
    };
    let mut per_server: BTreeMap<u64, usize> = BTreeMap::new();
    for id in 1..=160 {
        if let Some(s) = server_of(id) {
            *per_server.entry(s).or_default() += 1;
        }
    }

    println!("failover replica (server_id {replica_id}) -> primary (server_id {primary_id}):");
    println!(
        "  checkpoint on the replica: {} (server_id {})",
        cp_replica.position, cp_replica.source_server_id
    );
    println!(
        "  on the primary: first new event checkpointed {:.1} s after the start; checkpoint {} (server_id {})",
        switch_took.as_secs_f64(),
        cp_primary.position,
        cp_primary.source_server_id
    );
    println!(
        "  after resuming by file on the primary: {}",
        cp_last.position
    );
    println!(
        "  file:offset of the replica on the primary: exit {:?} after {:.1} s:\n    {}",
        to_primary_status.code(),
        to_primary_took.as_secs_f64(),
        error_lines(&to_primary_log)
    );
    println!(
        "  file:offset of the primary on the replica: exit {:?} after {:.1} s:\n    {}",
        to_replica_status.code(),
        to_replica_took.as_secs_f64(),
        error_lines(&to_replica_log)
    );
    println!("  events per binlogserverid: {per_server:?}");
    println!(
        "  messages: {} for 160 orders; {} repeated, {} missing",
        messages.len(),
        repeated.len(),
        missing.len()
    );

    assert!(
        missing.is_empty(),
        "orders lost across the switch: {missing:?}"
    );
    assert!(
        repeated.is_empty(),
        "orders repeated across the switch: {repeated:?}"
    );
    assert_eq!(messages.len(), 160, "one message per order");
    for id in 1..=160u64 {
        let m = by_id[&id][0];
        let expected = if id <= 50 { replica_id } else { primary_id };
        assert_eq!(
            m.payload["binlogserverid"],
            json!(expected),
            "order {id}: binlogserverid"
        );
        assert_eq!(
            m.headers.get("binlog.server_id"),
            Some(&expected.to_string()),
            "order {id}: header binlog.server_id"
        );
        assert_eq!(
            m.payload["data"]["customer_id"],
            json!(id % 5 + 1),
            "order {id}"
        );
        assert_eq!(
            m.payload["data"]["amount"],
            json!(format!("{id}.50")),
            "order {id}"
        );
    }
    // The coordinates after the switch are the primary's: each event's
    // binlogfile:binlogpos is where its transaction begins there.
    for id in [51u64, 100, 101, 150, 151, 160] {
        let m = by_id[&id][0];
        let gtid: Gtid = m.payload["binloggtid"]
            .as_str()
            .expect("gtid")
            .parse()
            .expect("gtid");
        let file = m.payload["binlogfile"].as_str().expect("binlogfile");
        let pos = m.payload["binlogpos"].as_u64().expect("binlogpos");
        let before: Option<String> = primary
            .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, pos))
            .await
            .expect("BINLOG_GTID_POS");
        let before: Option<GtidState> = before.map(|t| t.parse().expect("GTID state"));
        assert_eq!(
            before.and_then(|b| b.get(gtid.domain)).map(|g| g.seq + 1),
            Some(gtid.seq),
            "order {id}: {file}:{pos} on the primary is where transaction {gtid} begins"
        );
    }
    assert_eq!(cp_replica.source_server_id, replica_id);
    assert_eq!(cp_primary.source_server_id, primary_id);
    for (what, status, log, from, on) in [
        (
            "the replica's file:offset on the primary",
            to_primary_status,
            &to_primary_log,
            replica_id,
            primary_id,
        ),
        (
            "the primary's file:offset on the replica",
            to_replica_status,
            &to_replica_log,
            primary_id,
            replica_id,
        ),
    ] {
        assert_eq!(status.code(), Some(1), "{what}: exit 1; log:\n{log}");
        let errors = error_lines(log);
        assert!(
            errors.contains(&format!("read from server_id {from}"))
                && errors.contains(&format!("this server is server_id {on}")),
            "{what}: the error says the checkpoint was read from server_id {from}, not {on}; log:\n{log}"
        );
    }
    assert_eq!(
        by_file_status.code(),
        Some(0),
        "resuming by file on the same server; log:\n{by_file_log}"
    );
}
