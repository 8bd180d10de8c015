//! The replica the tailer reads is restarted (SIGTERM, down for a few
//! seconds, started again by `services.sh up`) while orders keep being
//! committed on the primary: the tailer reconnects and every committed order
//! arrives exactly once.
//!
//! Its own test binary: it stops the shared replica, and cargo runs test
//! binaries one after another. The replica is started again by
//! `services.sh up`, also when the test fails.

use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use test_support::faults::*;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

/// The sum of a topic's high watermarks: how many events it holds.
struct Watermarks {
    consumer: rdkafka::consumer::BaseConsumer,
    topic: String,
    partitions: Vec<i32>,
}

impl Watermarks {
    fn new(topic: &str) -> Watermarks {
        use rdkafka::consumer::Consumer;
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", test_support::kafka_bootstrap())
            .set("group.id", unique_name("watermarks"))
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(20))
            .expect("metadata");
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        Watermarks {
            consumer,
            topic: topic.to_owned(),
            partitions,
        }
    }

    fn total(&self) -> u64 {
        use rdkafka::consumer::Consumer;
        self.partitions
            .iter()
            .map(|&p| {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                u64::try_from(high - low).unwrap_or(0)
            })
            .sum()
    }
}

/// One transaction of `rows` orders from `first` on the primary (statements
/// of 5,000 rows); returns its GTID.
async fn big_transaction(db: &TestDb, first: u64, rows: u64) -> Gtid {
    let mut primary = connect(Server::Primary, User::Admin).await;
    let mut tx = primary
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .expect("begin");
    let mut id = first;
    while id < first + rows {
        let end = (id + 5_000).min(first + rows);
        let values: Vec<String> = (id..end).map(order_values).collect();
        tx.query_drop(format!(
            "INSERT INTO {}.orders (id, customer_id, amount, currency, status, items, created_at) VALUES {}",
            db.name,
            values.join(", ")
        ))
        .await
        .expect("insert");
        id = end;
    }
    tx.commit().await.expect("commit");
    last_gtid(&mut primary).await
}

// ------------------------------------------------------------ the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_restart_mid_stream_loses_nothing_repeats_nothing() {
    // The replica stays down this long after it exited, so the tailer's
    // reconnects meet a closed port, not only a fresh server.
    const DOWN: Duration = Duration::from_secs(6);

    let mut restore = RestoreServices::armed();
    let db = TestDb::create("replica_restart").await;
    let topic = unique_name("replica_restart");
    let setup = TailerSetup::new(
        test_support::here!(),
        "replica_restart",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    );
    let mut tailer = setup.spawn();
    // ~20 transactions/s; every 10th holds 200 orders, so the restart may
    // land inside a transaction.
    let writer = Writer::start(&db, Duration::from_millis(50), 10, 200);

    setup
        .wait_published(300, Duration::from_secs(60), &mut tailer)
        .await;
    let before = writer.count();
    let published_before = setup.checkpoint().map_or(0, |c| c.events_published);

    // (Blocking calls here run on the test's own thread; the writer and the
    // rest of the runtime keep going on the worker threads.)
    let (replica_pid, stop_took) = stop_service("replica", Duration::from_secs(120));
    let down_at = Instant::now();
    while down_at.elapsed() < DOWN {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!(
                "the tailer exited ({status}) while the replica was down; log:\n{}",
                tailer.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let up_took = restore.now();
    let back_at = Instant::now();
    let down_for = down_at.elapsed();
    let written_while_down = writer.count() - before;
    let last_before_back = writer.last().expect("a GTID");
    setup.wait_checkpoint(
        last_before_back,
        Duration::from_secs(120),
        Some(&mut tailer),
    );
    let catch_up = back_at.elapsed();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut ids, last) = writer.finish().await;
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));

    // Second restart, while the tailer is inside one large transaction: the
    // topic holds part of it, so the reader has not handed all of it over
    // (at most kafka.max_in_flight + the 1,024-item channel more than the
    // topic holds).
    const BIG: u64 = 100_000;
    let published = Watermarks::new(&topic);
    let base = published.total();
    let first = ids.last().copied().unwrap_or(0) + 1;
    let big_gtid = big_transaction(&db, first, BIG).await;
    ids.extend(first..first + BIG);
    let deadline = Instant::now() + Duration::from_secs(180);
    let at_stop = loop {
        let now = published.total() - base;
        if now >= 2_000 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the large transaction did not start arriving within 180 s ({now} events); log:\n{}",
            tailer.log()
        );
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!("the tailer exited ({status}); log:\n{}", tailer.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let re_reads_before = tailer
        .log()
        .matches("re-reading an interrupted transaction")
        .count();
    let (_, stop2_took) = stop_service("replica", Duration::from_secs(120));
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(status) = tailer.child.try_wait().expect("try_wait") {
        panic!(
            "the tailer exited ({status}) while the replica was down; log:\n{}",
            tailer.log()
        );
    }
    let up2_took = restore.now();
    let back2_at = Instant::now();
    setup.wait_checkpoint(big_gtid, Duration::from_secs(240), Some(&mut tailer));
    let catch_up2 = back2_at.elapsed();
    let inside = tailer
        .log()
        .matches("re-reading an interrupted transaction")
        .count()
        - re_reads_before;
    println!(
        "second restart inside a {BIG}-row transaction: stopped when {at_stop} of its events were in the topic \
         (exit took {:.1} s, up {:.1} s); completed {:.1} s after the replica was back; \
         resumed inside the transaction: {}",
        stop2_took.as_secs_f64(),
        up2_took.as_secs_f64(),
        catch_up2.as_secs_f64(),
        if inside > 0 { "yes" } else { "no (the rest was already read)" }
    );

    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));

    let messages = consume_all(&topic);
    let Delivery {
        by_id,
        repeated,
        missing,
    } = delivery(&messages, &ids);
    let reconnects = log.matches("reconnecting").count();
    let resumed_inside = log.matches("re-reading an interrupted transaction").count();

    println!("replica restart (pid {replica_pid}):");
    println!(
        "  SIGTERM to exit:            {:.1} s",
        stop_took.as_secs_f64()
    );
    println!(
        "  replica away (exit -> in sync again): {:.1} s (services.sh up took {:.1} s)",
        down_for.as_secs_f64(),
        up_took.as_secs_f64()
    );
    println!("  orders before the restart:  {before} ({published_before} acknowledged)");
    println!("  orders while it was away:   {written_while_down}");
    println!("  orders in all:              {}", ids.len());
    println!(
        "  catch-up after it was back: {:.1} s",
        catch_up.as_secs_f64()
    );
    println!(
        "  reconnects logged: {reconnects} ({resumed_inside} re-reading an interrupted transaction)"
    );
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
        reconnects >= 1,
        "the log shows no reconnect across a replica restart:\n{log}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM after catching up exits 0; log:\n{log}"
    );
}
