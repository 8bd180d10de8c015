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

/// Transactions far larger than the tailer holds (it reads such a group to
/// its end, then again from its start if it committed), read from the
/// primary: 50,000 orders with a savepoint rolled back around an Aria write
/// (10,000 of them withdrawn), then 20,000 orders in a transaction with a
/// temporary table that rolls back. Exactly the committed orders arrive,
/// once each; peak RSS printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transactions_with_rollbacks_are_published_exactly_in_bounded_memory() {
    let db = TestDb::create("rollbacks_large").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "CREATE TABLE {}.audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(50)) \
             ENGINE=Aria",
            db.name
        ))
        .await
        .expect("a non-transactional table");
    let start: String = primary
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let topic = unique_name("rollbacks_large");
    let setup = TailerSetup::new(
        test_support::here!(),
        "rollbacks_large",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    )
    .with_source_port(Server::Primary.port());
    let mut tailer = setup.spawn();
    let pid = tailer.child.id();

    let mut session = connect(Server::Primary, User::Admin).await;
    session
        .query_drop("SET SESSION max_recursive_iterations = 1000000")
        .await
        .expect("max_recursive_iterations");
    let started = std::time::Instant::now();
    session
        .query_drop(format!(
            "START TRANSACTION; {}; SAVEPOINT s1; INSERT INTO {db}.audit (note) VALUES ('x'); \
             {}; ROLLBACK TO SAVEPOINT s1; {}; COMMIT",
            db.insert_many(1, 30_000),
            db.insert_many(30_001, 10_000),
            db.insert_many(40_001, 10_000),
            db = db.name
        ))
        .await
        .expect("50,000 orders, 10,000 rolled back to a savepoint");
    session
        .query_drop(format!(
            "START TRANSACTION; CREATE TEMPORARY TABLE {db}.scratch (id INT); {}; ROLLBACK",
            db.insert_many(50_001, 20_000),
            db = db.name
        ))
        .await
        .expect("20,000 orders rolled back");
    session
        .query_drop(insert(&db, 70_001))
        .await
        .expect("one more order");
    let last = last_gtid(&mut session).await;
    setup.wait_checkpoint(last, Duration::from_secs(300), Some(&mut tailer));
    let took = started.elapsed();
    let peak_kib = test_support::process::status_kib(pid, "VmHWM").unwrap_or(0);
    let log = tailer.log();
    assert_eq!(
        tailer.terminate(Duration::from_secs(60)).code(),
        Some(0),
        "log:\n{log}"
    );
    assert!(!log.contains("ERROR"), "log:\n{log}");
    assert!(
        log.contains("reading it to its end first"),
        "the 50,000-order transaction was too large to hold; log:\n{log}"
    );

    let committed: Vec<u64> = primary
        .query(format!("SELECT id FROM {}.orders ORDER BY id", db.name))
        .await
        .expect("SELECT");
    assert_eq!(committed.len(), 40_001);
    let ids = order_ids(&topic);
    let once = ids.windows(2).all(|w| w[0] < w[1]);
    println!("large transactions with rollbacks, read from the primary:");
    println!(
        "  committed {} orders; the topic holds {} ({}), {:.1} s to the last checkpoint",
        committed.len(),
        ids.len(),
        if once { "each once" } else { "with repeats" },
        took.as_secs_f64()
    );
    println!(
        "  tailer peak RSS {:.1} MiB (VmHWM)",
        peak_kib as f64 / 1024.0
    );
    assert_eq!(ids, committed, "exactly the committed orders, once each");
}
