//! The checkpoint points at a binlog the replica has purged: the tailer must
//! stop at once with exit code 1, name the position it needs and what the
//! server still has, and leave the checkpoint as it was; resuming by GTID and
//! by file:offset alike. Nothing is skipped silently.
//!
//! Its own test binary: it purges the shared replica's old binlogs (the
//! replica keeps working; other tailers reading it would lose those files),
//! and cargo runs test binaries one after another.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use binlog_tailer::position::{Gtid, GtidState};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::scratch::{ScratchServer, ROW_LOGGING};
use test_support::tailer::{
    assert_checkpoint_unchanged, last_gtid, Tailed, Tailer, TailerSetup, TestDb,
};
use test_support::unique_name;

/// Waits for the tailer to exit on its own; returns its status and how long
/// it ran. Panics (after killing it) if it is still running at the deadline.
fn exits_within(tailer: &mut Tailer, timeout: Duration) -> (ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            return (status, started.elapsed());
        }
        if started.elapsed() > timeout {
            let _ = tailer.child.kill();
            let _ = tailer.child.wait();
            panic!(
                "the tailer was still running {timeout:?} after it started against a purged \
                 position: it must stop with exit code 1; log:\n{}",
                tailer.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server's current binlog file (`SHOW MASTER STATUS`).
async fn current_file(conn: &mut Conn) -> String {
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS")
        .expect("log_bin is on");
    row.get(0).expect("File")
}

/// The binlog files the server has (`SHOW BINARY LOGS`).
async fn binlog_files(conn: &mut Conn) -> Vec<String> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .expect("SHOW BINARY LOGS");
    rows.into_iter()
        .map(|r| r.get::<String, _>(0).expect("Log_name"))
        .collect()
}

/// Inserts `count` single-row order transactions from `first` on the
/// primary; returns the last GTID.
async fn insert_orders(primary: &mut Conn, db: &TestDb, first: u64, count: u64) -> Gtid {
    for id in first..first + count {
        primary
            .query_drop(format!(
                "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
                 VALUES ({id}, {}, '9.99', 'EUR', '[]', NOW(6))",
                db.name,
                id % 5 + 1
            ))
            .await
            .expect("insert");
    }
    last_gtid(primary).await
}

/// The error lines of a tailer's log.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERROR")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_in_a_purged_binlog_stops_the_tailer_with_the_position_and_the_fix() {
    const EXIT_WITHIN: Duration = Duration::from_secs(60);

    // A server of the test's own: purging the shared replica's binlogs
    // would pull them from under every other tailer (and `make demo`'s).
    let server = ScratchServer::start(test_support::here!(), ROW_LOGGING).await;
    let db = TestDb {
        name: "shop".into(),
    };
    let mut primary = server.root().await;
    let mut replica = server.root().await;
    let start: String = replica
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let topic = unique_name("purged");
    let setup = TailerSetup::new(
        test_support::here!(),
        "purged",
        &[Tailed::orders(&db, &topic)],
        if start.is_empty() { "earliest" } else { &start },
        "",
    )
    .with_source_port(server.port);

    // A run that checkpoints, stopped cleanly.
    let mut tailer = setup.spawn();
    let first_last = insert_orders(&mut primary, &db, 1, 10).await;
    setup.wait_checkpoint(first_last, Duration::from_secs(60), Some(&mut tailer));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; log:\n{log}");
    let cp = setup.checkpoint().expect("a checkpoint");
    let cp_coord = cp.position.coord.clone().expect("a binlog coordinate");

    // More orders, spread over new binlog files of the replica, then every
    // file before the current one purged.
    let mut next = 11;
    for _ in 0..3 {
        insert_orders(&mut primary, &db, next, 10).await;
        next += 10;
        replica
            .query_drop("FLUSH BINARY LOGS")
            .await
            .expect("FLUSH BINARY LOGS on the replica");
    }
    insert_orders(&mut primary, &db, next, 10).await;
    let current = current_file(&mut replica).await;
    let files_before = binlog_files(&mut replica).await;
    replica
        .query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
        .await
        .expect("PURGE BINARY LOGS on the replica");
    let files_after = binlog_files(&mut replica).await;
    let readers: Vec<(u64, String, Option<String>)> = replica
        .query("SELECT ID, USER, STATE FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'")
        .await
        .expect("processlist");
    assert_eq!(
        files_after,
        vec![current.clone()],
        "PURGE BINARY LOGS TO '{current}' left older files (a binlog reader holds them? \
         binlog dump threads: {readers:?}); the test needs them gone"
    );
    // The checkpointed GTID is in no binlog of the replica any more.
    let first_state: Option<String> = replica
        .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (current.as_str(),))
        .await
        .expect("BINLOG_GTID_POS");
    let first_state: GtidState = first_state
        .expect("the GTID state at the start of the current file")
        .parse()
        .expect("GTID state");
    let domain = first_last.domain;
    assert!(
        first_state
            .get(domain)
            .is_some_and(|g| g.seq > cp.position.gtid.get(domain).expect("domain").seq),
        "the replica's oldest binlog starts at {first_state}, not after the checkpoint {}",
        cp.position
    );
    let server_state: String = replica
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();

    // Resume by GTID (the default).
    let mut by_gtid = setup.spawn();
    let (gtid_status, gtid_took) = exits_within(&mut by_gtid, EXIT_WITHIN);
    let gtid_log = by_gtid.log();
    assert_checkpoint_unchanged(&cp, setup.checkpoint(), "resuming by GTID");

    // Resume by file:offset.
    let mut by_file = setup.spawn_with(&["--set", "start.resume_by=\"file\""]);
    let (file_status, file_took) = exits_within(&mut by_file, EXIT_WITHIN);
    let file_log = by_file.log();
    assert_checkpoint_unchanged(&cp, setup.checkpoint(), "resuming by file");

    // The server still works: it only lost old files.
    let after_last = insert_orders(&mut primary, &db, next + 10, 5).await;

    println!("purged binlog:");
    println!(
        "  checkpoint: {} (server_id {})",
        cp.position, cp.source_server_id
    );
    println!("  replica files before the purge: {files_before:?}");
    println!(
        "  replica files after the purge:  {files_after:?} (starting at GTID state {first_state})"
    );
    println!("  replica GTID state: {server_state}");
    println!(
        "  resume by GTID: exit {:?} after {:.1} s; error lines:",
        gtid_status.code(),
        gtid_took.as_secs_f64()
    );
    for line in error_lines(&gtid_log) {
        println!("    {line}");
    }
    println!(
        "  resume by file: exit {:?} after {:.1} s; error lines:",
        file_status.code(),
        file_took.as_secs_f64()
    );
    for line in error_lines(&file_log) {
        println!("    {line}");
    }
    println!("  the server kept working (up to {after_last})");

    let cp_gtid = cp.position.gtid.to_string();
    for (how, status, log, requested) in [
        ("GTID", gtid_status, &gtid_log, cp_gtid.clone()),
        ("file", file_status, &file_log, cp_coord.to_string()),
    ] {
        assert_eq!(
            status.code(),
            Some(1),
            "resuming by {how} from a purged position exits 1; log:\n{log}"
        );
        let errors = error_lines(log).join("\n");
        assert!(
            errors.contains(&requested),
            "resuming by {how}: the error names the missing position {requested}; log:\n{log}"
        );
        assert!(
            errors.contains(&server_state),
            "resuming by {how}: the error names the replica's GTID state {server_state}; log:\n{log}"
        );
        assert!(
            errors.contains(&current),
            "resuming by {how}: the error names the binlog files the replica still has ({current}); log:\n{log}"
        );
        assert_eq!(
            log.matches("reconnecting").count(),
            0,
            "resuming by {how}: a purged position is definite, not retried; log:\n{log}"
        );
    }
}
