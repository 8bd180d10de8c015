//! Benchmark: how fast the tailer drains a backlog of single-row order
//! transactions, and how much memory it needs doing so.
//!
//! Run with the services up: `make bench` (or `cargo bench --bench backlog`).
//! `BENCH_ORDERS` sets the backlog size (default 100000), `BENCH_WRITERS` the
//! number of connections that write it (default 4), `BENCH_WRAP` a profiler
//! to run the tailer under for the drain (e.g. `valgrind --tool=callgrind`).
//!
//! 1. Writes the backlog into a fresh database on the primary, one order per
//!    transaction, and waits for the replica to apply it.
//! 2. Starts the release `binlog-tailer` against the replica at the GTID
//!    state just before the backlog, and times it until its checkpoint covers
//!    the last transaction (every event acknowledged by the broker).
//! 3. Reads the tailer's peak RSS (VmHWM) and checks that the topic holds
//!    exactly one event per order.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use test_support::process::status_kib;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: do
    // nothing then, the figures are for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("backlog benchmark: run it with `make bench` (cargo bench --bench backlog)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let orders = env_or("BENCH_ORDERS", 100_000);
    let writers = env_or("BENCH_WRITERS", 4).max(1);
    let db = TestDb::create("bench").await;
    let start = replica_gtid_state().await;

    println!("writing {orders} single-row order transactions with {writers} connections...");
    let began = Instant::now();
    let per_writer = orders.div_ceil(writers);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db_name = db.name.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(Server::Primary, User::Admin).await;
            let first = w * per_writer + 1;
            let last = ((w + 1) * per_writer).min(orders);
            for id in first..=last {
                conn.exec_drop(
                    format!(
                        "INSERT INTO {db_name}.orders (id, customer_id, amount, currency, items) \
                         VALUES (?, ?, '19.99', 'EUR', '[{{\"sku\":\"bench\",\"qty\":1}}]')"
                    ),
                    (id, id % 1000),
                )
                .await
                .expect("insert");
            }
            last_gtid(&mut conn).await
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let mut primary = connect(Server::Primary, User::Admin).await;
    let end_state: String = primary
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let last: binlog_tailer::position::Gtid = end_state
        .split(',')
        .filter_map(|g| g.parse().ok())
        .max_by_key(|g: &binlog_tailer::position::Gtid| g.seq)
        .expect("a GTID");
    let write_secs = began.elapsed().as_secs_f64();
    println!(
        "  written in {write_secs:.1} s ({:.0} transactions/s on the primary)",
        orders as f64 / write_secs
    );
    test_support::tailer::wait_for_replica(&mut primary).await;

    let topic = unique_name("bench");
    let setup = TailerSetup::new(
        test_support::here!(),
        "bench",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    // BENCH_WRAP runs the tailer under a profiler for the drain, e.g.
    // BENCH_WRAP="valgrind --tool=callgrind --callgrind-out-file=target/callgrind.out"
    // (figures are then the profiler's, not the tailer's).
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let wrapper: Vec<&str> = wrap.split_whitespace().collect();
    if !wrapper.is_empty() {
        println!("  the drain runs under: {wrap}");
    }
    let began = Instant::now();
    let mut tailer = setup.spawn_wrapped(&wrapper, &[]);
    let pid = tailer.child.id();
    let mut peak = 0;
    let sampler = {
        let deadline = began + Duration::from_secs(600);
        loop {
            if let Some(kib) = status_kib(pid, "VmHWM") {
                peak = peak.max(kib);
            }
            if setup
                .checkpoint()
                .is_some_and(|c| c.position.gtid.contains(last))
            {
                break began.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "no full drain within 600 s; log:\n{}",
                tailer.log()
            );
            if let Some(status) = tailer.child.try_wait().expect("try_wait") {
                panic!("tailer exited ({status}); log:\n{}", tailer.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if let Some(kib) = status_kib(pid, "VmHWM") {
        peak = peak.max(kib);
    }
    let status = tailer.terminate(Duration::from_secs(30));
    let published = setup.checkpoint().map_or(0, |c| c.events_published);
    let in_topic = consume_all(&topic).len() as u64;
    let secs = sampler.as_secs_f64();
    println!("drained {published} events in {secs:.2} s (process start to last checkpoint)");
    println!("  throughput: {:.0} events/s", published as f64 / secs);
    println!("  peak RSS:   {:.1} MiB (VmHWM)", peak as f64 / 1024.0);
    println!("  topic holds {in_topic} events; tailer exit status {status}");
    assert_eq!(published, orders, "every order published");
    assert_eq!(in_topic, orders, "one event per order in the topic");

    // A restart over the full topic: what the frontier costs at start-up.
    let began = Instant::now();
    let tailer = setup.spawn();
    let deadline = began + Duration::from_secs(120);
    let streaming = loop {
        if tailer.log().contains("streaming the binlog") {
            break began.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the restart did not reach the binlog within 120 s; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let log = tailer.log();
    let frontier = log
        .lines()
        .find(|l| l.contains("read back what the topics hold"))
        .and_then(|l| l.split_once("records_read="))
        .map_or("(not logged)", |(_, rest)| rest);
    let status = tailer.terminate(Duration::from_secs(30));
    println!(
        "restart over {in_topic} events in the topic: streaming {:.0} ms after process start; \
         frontier: records_read={frontier}; exit status {status}",
        streaming.as_secs_f64() * 1000.0
    );
}
