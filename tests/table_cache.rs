//! The table-map cache over a long run: 2,000 tables written round after
//! round with `FLUSH TABLES` between rounds (every table gets a new id each
//! round, as it also does when the server's table cache turns over). Peak
//! RSS must stay bounded, and the orders written along the way arrive once.
//!
//! The source is a scratch primary of the test's own (the `FLUSH TABLES`
//! must not disturb other tests, and `innodb_flush_log_at_trx_commit = 0`
//! keeps the rounds quick). A round takes about a second here, so the
//! default is 60 rounds (120,000 new table ids); `TABLE_CACHE_ROUNDS=500`
//! runs the 1,000,000 of the issue that asked for it.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use test_support::faults::{by_order, insert_orders};
use test_support::process::status_kib;
use test_support::scratch::{ScratchServer, ROW_LOGGING};
use test_support::tailer::{consume_all, last_gtid, Tailed, TailerSetup, TestDb};
use test_support::unique_name;

const TABLES: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_tables_with_new_ids_every_round_keep_memory_bounded() {
    let rounds: u64 = std::env::var("TABLE_CACHE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = ScratchServer::start(
        test_support::here!(),
        &format!("{ROW_LOGGING}\ninnodb_flush_log_at_trx_commit = 0\nmax_binlog_size = 1G"),
    )
    .await;
    let db = TestDb {
        name: "shop".into(),
    };
    let mut conn = server.root().await;
    let started = Instant::now();
    for chunk in (0..TABLES).collect::<Vec<_>>().chunks(200) {
        let ddl: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!("CREATE TABLE shop.t{i:04} (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40)) ENGINE=InnoDB")
            })
            .collect();
        conn.query_drop(ddl.join(";")).await.expect("tables");
    }
    let created = started.elapsed();

    let topic = unique_name("table_cache");
    let setup = TailerSetup::new(
        test_support::here!(),
        "table_cache",
        &[Tailed::orders(&db, &topic)],
        "earliest",
        "",
    )
    .with_source_port(server.port);
    let mut tailer = setup.spawn();
    let pid = tailer.child.id();
    let inserts: String = (0..TABLES)
        .map(|i| format!("INSERT INTO shop.t{i:04} (v, note) VALUES ({i}, 'round');"))
        .collect();
    let written_at = Instant::now();
    let mut last = None;
    let mut peak_mid_kib = 0;
    for round in 1..=rounds {
        conn.query_drop(format!(
            "START TRANSACTION; {inserts} {}; COMMIT; FLUSH TABLES",
            insert_orders("shop", [round])
        ))
        .await
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        last = Some(last_gtid(&mut conn).await);
        if round % 50 == 0 {
            peak_mid_kib = status_kib(pid, "VmHWM").unwrap_or(0);
            if let Some(status) = tailer.child.try_wait().expect("try_wait") {
                panic!("the tailer exited ({status}); log:\n{}", tailer.log());
            }
        }
    }
    let written = written_at.elapsed();
    let last = last.expect("rounds");
    setup.wait_checkpoint(last, Duration::from_secs(600), Some(&mut tailer));
    let caught_up = written_at.elapsed();
    let peak_kib = status_kib(pid, "VmHWM").expect("VmHWM");
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));

    let messages = consume_all(&topic);
    let by_id = by_order(&messages);
    println!(
        "{TABLES} tables (created in {:.1} s) × {rounds} rounds with FLUSH TABLES: {} table maps \
         with new ids, {} rows; written in {:.1} s, read to the end {:.1} s after the first round; \
         tailer peak RSS {:.1} MiB (at round {}: {:.1} MiB); {} orders",
        created.as_secs_f64(),
        TABLES as u64 * rounds,
        (TABLES as u64 + 1) * rounds,
        written.as_secs_f64(),
        caught_up.as_secs_f64(),
        peak_kib as f64 / 1024.0,
        rounds - rounds % 50,
        peak_mid_kib as f64 / 1024.0,
        by_id.len()
    );
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        (1..=rounds).collect::<Vec<_>>(),
        "every order"
    );
    assert!(by_id.values().all(|m| m.len() == 1), "each once");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {:.1} MiB: the table-map cache grows with table ids",
        peak_kib as f64 / 1024.0
    );
}
