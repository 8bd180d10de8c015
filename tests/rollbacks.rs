//! Rows MariaDB writes to the binlog although they never commit, read from
//! the primary (where they appear) and from the replica (where they do not):
//!
//! - a transaction that created a temporary table and inserted an order,
//!   then rolled back: the primary logs the group, ending in `ROLLBACK`;
//! - a transaction that inserted an order, set a savepoint, wrote a
//!   non-transactional (Aria) table and another order, rolled back to the
//!   savepoint and inserted a third order: the primary logs all three
//!   orders with `SAVEPOINT` and `ROLLBACK TO` between them.
//!
//! From either server the topic holds exactly the orders `SELECT` shows,
//! once each, and the tailer keeps running.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use test_support::tailer::{consume_all, last_gtid, wait_for_replica, Tailed, TailerSetup, TestDb};
use test_support::{connect, unique_name, Server, User};

fn insert(db: &TestDb, id: u64) -> String {
    format!(
        "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
         VALUES ({id}, 1, '9.99', 'EUR', '[]', NOW(6))",
        db.name
    )
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
async fn rolled_back_rows_in_the_binlog_are_never_published() {
    let db = TestDb::create("rollbacks").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "CREATE TABLE {}.audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(50)) \
             ENGINE=Aria",
            db.name
        ))
        .await
        .expect("a non-transactional table");
    wait_for_replica(&mut primary).await;
    let primary_start: String = primary
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let mut replica = connect(Server::Replica, User::Admin).await;
    let replica_start: String = replica
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();

    let mut runs = Vec::new();
    for (server, start) in [
        (Server::Primary, &primary_start),
        (Server::Replica, &replica_start),
    ] {
        let topic = unique_name("rollbacks");
        let setup = TailerSetup::new(
            test_support::here!(),
            "rollbacks",
            &[Tailed::orders(&db, &topic)],
            start,
            "",
        )
        .with_source_port(server.port());
        runs.push((server, topic, setup));
    }
    let mut tailers: Vec<_> = runs.iter().map(|(_, _, setup)| setup.spawn()).collect();

    // 1. A temporary table, order 1, ROLLBACK.
    let mut session = connect(Server::Primary, User::Admin).await;
    session
        .query_drop(format!(
            "START TRANSACTION; CREATE TEMPORARY TABLE {db}.scratch (id INT); {}; ROLLBACK",
            insert(&db, 1),
            db = db.name
        ))
        .await
        .expect("a rolled-back transaction with a temporary table");
    // 2. Order 2, a savepoint, an Aria row and order 3, back to the
    //    savepoint, order 4, COMMIT.
    session
        .query_drop(format!(
            "START TRANSACTION; {}; SAVEPOINT s1; INSERT INTO {db}.audit (note) VALUES ('x'); \
             {}; ROLLBACK TO SAVEPOINT s1; {}; COMMIT",
            insert(&db, 2),
            insert(&db, 3),
            insert(&db, 4),
            db = db.name
        ))
        .await
        .expect("a savepoint rolled back around a non-transactional write");
    // 3. Order 5, plainly.
    session.query_drop(insert(&db, 5)).await.expect("order 5");
    let last = last_gtid(&mut session).await;
    wait_for_replica(&mut primary).await;
    let committed: Vec<u64> = primary
        .query(format!("SELECT id FROM {}.orders ORDER BY id", db.name))
        .await
        .expect("SELECT");
    assert_eq!(committed, vec![2, 4, 5]);

    println!("rolled-back rows in the binlog (committed orders {committed:?}):");
    for ((server, topic, setup), mut tailer) in runs.iter().zip(tailers.drain(..)) {
        // The replica logs the primary's transactions under the same GTIDs.
        setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
        let log = tailer.log();
        let status = tailer.terminate(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{server:?}: log:\n{log}");
        assert!(!log.contains("ERROR"), "{server:?}: log:\n{log}");
        let ids = order_ids(topic);
        println!("  read from the {server:?}: topic holds {ids:?}");
        assert_eq!(ids, committed, "{server:?}: exactly the committed orders");
    }
}
