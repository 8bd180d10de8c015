//! A primary killed (SIGKILL) while it writes a large transaction to its
//! binlog, read by the tailer by file position. What MariaDB 10.11 leaves:
//! the partial group at the end of that binlog file, a new file after the
//! restart, the transaction rolled back by InnoDB (and its GTID given to the
//! next transaction). A reader of the old file gets the partial rows, then
//! "binlog truncated in the middle of event". The tailer must publish none
//! of the never-committed orders, read on (by GTID state) into the new
//! file, and publish the orders committed after the restart, once each.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::process::status_kib;
use test_support::scratch::{ScratchServer, ROW_LOGGING};
use test_support::tailer::{consume_all, last_gtid, Tailed, TailerSetup, TestDb};
use test_support::unique_name;

/// Orders in the transaction that is cut off.
const BIG: u64 = 1_500_000;

async fn master_status(conn: &mut Conn) -> (String, u64) {
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS")
        .expect("log_bin is on");
    (row.get(0).expect("File"), row.get(1).expect("Position"))
}

async fn insert_order(conn: &mut Conn, id: u64) -> binlog_tailer::position::Gtid {
    conn.query_drop(format!(
        "INSERT INTO shop.orders (id, customer_id, amount, currency, items, created_at) \
         VALUES ({id}, 1, '9.99', 'EUR', '[]', NOW(6))"
    ))
    .await
    .expect("insert an order");
    last_gtid(conn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cut_off_by_a_crash_is_never_published_and_the_tailer_reads_on() {
    let mut server = ScratchServer::start(
        test_support::here!(),
        &format!("{ROW_LOGGING}\nmax_binlog_size = 1G\ninnodb_buffer_pool_size = 256M"),
    )
    .await;
    let db = TestDb {
        name: "shop".into(),
    };
    let mut conn = server.root().await;
    let (file, pos) = master_status(&mut conn).await;
    let topic = unique_name("crash_mid_commit");
    let setup = TailerSetup::new(
        test_support::here!(),
        "crash_mid_commit",
        &[Tailed::orders(&db, &topic)],
        &format!("{file}:{pos}"),
        "",
    )
    .with_source_port(server.port);
    // Resume by file, as a tailer configured so would after the crash: the
    // cut-off file is read to its cut.
    let mut tailer = setup.spawn_with(&["--set", "start.resume_by=\"file\""]);
    let first = insert_order(&mut conn, 1).await;
    setup.wait_checkpoint(first, Duration::from_secs(60), Some(&mut tailer));
    let (file, before_big) = master_status(&mut conn).await;

    // The big transaction, killed while its group is written.
    let big = {
        let mut session = server.root().await;
        tokio::spawn(async move {
            let _ = session
                .query_drop(format!(
                    "SET SESSION max_recursive_iterations = {BIG}; START TRANSACTION; \
                     INSERT INTO shop.orders (id, customer_id, amount, currency, items, created_at) \
                     WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < {BIG}) \
                     SELECT 1000 + n, n % 5 + 1, '9.99', 'EUR', '[]', NOW(6) FROM s; COMMIT"
                ))
                .await;
        })
    };
    let binlog = server.dir.join("data").join(&file);
    let started = Instant::now();
    let killed_at = loop {
        let size = std::fs::metadata(&binlog).map(|m| m.len()).unwrap_or(0);
        if size > before_big + 20_000_000 {
            server.kill9();
            break size;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the big transaction's group never reached the binlog"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let _ = big.await;
    server.restart().await;
    let mut conn = server.root().await;
    let (new_file, _) = master_status(&mut conn).await;
    let second = insert_order(&mut conn, 2).await;
    setup.wait_checkpoint(second, Duration::from_secs(120), Some(&mut tailer));
    let peak = status_kib(tailer.child.id(), "VmHWM").unwrap_or(0);
    let log = tailer.log();
    assert_eq!(
        tailer.terminate(Duration::from_secs(60)).code(),
        Some(0),
        "log:\n{log}"
    );

    let committed: Vec<u64> = conn
        .query("SELECT id FROM shop.orders ORDER BY id")
        .await
        .expect("SELECT");
    let mut ids: Vec<u64> = consume_all(&topic)
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("data.id"))
        .collect();
    ids.sort_unstable();
    let cut = log
        .lines()
        .find(|l| l.contains("ends in the middle of an event"))
        .unwrap_or_default();
    println!("primary killed while writing a {BIG}-order transaction:");
    println!(
        "  {file} was {:.1} MB at the kill ({:.1} MB before the transaction); after the restart \
         the server writes {new_file}; order 2 is {second}",
        killed_at as f64 / 1e6,
        before_big as f64 / 1e6
    );
    println!("  tailer: {cut}");
    println!(
        "  committed {committed:?}; topic {ids:?}; tailer peak RSS {:.1} MiB",
        peak as f64 / 1024.0
    );
    assert_eq!(
        committed,
        vec![1, 2],
        "InnoDB rolled the cut-off transaction back"
    );
    assert!(
        !cut.is_empty(),
        "the tailer read the cut-off group to the cut; log:\n{log}"
    );
    assert_eq!(ids, committed, "exactly the committed orders, once each");
}
