//! Binlog rotation mid-stream: `FLUSH BINARY LOGS` on the replica the
//! tailer reads (and on the primary) several times while orders are
//! committed. Every order arrives exactly once, the checkpoint's binlog
//! coordinate follows the replica into its newer files and names a real
//! position there, and resuming by that file:offset repeats nothing.
//!
//! Its own test binary: it rotates the shared servers' binlogs (harmless to
//! other readers, but it makes the files it asserts on its own).

use std::time::Duration;

use binlog_tailer::position::{BinlogCoord, GtidState};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::faults::*;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

/// The numeric suffix of a binlog file name (`mariadb-bin.000007` → 7).
fn file_index(file: &str) -> u64 {
    file.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("binlog file name without a numeric suffix: {file}"))
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

// ------------------------------------------------------------ orders

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_mid_stream_lose_nothing_repeat_nothing_and_move_the_coordinate() {
    const REPLICA_FLUSHES: usize = 5;
    const PRIMARY_FLUSHES: usize = 3;

    let db = TestDb::create("rotation").await;
    let topic = unique_name("rotation");
    let setup = TailerSetup::new(
        test_support::here!(),
        "rotation",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    );
    let mut tailer = setup.spawn();
    let writer = Writer::start(&db, Duration::from_millis(50), 0, 0);

    setup
        .wait_published(20, Duration::from_secs(60), &mut tailer)
        .await;
    let first_cp = setup.checkpoint().expect("a checkpoint");
    let first_coord = first_cp
        .position
        .coord
        .clone()
        .expect("a binlog coordinate");

    let mut replica = connect(Server::Replica, User::Admin).await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    let replica_file_before = current_file(&mut replica).await;
    let primary_file_before = current_file(&mut primary).await;
    let mut primary_flushes = 0;
    for i in 0..REPLICA_FLUSHES {
        tokio::time::sleep(Duration::from_millis(400)).await;
        replica
            .query_drop("FLUSH BINARY LOGS")
            .await
            .expect("FLUSH BINARY LOGS on the replica");
        if i % 2 == 0 && primary_flushes < PRIMARY_FLUSHES {
            tokio::time::sleep(Duration::from_millis(200)).await;
            primary
                .query_drop("FLUSH BINARY LOGS")
                .await
                .expect("FLUSH BINARY LOGS on the primary");
            primary_flushes += 1;
        }
    }
    let replica_file_after = current_file(&mut replica).await;
    let primary_file_after = current_file(&mut primary).await;
    // Orders keep coming after the last rotation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ids, last) = writer.finish().await;
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let cp = setup.checkpoint().expect("a checkpoint");
    let coord = cp.position.coord.clone().expect("a binlog coordinate");
    // The coordinate names a real place on the replica: the end of the
    // checkpointed transaction.
    let gtid_there: Option<String> = replica
        .exec_first(
            "SELECT BINLOG_GTID_POS(?, ?)",
            (coord.file.as_str(), coord.offset),
        )
        .await
        .expect("BINLOG_GTID_POS");
    let gtid_there: Option<GtidState> = gtid_there.map(|t| t.parse().expect("GTID state"));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; log:\n{log}");
    let stopped_at = setup.checkpoint().expect("a checkpoint");

    // Resume by file:offset from the rotated coordinate, after one more
    // rotation and more orders while the tailer was down.
    replica
        .query_drop("FLUSH BINARY LOGS")
        .await
        .expect("FLUSH BINARY LOGS on the replica");
    let more_first = ids.last().copied().unwrap_or(0) + 1;
    for id in more_first..more_first + 50 {
        primary
            .query_drop(format!(
                "INSERT INTO {}.orders (id, customer_id, amount, currency, status, items, created_at) VALUES {}",
                db.name,
                order_values(id)
            ))
            .await
            .expect("insert");
    }
    let more_last = last_gtid(&mut primary).await;
    let mut ids = ids;
    ids.extend(more_first..more_first + 50);
    let mut by_file = setup.spawn_with(&["--set", "start.resume_by=\"file\""]);
    setup.wait_checkpoint(more_last, Duration::from_secs(120), Some(&mut by_file));
    let by_file_log = by_file.log();
    let by_file_status = by_file.terminate(Duration::from_secs(60));
    let resumed_cp = setup.checkpoint().expect("a checkpoint");

    let messages = consume_all(&topic);
    let Delivery {
        by_id,
        repeated,
        missing,
    } = delivery(&messages, &ids);
    let files_in_events: std::collections::BTreeSet<&str> = messages
        .iter()
        .filter_map(|m| m.payload["binlogfile"].as_str())
        .collect();

    println!("binlog rotations:");
    println!(
        "  replica: {REPLICA_FLUSHES} + 1 flushes, {replica_file_before} -> {replica_file_after}; \
         primary: {primary_flushes} flushes, {primary_file_before} -> {primary_file_after}"
    );
    println!("  checkpoint before the rotations: {}", first_cp.position);
    println!("  checkpoint after the rotations:  {}", cp.position);
    println!(
        "  BINLOG_GTID_POS({coord}) on the replica: {}",
        gtid_there
            .as_ref()
            .map_or("NULL".to_owned(), ToString::to_string)
    );
    println!("  after resuming by file:          {}", resumed_cp.position);
    println!("  binlog files named by the events: {files_in_events:?}");
    println!(
        "  messages: {} for {} orders; {} repeated, {} missing",
        messages.len(),
        ids.len(),
        repeated.len(),
        missing.len()
    );

    assert!(missing.is_empty(), "orders lost: {missing:?}");
    assert!(
        repeated.is_empty(),
        "orders published more than once: {repeated:?}"
    );
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        ids,
        "the topic holds exactly the committed orders"
    );
    for (id, ms) in &by_id {
        assert_eq!(ms[0].payload["data"], expected_data(*id), "order {id}");
    }
    assert!(
        file_index(&coord.file) >= file_index(&first_coord.file) + REPLICA_FLUSHES as u64,
        "after {REPLICA_FLUSHES} rotations of the replica the checkpoint's file moved from {} to {}",
        first_coord.file,
        coord.file
    );
    assert!(
        file_index(&coord.file) >= file_index(&replica_file_after),
        "the last transaction was committed after the last rotation (into {replica_file_after} or later), \
         but the checkpoint names {coord}"
    );
    assert!(
        coord > BinlogCoord::new(first_coord.file.clone(), first_coord.offset),
        "the coordinate moved forward"
    );
    let domain = last.domain;
    assert_eq!(
        gtid_there.as_ref().and_then(|g| g.get(domain)),
        cp.position.gtid.get(domain),
        "the checkpoint's coordinate {coord} is the end of its transaction on the replica"
    );
    assert_eq!(
        stopped_at.position, cp.position,
        "SIGTERM with nothing new keeps the position"
    );
    assert_eq!(
        by_file_status.code(),
        Some(0),
        "resuming by file: SIGTERM exits 0; log:\n{by_file_log}"
    );
    assert!(
        file_index(&resumed_cp.position.coord.clone().expect("coordinate").file)
            > file_index(&coord.file),
        "resuming by file crossed the later rotation: {}",
        resumed_cp.position
    );
}
