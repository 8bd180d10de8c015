//! Row events larger than the server's `max_allowed_packet`: an UPDATE of a
//! 40 MiB row of another table (FULL images, so about 80 MiB in one event)
//! between two orders, read from the replica.
//!
//! - With the default limit (1 GiB, MariaDB's largest event) the tailer reads
//!   through it: both orders arrive once, and its peak RSS grows by no more
//!   than the event's size once (plus a quarter for the allocator), printed.
//! - With `source.max_event_bytes` below the event, it stops with exit code 1
//!   naming the setting, the position and the fix (no reconnect loop), the
//!   checkpoint at the first order; raised again, the second order arrives.

use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::process::status_kib;
use test_support::tailer::{
    assert_checkpoint_unchanged, consume_all, last_gtid, replica_gtid_state, wait_for_replica,
    Tailed, Tailer, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

/// Each of the four text columns holds this many bytes.
const COLUMN_BYTES: u64 = 10 * 1024 * 1024;

async fn insert_order(primary: &mut Conn, db: &TestDb, id: u64) -> Gtid {
    primary
        .query_drop(format!(
            "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
             VALUES ({id}, 1, '9.99', 'EUR', '[]', NOW(6))",
            db.name
        ))
        .await
        .expect("insert an order");
    last_gtid(primary).await
}

/// Rewrites the four 10 MiB columns of `blobs` row 1 with `fill`: an UPDATE
/// whose row event carries the before and the after image (~80 MiB).
async fn rewrite_blob(primary: &mut Conn, db: &TestDb, fill: char) -> Gtid {
    let value = format!("REPEAT('{fill}', {COLUMN_BYTES})");
    primary
        .query_drop(format!(
            "UPDATE {}.blobs SET a = {value}, b = {value}, c = {value}, d = {value} WHERE id = 1",
            db.name
        ))
        .await
        .expect("update the big row");
    last_gtid(primary).await
}

/// The replica's binlog coordinate now (`SHOW MASTER STATUS`).
async fn replica_coord(replica: &mut Conn) -> (String, u64) {
    let row: mysql_async::Row = replica
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS")
        .expect("log_bin is on");
    (row.get(0).expect("File"), row.get(1).expect("Position"))
}

fn order_ids(topic: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = consume_all(topic)
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("data.id"))
        .collect();
    ids.sort_unstable();
    ids
}

fn exits_within(tailer: &mut Tailer, timeout: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            started.elapsed() < timeout,
            "the tailer was still running {timeout:?} after an event over its limit: it must \
             stop with exit code 1; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_events_over_max_allowed_packet_are_read_or_refused_by_name() {
    let db = TestDb::create("big_event").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    let max_allowed_packet: u64 = primary
        .query_first("SELECT @@GLOBAL.max_allowed_packet")
        .await
        .expect("max_allowed_packet")
        .expect("a value");
    primary
        .query_drop(format!(
            "CREATE TABLE {}.blobs (id INT PRIMARY KEY, a LONGTEXT, b LONGTEXT, c LONGTEXT, \
             d LONGTEXT) ENGINE=InnoDB; \
             INSERT INTO {}.blobs VALUES (1, REPEAT('a', {COLUMN_BYTES}), \
             REPEAT('a', {COLUMN_BYTES}), REPEAT('a', {COLUMN_BYTES}), REPEAT('a', {COLUMN_BYTES}))",
            db.name, db.name
        ))
        .await
        .expect("a table with a 40 MiB row");
    wait_for_replica(&mut primary).await;

    // 1. The default limit reads through an event over max_allowed_packet.
    let topic = unique_name("big_event");
    let setup = TailerSetup::new(
        test_support::here!(),
        "big_event",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    );
    let mut tailer = setup.spawn();
    let pid = tailer.child.id();
    let first = insert_order(&mut primary, &db, 1).await;
    setup.wait_checkpoint(first, Duration::from_secs(60), Some(&mut tailer));
    let rss_before = status_kib(pid, "VmRSS").unwrap_or(0);
    let mut replica = connect(Server::Replica, User::Admin).await;
    let (file_before, pos_before) = replica_coord(&mut replica).await;
    rewrite_blob(&mut primary, &db, 'b').await;
    wait_for_replica(&mut primary).await;
    let (file_after, pos_after) = replica_coord(&mut replica).await;
    assert_eq!(
        file_before, file_after,
        "the replica rotated its binlog during the UPDATE; the test measures it in one file"
    );
    // One single-row UPDATE: its transaction is one rows event plus ~200
    // bytes (GTID, TABLE_MAP, XID).
    let txn_bytes = pos_after - pos_before;
    let second = insert_order(&mut primary, &db, 2).await;
    let started = Instant::now();
    setup.wait_checkpoint(second, Duration::from_secs(120), Some(&mut tailer));
    let took = started.elapsed();
    let peak = status_kib(pid, "VmHWM").unwrap_or(0);
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(
        !log.contains("reconnecting"),
        "read without a reconnect; log:\n{log}"
    );
    assert!(
        txn_bytes > max_allowed_packet + 1024,
        "the UPDATE's transaction ({txn_bytes} bytes) holds an event over max_allowed_packet \
         ({max_allowed_packet})"
    );
    assert_eq!(order_ids(&topic), vec![1, 2], "each order once");
    // The event is read into one buffer of its size: the tailer grows by
    // about the event once, not by several copies of it.
    let growth = (peak.saturating_sub(rss_before)) * 1024;
    assert!(
        growth <= txn_bytes + txn_bytes / 4,
        "reading a {txn_bytes}-byte event grew the tailer by {growth} bytes (RSS {rss_before} KiB \
         before, peak {peak} KiB): more than the event's size once"
    );

    // 2. A limit below the event: a definite error naming it.
    let limit = 32 * 1024 * 1024;
    let topic2 = unique_name("big_event_limit");
    let limited = TailerSetup::new(
        test_support::here!(),
        "big_event_limit",
        &[Tailed::orders(&db, &topic2)],
        &replica_gtid_state().await,
        "",
    );
    let limit_arg = format!("source.max_event_bytes={limit}");
    let mut tailer = limited.spawn_with(&["--set", &limit_arg]);
    let third = insert_order(&mut primary, &db, 3).await;
    limited.wait_checkpoint(third, Duration::from_secs(60), Some(&mut tailer));
    let cp = limited.checkpoint().expect("a checkpoint");
    rewrite_blob(&mut primary, &db, 'c').await;
    let fourth = insert_order(&mut primary, &db, 4).await;
    let status = exits_within(&mut tailer, Duration::from_secs(60));
    let limited_log = tailer.log();
    assert_eq!(status.code(), Some(1), "exit code 1; log:\n{limited_log}");
    assert!(
        limited_log.contains("source.max_event_bytes") && limited_log.contains(&limit.to_string()),
        "the error names the setting and its value; log:\n{limited_log}"
    );
    assert!(
        !limited_log.contains("reconnecting"),
        "a definite error, not retried; log:\n{limited_log}"
    );
    assert_checkpoint_unchanged(&cp, limited.checkpoint(), "stopped at the big event");
    assert_eq!(order_ids(&topic2), vec![3], "nothing past the big event");
    // The fix it names: the default limit again.
    let mut tailer = limited.spawn();
    limited.wait_checkpoint(fourth, Duration::from_secs(120), Some(&mut tailer));
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        order_ids(&topic2),
        vec![3, 4],
        "each order once after the fix"
    );

    // MariaDB's BINLOG_GTID_POS() reads a binlog file with the session's
    // max_allowed_packet and answers NULL past an event larger than it (as
    // later tests and `checkpoint set file:offset` would): leave the big
    // events in files of their own.
    for server in [Server::Primary, Server::Replica] {
        connect(server, User::Admin)
            .await
            .query_drop("FLUSH BINARY LOGS")
            .await
            .expect("FLUSH BINARY LOGS");
    }

    let error = limited_log
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_default();
    println!("row event over max_allowed_packet ({max_allowed_packet} bytes):");
    println!(
        "  UPDATE of a {} MiB row: a {:.1} MiB transaction (one rows event) in the replica's binlog",
        4 * COLUMN_BYTES / (1024 * 1024),
        txn_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  default limit: read through in {:.1} s; tailer RSS {:.1} MiB before, peak {:.1} MiB (VmHWM)",
        took.as_secs_f64(),
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("  limit {limit} bytes: {error}");
}
