//! A GTID whose sequence number does not increase within its domain, which
//! MariaDB writes with its default `gtid_strict_mode=OFF` (here after
//! `SET gtid_seq_no`): `check` warns about the setting; `run` stops before
//! that transaction with exit code 1, naming both GTIDs and the fix, its
//! checkpoint unmoved and nothing published past it, and does the same on
//! every restart (a definite error, not a reconnect loop). After the fix the
//! error names (strict mode on, the tailer moved past the transaction by
//! file), the orders after it arrive.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::scratch::{ScratchServer, ROW_LOGGING};
use test_support::tailer::{
    assert_checkpoint_unchanged, consume_all, last_gtid, Tailed, Tailer, TailerSetup, TestDb,
};
use test_support::unique_name;

const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// Waits for the tailer to exit on its own.
fn exits_within(tailer: &mut Tailer, timeout: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            started.elapsed() < timeout,
            "the tailer was still running {timeout:?} after it met an out-of-order GTID: it \
             must stop with exit code 1; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn insert_order(conn: &mut Conn, id: u64) -> Gtid {
    conn.query_drop(format!(
        "INSERT INTO shop.orders (id, customer_id, amount, currency, items, created_at) \
         VALUES ({id}, 1, '9.99', 'EUR', '[]', NOW(6))"
    ))
    .await
    .expect("insert");
    last_gtid(conn).await
}

/// The server's binlog coordinate now (`SHOW MASTER STATUS`).
async fn master_coord(conn: &mut Conn) -> String {
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS")
        .expect("log_bin is on");
    let file: String = row.get(0).expect("File");
    let pos: u64 = row.get(1).expect("Position");
    format!("{file}:{pos}")
}

fn order_ids(topic: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = consume_all(topic)
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("data.id"))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gtid_that_goes_back_in_its_domain_stops_the_tailer_before_it_with_the_fix() {
    // A server of the test's own, with MariaDB's default gtid_strict_mode=OFF
    // (the shared services run with it ON, and it is a global setting).
    let server = ScratchServer::start(test_support::here!(), ROW_LOGGING).await;
    let db = TestDb {
        name: "shop".into(),
    };
    let mut conn = server.root().await;
    let start: String = conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let topic = unique_name("gtid_order");
    let setup = TailerSetup::new(
        test_support::here!(),
        "gtid_order",
        &[Tailed::orders(&db, &topic)],
        if start.is_empty() { "earliest" } else { &start },
        "",
    )
    .with_source_port(server.port);

    let (code, check_off, _) = setup.command(&["check"]);
    assert_eq!(code, 0, "a warning does not fail `check`:\n{check_off}");
    assert!(
        check_off.contains("warn  gtid_strict_mode: OFF") && check_off.contains("SET GLOBAL"),
        "check warns about gtid_strict_mode=OFF and says how to set it:\n{check_off}"
    );

    let mut tailer = setup.spawn();
    for id in 1..=2 {
        insert_order(&mut conn, id).await;
    }
    let last = insert_order(&mut conn, 3).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let cp = setup.checkpoint().expect("a checkpoint");

    // Order 4 commits under a GTID whose sequence number is the last one's.
    conn.query_drop(format!("SET SESSION gtid_seq_no = {}", last.seq))
        .await
        .expect("SET gtid_seq_no (allowed with gtid_strict_mode=OFF)");
    let repeated = insert_order(&mut conn, 4).await;
    let after_repeated = master_coord(&mut conn).await;
    assert_eq!(
        (repeated.domain, repeated.seq),
        (last.domain, last.seq),
        "the server wrote order 4 as {repeated}"
    );

    let expected = format!("GTID {repeated} follows {last} in domain {}", last.domain);
    let mut logs = Vec::new();
    for run in ["running", "restarted"] {
        let started = Instant::now();
        let status = exits_within(&mut tailer, EXIT_WITHIN);
        let took = started.elapsed();
        let log = tailer.log();
        assert_eq!(status.code(), Some(1), "{run}: exit code 1; log:\n{log}");
        assert!(
            log.contains(&expected) && log.contains("gtid_strict_mode=ON"),
            "{run}: the error names both GTIDs and the setting; log:\n{log}"
        );
        assert!(
            !log.contains("reconnecting"),
            "{run}: a definite error, not retried; log:\n{log}"
        );
        assert_checkpoint_unchanged(&cp, setup.checkpoint(), run);
        logs.push((run, took, log));
        tailer = setup.spawn();
    }
    drop(tailer);
    assert_eq!(
        order_ids(&topic),
        vec![1, 2, 3],
        "nothing published past the refused transaction"
    );

    // The fix the error names: strict mode on, and the tailer moved past the
    // transaction by file (its orders are the operator's to handle).
    conn.query_drop("SET GLOBAL gtid_strict_mode = ON")
        .await
        .expect("SET GLOBAL gtid_strict_mode");
    let (code, check_on, _) = setup.command(&["check"]);
    assert_eq!(code, 0, "{check_on}");
    assert!(
        check_on.contains("ok    gtid_strict_mode: ON"),
        "{check_on}"
    );
    let (code, set_out, set_err) = setup.command(&["checkpoint", "set", &after_repeated]);
    assert_eq!(
        code, 0,
        "checkpoint set {after_repeated}:\n{set_out}{set_err}"
    );
    let fifth = insert_order(&mut conn, 5).await;
    let mut tailer = setup.spawn_with(&["--set", "start.resume_by=\"file\""]);
    setup.wait_checkpoint(fifth, Duration::from_secs(60), Some(&mut tailer));
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let ids = order_ids(&topic);

    println!("out-of-order GTID:");
    println!("  checkpoint before it: {}", cp.position);
    println!("  order 4 written as:   {repeated} (after {last})");
    for (run, took, log) in &logs {
        let error = log
            .lines()
            .find(|l| l.contains(&expected))
            .unwrap_or_default();
        println!("  {run}: exit 1 after {:.1} s: {error}", took.as_secs_f64());
    }
    println!("  after the fix (checkpoint set {after_repeated}): orders in the topic {ids:?}");
    assert_eq!(
        ids,
        vec![1, 2, 3, 5],
        "order 5 arrives once, nothing else repeats"
    );
}
