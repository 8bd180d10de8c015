//! XA transactions, read from the primary and from the replica (which
//! applies and logs `XA PREPARE` too):
//!
//! - `XA PREPARE` then `XA ROLLBACK`: the order is never published;
//! - `XA PREPARE`, an ordinary order, the tailers SIGKILLed and restarted,
//!   then `XA COMMIT`: the XA order is published once, under the GTID of the
//!   `XA COMMIT`, and the ordinary one is not repeated (the checkpoint stayed
//!   before the pending prepare; what was published after it is skipped);
//! - `XA COMMIT … ONE PHASE`: an ordinary transaction.
//!
//! The topic holds exactly the orders `SELECT` shows, once each.

use std::time::{Duration, Instant};

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

/// (order id, event id) of every record in `topic`, by order id.
fn orders(topic: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = consume_all(topic)
        .iter()
        .map(|m| {
            (
                m.payload["data"]["id"].as_u64().expect("data.id"),
                m.payload["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn wait_for_order(setup: &TailerSetup, topic: &str, id: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    // A first checkpoint: the tailer is streaming, its topic exists.
    while setup.checkpoint().is_none() {
        assert!(
            Instant::now() < deadline,
            "no checkpoint within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while !orders(topic).iter().any(|(o, _)| *o == id) {
        assert!(
            Instant::now() < deadline,
            "order {id} not in {topic} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xa_orders_are_published_once_when_committed_and_never_when_rolled_back() {
    let db = TestDb::create("xa").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    let mut replica = connect(Server::Replica, User::Admin).await;
    let mut runs = Vec::new();
    for (server, conn) in [
        (Server::Primary, &mut primary),
        (Server::Replica, &mut replica),
    ] {
        let start: String = conn
            .query_first("SELECT @@gtid_binlog_pos")
            .await
            .expect("gtid_binlog_pos")
            .unwrap_or_default();
        let topic = unique_name("xa");
        let setup = TailerSetup::new(
            test_support::here!(),
            "xa",
            &[Tailed::orders(&db, &topic)],
            &start,
            "",
        )
        .with_source_port(server.port());
        runs.push((server, topic, setup));
    }
    let mut tailers: Vec<_> = runs.iter().map(|(_, _, setup)| setup.spawn()).collect();

    let mut session = connect(Server::Primary, User::Admin).await;
    // XIDs of this run's own (a prepared XA transaction outlives its session).
    let xid = |name: &str| format!("'{name}-{}'", db.name);
    let (r, c, o) = (xid("r"), xid("c"), xid("o"));
    // 1. Prepared, then rolled back.
    session
        .query_drop(format!(
            "XA START {r}; {}; XA END {r}; XA PREPARE {r}; XA ROLLBACK {r}",
            insert(&db, 1)
        ))
        .await
        .expect("XA rolled back");
    // 2. Prepared and left pending; an ordinary order after it.
    session
        .query_drop(format!(
            "XA START {c}; {}; XA END {c}; XA PREPARE {c}",
            insert(&db, 2)
        ))
        .await
        .expect("XA prepared");
    let prepare = last_gtid(&mut session).await;
    primary.query_drop(insert(&db, 3)).await.expect("order 3");
    wait_for_replica(&mut primary).await;
    let mut held = Vec::new();
    for ((server, topic, setup), tailer) in runs.iter().zip(tailers.iter_mut()) {
        wait_for_order(setup, topic, 3, Duration::from_secs(60)).await;
        assert!(
            !orders(topic).iter().any(|(o, _)| *o == 2),
            "{server:?}: the prepared order is not published"
        );
        // The checkpoint stays before the pending prepare.
        let cp = setup.checkpoint().expect("a checkpoint");
        assert!(
            !cp.position.gtid.contains(prepare),
            "{server:?}: the checkpoint {} passed the pending prepare {prepare}",
            cp.position
        );
        held.push(cp.position.to_string());
        tailer.0.kill(); // SIGKILL
    }
    // The tailers restart while the XA transaction is still pending.
    let mut tailers: Vec<_> = runs.iter().map(|(_, _, setup)| setup.spawn()).collect();
    session
        .query_drop(format!("XA COMMIT {c}"))
        .await
        .expect("XA COMMIT");
    let committed_by = last_gtid(&mut session).await;
    // 3. One phase.
    session
        .query_drop(format!(
            "XA START {o}; {}; XA END {o}; XA COMMIT {o} ONE PHASE",
            insert(&db, 4)
        ))
        .await
        .expect("XA one phase");
    session.query_drop(insert(&db, 5)).await.expect("order 5");
    let last = last_gtid(&mut session).await;
    wait_for_replica(&mut primary).await;
    let committed: Vec<u64> = primary
        .query(format!("SELECT id FROM {}.orders ORDER BY id", db.name))
        .await
        .expect("SELECT");
    assert_eq!(committed, vec![2, 3, 4, 5]);

    println!("XA transactions (committed orders {committed:?}; prepare {prepare}, XA COMMIT {committed_by}):");
    for (((server, topic, setup), mut tailer), held) in
        runs.iter().zip(tailers.drain(..)).zip(&held)
    {
        setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
        let log = tailer.log();
        assert_eq!(
            tailer.terminate(Duration::from_secs(60)).code(),
            Some(0),
            "{server:?}: log:\n{log}"
        );
        assert!(!log.contains("ERROR"), "{server:?}: log:\n{log}");
        let got = orders(topic);
        println!("  {server:?}: checkpoint held at {held} while pending; topic {got:?}");
        let ids: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
        assert_eq!(ids, committed, "{server:?}: each committed order once");
        let xa_id = &got.iter().find(|(o, _)| *o == 2).expect("order 2").1;
        assert!(
            xa_id.starts_with(&format!("{committed_by}.")),
            "{server:?}: the XA order's id {xa_id} is a row of the XA COMMIT {committed_by}"
        );
    }
}

/// An XA transaction of 100,000 orders, far more than the tailer keeps
/// until its `XA COMMIT` (8 MiB of pending XA rows): at the commit, its
/// prepare group is read again from its start and its rows go out as they
/// are read, as rows of the committing group. An ordinary order commits
/// between its prepare and its commit. Read from the replica: every order
/// once, in commit order, the XA orders under the `XA COMMIT`'s GTID; peak
/// RSS printed and bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_xa_transaction_is_read_again_at_its_commit_in_bounded_memory() {
    const XA_ORDERS: u64 = 100_000;
    const BOUND_MIB: f64 = 96.0;
    let db = TestDb::create("xa_large").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    let topic = unique_name("xa_large");
    let setup = TailerSetup::new(
        test_support::here!(),
        "xa_large",
        &[Tailed::orders(&db, &topic)],
        &test_support::tailer::replica_gtid_state().await,
        "",
    );
    let mut tailer = setup.spawn();
    let pid = tailer.child.id();

    let mut xa = connect(Server::Primary, User::Admin).await;
    xa.query_drop("SET SESSION max_recursive_iterations = 1000000")
        .await
        .expect("max_recursive_iterations");
    let started = Instant::now();
    xa.query_drop(format!(
        "XA START 'big'; {}; XA END 'big'; XA PREPARE 'big'",
        db.insert_many(1, XA_ORDERS)
    ))
    .await
    .expect("XA PREPARE of 100,000 orders");
    primary
        .query_drop(insert(&db, XA_ORDERS + 1))
        .await
        .expect("an ordinary order while the XA transaction is pending");
    xa.query_drop("XA COMMIT 'big'").await.expect("XA COMMIT");
    let xa_commit = last_gtid(&mut xa).await;
    primary
        .query_drop(insert(&db, XA_ORDERS + 2))
        .await
        .expect("an order after it");
    let last = last_gtid(&mut primary).await;
    wait_for_replica(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(300), Some(&mut tailer));
    let took = started.elapsed();
    let peak_mib = test_support::process::status_kib(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0;
    let log = tailer.log();
    assert_eq!(
        tailer.terminate(Duration::from_secs(60)).code(),
        Some(0),
        "log:\n{log}"
    );
    println!(
        "XA transaction of {XA_ORDERS} orders: {:.1} s to the last checkpoint, tailer peak RSS \
         {peak_mib:.1} MiB (VmHWM)",
        took.as_secs_f64()
    );
    assert!(!log.contains("ERROR"), "log:\n{log}");
    assert!(
        log.contains("reading an XA PREPARE group again"),
        "the XA transaction was too large to keep; log:\n{log}"
    );

    let messages = consume_all(&topic);
    let mut ids: Vec<u64> = messages
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("data.id"))
        .collect();
    ids.sort_unstable();
    let committed: Vec<u64> = primary
        .query(format!("SELECT id FROM {}.orders ORDER BY id", db.name))
        .await
        .expect("SELECT");
    assert_eq!(committed.len() as u64, XA_ORDERS + 2);
    assert_eq!(ids, committed, "every committed order once");
    // The XA orders are rows of the XA COMMIT's group, in their order.
    for m in &messages {
        let id = m.payload["data"]["id"].as_u64().expect("data.id");
        if id <= XA_ORDERS {
            assert_eq!(
                m.payload["id"].as_str(),
                Some(format!("{xa_commit}.{}", id - 1).as_str()),
                "order {id}"
            );
        }
    }
    test_support::tailer::assert_commit_order_per_partition(&messages);
    println!(
        "  read again at its commit: {} records, each order once, in commit order",
        messages.len()
    );
    assert!(
        peak_mib < BOUND_MIB,
        "peak RSS {peak_mib:.1} MiB, over the {BOUND_MIB} MiB bound"
    );
}
