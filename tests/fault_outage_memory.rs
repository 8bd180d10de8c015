//! Memory while the broker is away: an order waits unacknowledged while a
//! million transactions without tailed rows (UPDATEs of another table) are
//! read. Their commit marks must not pile up behind it: peak RSS stays
//! bounded, and once the broker is back every order arrives exactly once.
//!
//! Its own test binary: it stops the shared broker (by the PID
//! `tests/env/services.sh` recorded; started again also when the test
//! fails). The source is a scratch primary of the test's own with
//! `innodb_flush_log_at_trx_commit = 0`, so that a million transactions take
//! a minute rather than a quarter of an hour. `OUTAGE_UPDATES` changes the
//! count; `OUTAGE_SECONDS` keeps the broker away at least that long.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::faults::{by_order, insert_orders, stop_service, RestoreServices};
use test_support::process::status_kib;
use test_support::scratch::{ScratchServer, ROW_LOGGING};
use test_support::services::sample;
use test_support::tailer::{consume_all, last_gtid, Tailed, TailerSetup, TestDb};
use test_support::{http_get, unique_name};

async fn insert_order(conn: &mut Conn, id: u64) -> binlog_tailer::position::Gtid {
    conn.query_drop(insert_orders("shop", [id]))
        .await
        .expect("insert an order");
    last_gtid(conn).await
}

fn transactions_read(port: u16) -> f64 {
    http_get(port, "/metrics")
        .map(|(_, body)| sample(&body, "binlog_tailer_transactions_total"))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_transactions_during_a_broker_outage_keep_memory_bounded() {
    let updates: u64 = std::env::var("OUTAGE_UPDATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    const CHUNKS: u64 = 10;
    let server = ScratchServer::start(
        test_support::here!(),
        &format!("{ROW_LOGGING}\ninnodb_flush_log_at_trx_commit = 0\nmax_binlog_size = 1G"),
    )
    .await;
    let db = TestDb {
        name: "shop".into(),
    };
    let mut conn = server.root().await;
    conn.query_drop(
        "CREATE TABLE shop.counters (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB; \
         INSERT INTO shop.counters VALUES (1, 0); \
         CREATE PROCEDURE shop.bump(IN k INT) BEGIN \
           DECLARE i INT DEFAULT 0; \
           WHILE i < k DO UPDATE shop.counters SET n = n + 1 WHERE id = 1; SET i = i + 1; END WHILE; \
         END",
    )
    .await
    .expect("counters and the procedure");

    let topic = unique_name("outage_memory");
    let http_port = test_support::free_port();
    let setup = TailerSetup::new(
        test_support::here!(),
        "outage_memory",
        &[Tailed::orders(&db, &topic)],
        "earliest",
        "",
    )
    .with_source_port(server.port)
    .with_http_listen(([127, 0, 0, 1], http_port).into());
    let mut tailer = setup.spawn();
    let first = insert_order(&mut conn, 1).await;
    setup.wait_checkpoint(first, Duration::from_secs(60), Some(&mut tailer));
    let pid = tailer.child.id();
    let rss_before = status_kib(pid, "VmRSS").unwrap_or(0);

    let mut restore = RestoreServices::armed();
    stop_service("kafka", Duration::from_secs(120));
    let down_at = Instant::now();
    // An order that stays unacknowledged for the whole outage, then the
    // UPDATEs, an order after each tenth of them.
    let waiting = insert_order(&mut conn, 2).await;
    let mut last = waiting;
    let read_before = transactions_read(http_port);
    for chunk in 0..CHUNKS {
        conn.query_drop(format!("CALL shop.bump({})", updates / CHUNKS))
            .await
            .expect("UPDATEs");
        last = insert_order(&mut conn, 3 + chunk).await;
    }
    let written = down_at.elapsed();
    let expected = read_before + (updates / CHUNKS * CHUNKS + CHUNKS) as f64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while transactions_read(http_port) < expected {
        assert!(
            Instant::now() < deadline,
            "the tailer did not read the transactions in time ({} of {expected}); log:\n{}",
            transactions_read(http_port),
            tailer.log()
        );
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!("the tailer exited ({status}); log:\n{}", tailer.log());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // `OUTAGE_SECONDS` keeps the broker away longer, the tailer idle but
    // retrying (a long outage, as opposed to a busy one).
    let outage_at_least = Duration::from_secs(
        std::env::var("OUTAGE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    );
    while down_at.elapsed() < outage_at_least {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!("the tailer exited ({status}); log:\n{}", tailer.log());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let peak_kib = status_kib(pid, "VmHWM").expect("VmHWM");
    let outage = down_at.elapsed();
    let checkpoint_during = setup.checkpoint().expect("a checkpoint");

    let took = restore.now();
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let messages = consume_all(&topic);
    let by_id = by_order(&messages);
    println!(
        "broker away {:.1} s ({} UPDATE transactions and {} orders written in {:.1} s, all read \
         while it was away; back in {:.1} s): tailer RSS {:.1} MiB before, peak {:.1} MiB; \
         checkpoint held at {} during the outage; {} messages",
        outage.as_secs_f64(),
        updates / CHUNKS * CHUNKS,
        CHUNKS + 1,
        written.as_secs_f64(),
        took.as_secs_f64(),
        rss_before as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        checkpoint_during.position,
        messages.len()
    );
    assert!(
        !checkpoint_during.position.gtid.contains(waiting),
        "the checkpoint passed the unacknowledged order ({waiting})"
    );
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        (1..=2 + CHUNKS).collect::<Vec<_>>(),
        "every order"
    );
    assert!(
        by_id.values().all(|m| m.len() == 1),
        "every order exactly once"
    );
    assert!(
        peak_kib < 96 * 1024,
        "peak RSS {:.1} MiB: the marks of transactions without records pile up",
        peak_kib as f64 / 1024.0
    );
}
