//! The crash test: the tailer is SIGKILLed again and again at random moments
//! while orders are written steadily, then left to finish. The topic must
//! hold every committed order exactly once, in commit order within each
//! partition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::TxOpts;
use test_support::random::{crash_seed, Lcg};
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Consumed, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigkills_leave_every_order_exactly_once() {
    let mut rng = Lcg(crash_seed("crash test"));

    let db = TestDb::create("crash").await;
    let topic = unique_name("crash");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "crash",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );

    // Steady load: single-row and multi-row transactions, ~6 s in all.
    const BATCHES: u64 = 300;
    let writer = {
        let name = db.name.clone();
        tokio::spawn(async move {
            let mut primary = connect(Server::Primary, User::Admin).await;
            let mut next_id = 1u64;
            for b in 0..BATCHES {
                let rows = if b % 3 == 0 { 20 } else { 1 };
                let values: Vec<String> = (next_id..next_id + rows)
                    .map(|id| {
                        format!(
                            "({id}, {}, '{}.{:02}', 'EUR', '[]', NOW(6))",
                            id % 13,
                            id % 1000,
                            id % 100
                        )
                    })
                    .collect();
                next_id += rows;
                let mut tx = primary
                    .start_transaction(TxOpts::default())
                    .await
                    .expect("begin");
                tx.query_drop(format!(
                    "INSERT INTO {name}.orders (id, customer_id, amount, currency, items, created_at) VALUES {}",
                    values.join(",")
                ))
                .await
                .expect("insert");
                tx.commit().await.expect("commit");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (next_id - 1, last_gtid(&mut primary).await)
        })
    };

    let mut kills = 0;
    let mut published_at_kill = Vec::new();
    while kills < 6 {
        let tailer = setup.spawn();
        let wait = Duration::from_millis(250 + rng.next(900));
        let until = Instant::now() + wait;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tailer.kill();
        kills += 1;
        published_at_kill.push(setup.checkpoint().map_or(0, |c| c.events_published));
    }
    let (orders, last) = writer.await.expect("writer");
    let mut tailer = setup.spawn();
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));

    let messages = consume_all(&topic);
    let mut by_id: BTreeMap<u64, Vec<&Consumed>> = BTreeMap::new();
    for m in &messages {
        by_id
            .entry(m.payload["data"]["id"].as_u64().expect("id"))
            .or_default()
            .push(m);
    }
    let repeated: Vec<u64> = by_id
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| *k)
        .collect();
    println!(
        "{kills} SIGKILLs (checkpointed events at each: {published_at_kill:?}); {} messages for {orders} orders; \
         {} repeated; last run skipped: {}",
        messages.len(),
        repeated.len(),
        log.contains("skipping events the topic already holds")
    );
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        (1..=orders).collect::<Vec<_>>(),
        "nothing lost"
    );
    assert!(repeated.is_empty(), "orders published twice: {repeated:?}");

    test_support::tailer::assert_commit_order_per_partition(&messages);
}
