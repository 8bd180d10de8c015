//! The source connection dies mid-stream (the server kills the tailer's
//! binlog dump thread, as it would on a network cut or a restart): the tailer
//! reconnects from the last transaction it handed over and skips the rows of
//! an interrupted transaction it already sent, so the topic holds every order
//! exactly once.
//!
//! Its own test binary: it kills every binlog dump thread of the tailer's
//! user on the replica, and cargo runs test binaries one after another.

use std::collections::BTreeSet;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

/// Kills the replica's binlog dump threads of the tailer's user; returns how many.
async fn kill_dump_threads() -> usize {
    let mut replica = connect(Server::Replica, User::Admin).await;
    let (tailer, _) = User::Tailer.credentials();
    let ids: Vec<u64> = replica
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump' AND USER = ?",
            (tailer,),
        )
        .await
        .expect("processlist");
    for id in &ids {
        let _ = replica.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_source_connections_lose_and_repeat_nothing() {
    let db = TestDb::create("reconnect").await;
    let topic = unique_name("reconnect");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "reconnect",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let mut tailer = setup.spawn();

    // Transactions of 200 rows each, so kills land inside transactions too.
    const TXNS: u64 = 40;
    const ROWS: u64 = 500;
    let writer = {
        let name = db.name.clone();
        tokio::spawn(async move {
            let mut primary = connect(Server::Primary, User::Admin).await;
            for t in 0..TXNS {
                let values: Vec<String> = (1..=ROWS)
                    .map(|r| {
                        let id = t * ROWS + r;
                        format!("({id}, {}, '1.00', 'EUR', '[]', NOW(6))", id % 9)
                    })
                    .collect();
                primary
                    .query_drop(format!(
                        "INSERT INTO {name}.orders (id, customer_id, amount, currency, items, created_at) VALUES {}",
                        values.join(",")
                    ))
                    .await
                    .expect("insert");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            last_gtid(&mut primary).await
        })
    };
    let mut kills = 0;
    // Kill while the writer runs, and on until at least four kills landed
    // (a kill only lands while the tailer is connected, not during its backoff).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !writer.is_finished() || kills < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {kills} kills landed in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        kills += kill_dump_threads().await;
    }
    let last = writer.await.expect("writer");
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{log}");

    let reconnects = log.matches("reconnecting").count();
    let resumed_inside = log.matches("re-reading an interrupted transaction").count();
    assert!(kills >= 3, "the test killed the dump thread {kills} times");
    assert!(
        reconnects >= 3,
        "the tailer logged {reconnects} reconnects:\n{log}"
    );

    let messages = consume_all(&topic);
    let ids: Vec<u64> = messages
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("id"))
        .collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    println!(
        "{kills} dump threads killed, {reconnects} reconnects ({resumed_inside} inside a transaction), \
         {} messages for {} orders",
        ids.len(),
        TXNS * ROWS
    );
    assert_eq!(
        unique,
        (1..=TXNS * ROWS).collect::<BTreeSet<_>>(),
        "nothing lost"
    );
    assert_eq!(ids.len() as u64, TXNS * ROWS, "nothing repeated");
}
