//! Benchmark: how fast the tailer drains a backlog of single-row order
//! transactions, and how much memory it needs doing so.
//!
//! Run with the services up: `make bench` (or `cargo bench --bench backlog`).
//! `BENCH_ORDERS` sets the backlog size (default 100000), `BENCH_WRITERS` the
//! number of connections that write it (default 4), `BENCH_DRAINS` how many
//! measured drains the median is taken of (default 3), `BENCH_WRAP` a
//! profiler to run the tailer under for the drains (e.g. `valgrind
//! --tool=callgrind`; one drain then unless `BENCH_DRAINS` says otherwise).
//!
//! 1. Writes the backlog into a fresh database on the primary, one order per
//!    transaction, and waits for the replica to apply it.
//! 2. Drains it once into a topic of its own, not counted (warm-up;
//!    `BENCH_WARMUP=0` skips it). Then, `BENCH_DRAINS` times, each into a
//!    new topic: starts the release `binlog-tailer` against the replica at
//!    the GTID state just before the backlog, and times it until its
//!    checkpoint covers the last transaction (every event acknowledged by
//!    the broker).
//! 3. Reads the tailer's peak RSS (VmHWM) and CPU time (user + system, from
//!    `/proc/<pid>/stat`) in each drain, prints each drain and the medians,
//!    and checks that the first drain's topic holds exactly one event per
//!    order.
//! 4. Measures, in the same run, the two limits a drain cannot beat: the raw
//!    binlog stream (`mariadb-binlog --read-from-remote-server --raw` of the
//!    same binlog range from the replica: the server and the wire, no
//!    decoding) and the producer ceiling (Kafka's own Java
//!    `ProducerPerformance` sending the tailer's published payloads with the
//!    tailer's producer settings), and prints the tailer's ratio to the
//!    lower one.
//! 5. Restarts the tailer over the full topic and times how long it takes
//!    to reach the binlog (the frontier read included); then, over a topic
//!    of `BENCH_STARTUP_RECORDS` events (default 1000000; 0 skips it), the
//!    time from process start to the broker's append of the first new
//!    record.
//! 6. Drains one transaction of `BENCH_BIG_ROWS` orders (default 200000;
//!    0 skips it) and prints its rows/s beside the single-row rate, and
//!    the tailer's peak RSS.
//! 7. Snapshots a table of `BENCH_SNAPSHOT_ROWS` existing orders (default
//!    200000; 0 skips it) with `start.from = "snapshot"`, and prints rows/s
//!    (process start to the hand-over's checkpoint) beside the single-row
//!    rate, CPU per row and peak RSS; checks the topic holds one snapshot
//!    record per row.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use test_support::process::{cpu_seconds, status_kib};
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Tailed, Tailer, TailerSetup, TestDb,
};
use test_support::{connect, kafka_bootstrap, repo_root, unique_name, Server, User};

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
    // Where the backlog starts in the replica's binlog, for the raw stream.
    let (raw_file, raw_offset) = {
        let mut replica = connect(Server::Replica, User::Admin).await;
        let row: Option<(String, u64, String, String)> = replica
            .query_first("SHOW MASTER STATUS")
            .await
            .expect("SHOW MASTER STATUS");
        let (file, offset, _, _) = row.expect("the replica writes a binlog");
        (file, offset)
    };

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
    let last: Gtid = end_state
        .split(',')
        .filter_map(|g| g.parse().ok())
        .max_by_key(|g: &Gtid| g.seq)
        .expect("a GTID");
    let write_secs = began.elapsed().as_secs_f64();
    println!(
        "  written in {write_secs:.1} s ({:.0} transactions/s on the primary)",
        orders as f64 / write_secs
    );
    test_support::tailer::wait_for_replica(&mut primary).await;

    // A first drain of the same backlog into a topic of its own, not
    // counted. On freshly started services the first drain ran at about
    // 26,000 events/s and 18 µs of tailer CPU per event against
    // 40,000-60,000 and 10-14 µs in the runs after it (a broker whose JVM
    // has not compiled its paths yet, among others), while the producer
    // ceiling, measured after the drain, always met warm services. Both are
    // measured warm now. BENCH_WARMUP=0 skips it.
    if env_or("BENCH_WARMUP", 1) != 0 {
        let (.., drain, _) = drain_once(&db, &start, "bench-warmup", &[], last);
        let per_event = drain.cpu.map_or_else(
            || "n/a".to_owned(),
            |c| format!("{:.1} µs", c * 1e6 / orders.max(1) as f64),
        );
        println!(
            "warm-up drain into another topic (not counted): {:.2} s, CPU {per_event} per event",
            drain.took.as_secs_f64()
        );
    }

    // BENCH_WRAP runs the tailer under a profiler for the drain, e.g.
    // BENCH_WRAP="valgrind --tool=callgrind --callgrind-out-file=target/callgrind.out"
    // (figures are then the profiler's, not the tailer's; one drain unless
    // BENCH_DRAINS says otherwise).
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let wrapper: Vec<&str> = wrap.split_whitespace().collect();
    if !wrapper.is_empty() {
        println!("  the drains run under: {wrap}");
    }
    // Run to run, CPU per event on this 2-core machine spreads by a fifth
    // for the same build (the other processes, the broker's JVM, the host):
    // one drain is a sample, the median of several a figure.
    let drains = env_or("BENCH_DRAINS", if wrapper.is_empty() { 3 } else { 1 }).max(1);
    let mut measured = Vec::new();
    // The first drain's topic and setup serve the checks and the restart below.
    let mut first: Option<(String, TailerSetup)> = None;
    for n in 1..=drains {
        let (topic, setup, drain, status) =
            drain_once(&db, &start, &format!("bench-{n}"), &wrapper, last);
        let published = setup.checkpoint().map_or(0, |c| c.events_published);
        assert_eq!(published, orders, "drain {n}: every order published");
        let run = Measured::new(&drain, published);
        println!(
            "drain {n} of {drains}: {published} events in {:.2} s (process start to last \
             checkpoint), {:.0} events/s; CPU {} per event ({} start-up included); peak RSS \
             {:.1} MiB; {status}",
            drain.took.as_secs_f64(),
            run.rate,
            micros(run.streaming),
            micros(run.total),
            drain.peak_kib as f64 / 1024.0
        );
        measured.push(run);
        if first.is_none() {
            first = Some((topic, setup));
        }
    }
    let Some((topic, setup)) = first else {
        unreachable!("at least one drain ran");
    };
    let rate = median(measured.iter().map(|m| m.rate));
    let peak = measured.iter().map(|m| m.peak_kib).max().unwrap_or(0);
    println!("drained {orders} events {drains} time(s); median of the drains:");
    println!("  throughput: {rate:.0} events/s");
    println!(
        "  CPU:        {} per event streaming, {} start-up included (user+system)",
        micros(median_opt(measured.iter().map(|m| m.streaming))),
        micros(median_opt(measured.iter().map(|m| m.total)))
    );
    println!(
        "  peak RSS:   {:.1} MiB (VmHWM, the highest drain)",
        peak as f64 / 1024.0
    );
    let consumed = consume_all(&topic);
    let in_topic = consumed.len() as u64;
    println!("  the first drain's topic holds {in_topic} events");
    assert_eq!(in_topic, orders, "one event per order in the topic");

    // The limits, measured now, on the same machine and data.
    let raw = raw_stream_rate(&setup.dir, &raw_file, raw_offset, orders);
    let payloads = setup.dir.join("payloads.jsonl");
    write_payloads(&payloads, consumed.iter().map(|c| c.raw_payload.as_slice()));
    drop(consumed);
    let ceiling = producer_ceiling(&payloads, orders).await;
    println!("limits measured in this run:");
    match raw {
        Some(r) => println!(
            "  raw binlog stream: {r:.0} transactions/s (mariadb-binlog --raw from the replica)"
        ),
        None => println!("  raw binlog stream: not measured (see above)"),
    }
    match ceiling {
        Some(c) => println!(
            "  producer ceiling:  {c:.0} records/s (ProducerPerformance, the tailer's payloads)"
        ),
        None => println!("  producer ceiling:  not measured (see above)"),
    }
    if let Some(limit) = [raw, ceiling].into_iter().flatten().reduce(f64::min) {
        println!(
            "  tailer / lower limit: {:.2} ({rate:.0} / {limit:.0})",
            rate / limit
        );
    }

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
         frontier: records_read={frontier}; {status}",
        streaming.as_secs_f64() * 1000.0
    );

    let startup_records = env_or("BENCH_STARTUP_RECORDS", 1_000_000);
    if startup_records > 0 {
        startup(startup_records).await;
    }
    let big = env_or("BENCH_BIG_ROWS", 200_000);
    if big > 0 {
        big_transaction(big, rate).await;
    }
    let snapshot_rows = env_or("BENCH_SNAPSHOT_ROWS", 200_000);
    if snapshot_rows > 0 {
        snapshot(snapshot_rows, rate).await;
    }
}

/// A table of `rows` existing orders, snapshotted from the replica by a
/// first `run` with `start.from = "snapshot"`: rows/s (process start to the
/// checkpoint at the snapshot's position, every row acknowledged) beside
/// `single_rate`, CPU per row, peak RSS.
async fn snapshot(rows: u64, single_rate: f64) {
    let db = TestDb::create("benchsnap").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop("SET SESSION max_recursive_iterations = 50001")
        .await
        .expect("max_recursive_iterations");
    let mut first = 1;
    while first <= rows {
        let n = 50_000.min(rows - first + 1);
        primary
            .query_drop(db.insert_many(first, n))
            .await
            .expect("insert existing orders");
        first += n;
    }
    let last = last_gtid(&mut primary).await;
    test_support::tailer::wait_for_replica(&mut primary).await;

    let topic = unique_name("bench-snapshot");
    let setup = TailerSetup::new(
        test_support::here!(),
        "bench-snapshot",
        &[Tailed::orders(&db, &topic)],
        "snapshot",
        "",
    );
    let began = Instant::now();
    let mut tailer = setup.spawn();
    // The hand-over writes the checkpoint at the snapshot's position, which
    // includes every existing order.
    let Drain {
        took,
        peak_kib: peak,
        cpu,
        ..
    } = watch_drain(&setup, &mut tailer, began, last);
    let status = tailer.terminate(Duration::from_secs(30));
    let rate = rows as f64 / took.as_secs_f64();
    let per_row = cpu.map_or_else(
        || "unknown".to_owned(),
        |c| format!("{:.1} µs", c * 1e6 / rows as f64),
    );
    println!(
        "snapshot of {rows} existing orders: {:.2} s, {rate:.0} rows/s ({:.2} x the single-row \
         rate); CPU per row {per_row}; peak RSS {:.1} MiB; {status}",
        took.as_secs_f64(),
        rate / single_rate,
        peak as f64 / 1024.0
    );
    let records = consume_all(&topic);
    let marked = records
        .iter()
        .filter(|r| r.headers.contains_key("binlog.snapshot"))
        .count() as u64;
    assert_eq!(
        (records.len() as u64, marked),
        (rows, rows),
        "one snapshot record per existing order"
    );
}

/// Start-up over a topic that already holds `records` events: the time from
/// process start to the first new record appended by the broker.
///
/// The topic is filled by the tailer itself (`records` orders written as
/// transactions of 1,000 rows, drained from the replica); then, with the
/// tailer stopped, one more order is committed and the tailer started again.
/// The topic uses `LogAppendTime`, so the new record's timestamp is the
/// broker's append time, compared with the wall-clock time the process was
/// started at (same machine, same clock).
async fn startup(records: u64) {
    const PER_TRANSACTION: u64 = 1_000;
    let db = TestDb::create("benchstart").await;
    let start = replica_gtid_state().await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "SET SESSION max_recursive_iterations = {}",
            PER_TRANSACTION + 1
        ))
        .await
        .expect("max_recursive_iterations");
    let began = Instant::now();
    let mut first = 1;
    while first <= records {
        let n = PER_TRANSACTION.min(records - first + 1);
        primary
            .query_drop(db.insert_many(first, n))
            .await
            .expect("insert orders");
        first += n;
    }
    let last = last_gtid(&mut primary).await;
    test_support::tailer::wait_for_replica(&mut primary).await;
    println!(
        "start-up: {records} orders written in {:.1} s ({PER_TRANSACTION} per transaction)",
        began.elapsed().as_secs_f64()
    );
    let topic = unique_name("bench-start");
    test_support::kafka::create_topic_with(
        &topic,
        3,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "bench-start",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let began = Instant::now();
    let mut tailer = setup.spawn();
    let Drain { took, .. } = watch_drain(&setup, &mut tailer, began, last);
    let status = tailer.terminate(Duration::from_secs(30));
    let published = setup.checkpoint().map_or(0, |c| c.events_published);
    println!(
        "  the tailer put them in the topic in {:.1} s; {status}",
        took.as_secs_f64()
    );
    assert_eq!(published, records, "every order published");

    let new_id = records + 1;
    primary
        .query_drop(db.insert_many(new_id, 1))
        .await
        .expect("one more order");
    let last = last_gtid(&mut primary).await;
    test_support::tailer::wait_for_replica(&mut primary).await;

    let started_at = std::time::SystemTime::now();
    let began = Instant::now();
    let mut tailer = setup.spawn();
    let streaming = loop {
        if tailer.log().contains("streaming the binlog") {
            break began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the restart did not reach the binlog within 120 s; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(30));
    let frontier = log
        .lines()
        .find(|l| l.contains("read back what the topics hold"))
        .and_then(|l| l.split_once("records_read="))
        .map_or("(not logged)", |(_, rest)| rest);
    let appended = newest_append_time(&topic, new_id);
    let start_ms = started_at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        * 1000.0;
    println!(
        "  restart over {records} events in the topic: streaming {:.0} ms after process start; \
         first new record appended by the broker {:.0} ms after process start; frontier: \
         records_read={frontier}; {status}",
        streaming.as_secs_f64() * 1000.0,
        appended as f64 - start_ms
    );
}

/// The broker's append time (ms since the epoch) of the order `id` in
/// `topic` (a `LogAppendTime` topic), read from the partitions' last
/// records.
fn newest_append_time(topic: &str, id: u64) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique_name("bench-start-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..3 {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(20))
            .expect("watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, partition, rdkafka::Offset::Offset(high - 1))
                .expect("assignment");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("message");
        let payload: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).expect("JSON payload");
        if payload["data"]["id"].as_u64() == Some(id) {
            return message.timestamp().to_millis().expect("a timestamp");
        }
    }
    panic!("order {id} is not the last record of any partition of {topic}");
}

/// One transaction of `rows` orders, drained from the replica: rows/s
/// (process start to the checkpoint past it) beside `single_rate`, the
/// single-row transactions' events/s, and peak RSS.
async fn big_transaction(rows: u64, single_rate: f64) {
    let db = TestDb::create("benchbig").await;
    let start = replica_gtid_state().await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "SET SESSION max_recursive_iterations = {}",
            rows + 1
        ))
        .await
        .expect("max_recursive_iterations");
    let began = Instant::now();
    primary
        .query_drop(db.insert_many(1, rows))
        .await
        .expect("insert the big transaction");
    let last = last_gtid(&mut primary).await;
    println!(
        "one transaction of {rows} orders written in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    test_support::tailer::wait_for_replica(&mut primary).await;

    let topic = unique_name("bench-big");
    let setup = TailerSetup::new(
        test_support::here!(),
        "bench-big",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let began = Instant::now();
    let mut tailer = setup.spawn();
    let Drain {
        took,
        peak_kib: peak,
        ..
    } = watch_drain(&setup, &mut tailer, began, last);
    let status = tailer.terminate(Duration::from_secs(30));
    let published = setup.checkpoint().map_or(0, |c| c.events_published);
    let rate = published as f64 / took.as_secs_f64();
    println!(
        "  drained {published} rows in {:.2} s: {rate:.0} rows/s ({:.2} x the single-row rate); \
         peak RSS {:.1} MiB; {status}",
        took.as_secs_f64(),
        rate / single_rate,
        peak as f64 / 1024.0
    );
    assert_eq!(
        published, rows,
        "every row of the big transaction published"
    );
}

/// What watching a drain saw.
struct Drain {
    /// Process start to the checkpoint covering the last transaction.
    took: Duration,
    /// Peak RSS (VmHWM), KiB.
    peak_kib: u64,
    /// CPU seconds when the tailer started streaming the binlog.
    startup_cpu: Option<f64>,
    /// CPU seconds when the drain was over.
    cpu: Option<f64>,
}

/// Drains the backlog once into a new topic: the tailer (under `wrapper`,
/// if any) started on the replica at `start` and watched until its
/// checkpoint covers `last`, then stopped.
fn drain_once(
    db: &TestDb,
    start: &str,
    name: &str,
    wrapper: &[&str],
    last: Gtid,
) -> (String, TailerSetup, Drain, ExitStatus) {
    let topic = unique_name(name);
    let setup = TailerSetup::new(
        test_support::here!(),
        name,
        &[Tailed::orders(db, &topic)],
        start,
        "",
    );
    let began = Instant::now();
    let mut tailer = setup.spawn_wrapped(wrapper, &[]);
    let drain = watch_drain(&setup, &mut tailer, began, last);
    let status = tailer.terminate(Duration::from_secs(30));
    (topic, setup, drain, status)
}

/// One measured drain's figures.
struct Measured {
    /// Events per second, process start to the last checkpoint.
    rate: f64,
    /// CPU seconds per event after the tailer started streaming.
    streaming: Option<f64>,
    /// CPU seconds per event, start-up included.
    total: Option<f64>,
    peak_kib: u64,
}

impl Measured {
    fn new(drain: &Drain, published: u64) -> Self {
        let events = published.max(1) as f64;
        Measured {
            rate: published as f64 / drain.took.as_secs_f64(),
            streaming: drain
                .cpu
                .zip(drain.startup_cpu)
                .map(|(cpu, startup)| (cpu - startup) / events),
            total: drain.cpu.map(|cpu| cpu / events),
            peak_kib: drain.peak_kib,
        }
    }
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median of the known values; `None` when none is known.
fn median_opt(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let known: Vec<f64> = values.flatten().collect();
    (!known.is_empty()).then(|| median(known.into_iter()))
}

/// Seconds as microseconds for the report.
fn micros(seconds: Option<f64>) -> String {
    seconds.map_or_else(
        || "n/a (no /proc/<pid>/stat)".to_owned(),
        |s| format!("{:.1} µs", s * 1e6),
    )
}

/// Watches `tailer`, started at `began`, until `setup`'s checkpoint covers
/// `last`, sampling its peak RSS and CPU time; fails with its log after 600
/// s or if it exits.
fn watch_drain(setup: &TailerSetup, tailer: &mut Tailer, began: Instant, last: Gtid) -> Drain {
    let pid = tailer.child.id();
    let mut peak_kib = 0;
    let mut startup_cpu = None;
    let deadline = began + Duration::from_secs(600);
    let took = loop {
        if let Some(kib) = status_kib(pid, "VmHWM") {
            peak_kib = peak_kib.max(kib);
        }
        if startup_cpu.is_none() && tailer.log().contains("streaming the binlog") {
            startup_cpu = cpu_seconds(pid);
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
    };
    if let Some(kib) = status_kib(pid, "VmHWM") {
        peak_kib = peak_kib.max(kib);
    }
    Drain {
        took,
        peak_kib,
        startup_cpu,
        cpu: cpu_seconds(pid),
    }
}

/// Transactions per second of the raw binlog stream: the replica's binlog
/// from `file`:`offset` to its end, read remotely by `mariadb-binlog --raw`
/// of the services' MariaDB version (the server's work and the wire, no
/// decoding), `transactions` being what that range holds.
fn raw_stream_rate(dir: &Path, file: &str, offset: u64, transactions: u64) -> Option<f64> {
    let out = dir.join("raw-binlog");
    std::fs::create_dir_all(&out).ok()?;
    let (user, password) = User::Admin.credentials();
    let began = Instant::now();
    let result = test_support::mariadb_command(dir, "mariadb-binlog")
        .args(["--read-from-remote-server", "--raw", "--to-last-log"])
        .arg("--host=127.0.0.1")
        .arg(format!("--port={}", Server::Replica.port()))
        .arg(format!("--user={user}"))
        .arg(format!("--password={password}"))
        .arg(format!("--start-position={offset}"))
        .arg(format!("--result-file={}/", out.display()))
        .arg(file)
        .stdout(Stdio::null())
        .output();
    let secs = began.elapsed().as_secs_f64();
    match result {
        Ok(o) if o.status.success() => {
            let bytes: u64 = std::fs::read_dir(&out)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            println!(
                "  raw stream: {:.1} MiB of binlog in {secs:.2} s",
                bytes as f64 / (1024.0 * 1024.0)
            );
            let _ = std::fs::remove_dir_all(&out);
            Some(transactions as f64 / secs)
        }
        Ok(o) => {
            println!(
                "  mariadb-binlog failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!("  mariadb-binlog could not start: {e}");
            None
        }
    }
}

/// One payload per line (the events are JSON without raw newlines), the
/// file `ProducerPerformance --payload-file` takes.
fn write_payloads<'a>(path: &Path, payloads: impl Iterator<Item = &'a [u8]>) {
    let mut text = Vec::new();
    for p in payloads {
        assert!(!p.contains(&b'\n'), "a payload holds a newline");
        text.extend_from_slice(p);
        text.push(b'\n');
    }
    std::fs::write(path, text).expect("write payloads");
}

/// Records per second Kafka's Java `ProducerPerformance` reaches sending
/// `records` of the tailer's payloads to a fresh topic with the tailer's
/// partition count and its producer settings (acks=all, idempotence, lz4,
/// linger 5 ms): what the broker and a well-tuned client manage here.
async fn producer_ceiling(payloads: &Path, records: u64) -> Option<f64> {
    let libs = std::env::var_os("BT_KAFKA_LIBS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/kafka-libs"));
    let topic = unique_name("bench-ceiling");
    test_support::kafka::create_topic(&topic, 3).await;
    let output = Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg("org.apache.kafka.tools.ProducerPerformance")
        .args(["--topic", &topic])
        .args(["--num-records", &records.to_string()])
        .args(["--throughput", "-1"])
        .arg("--payload-file")
        .arg(payloads)
        .arg("--producer-props")
        .arg(format!("bootstrap.servers={}", kafka_bootstrap()))
        .args([
            "acks=all",
            "enable.idempotence=true",
            "compression.type=lz4",
            "linger.ms=5",
        ])
        .stderr(Stdio::null())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            println!("  ProducerPerformance could not start (java): {e}");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The summary: "N records sent, R records/sec (M MB/sec), …".
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(&format!("{records} records sent")));
    let rate = summary
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|f| f.split_whitespace().next())
        .and_then(|r| r.parse().ok());
    if rate.is_none() {
        println!(
            "  ProducerPerformance gave no summary ({}):\n{stdout}",
            output.status
        );
    }
    rate
}
