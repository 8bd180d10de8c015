//! Benchmark: commit → broker append latency at a steady write rate.
//!
//! Run with the services up: `make bench` (or `cargo bench --bench latency`).
//! `LATENCY_RATE` sets orders per second (default 2000), `LATENCY_SECONDS`
//! how long (default 60), `LATENCY_SOURCE` `replica` (default), `primary`
//! or `both`, `LATENCY_LINGER` the tailer's `kafka.linger` (default its own
//! default, 5ms), to see what another setting does to the tail.
//!
//! 1. Creates a topic whose messages carry the broker's append time
//!    (`message.timestamp.type=LogAppendTime`) and starts the release tailer
//!    on it with its default producer settings.
//! 2. Writes single-row order transactions on the primary at the set rate
//!    (8 connections, each on a fixed schedule); every row's `created_at`
//!    is `UTC_TIMESTAMP(6)`, evaluated when its INSERT runs, just before
//!    its commit. The binlog keeps commit times in whole seconds only; the
//!    column gives microseconds, and because it is taken before the commit
//!    the figure includes the commit itself (an upper bound).
//! 3. Reads the topic back and prints, over every order, append time minus
//!    `created_at`: p50, p95, p99 and max (the append time has millisecond
//!    resolution). Beside it, the same from the time each INSERT's client
//!    got the server's OK, a lower bound (negative when the broker appended
//!    the event before the OK arrived), and the INSERTs' round trips: where
//!    the bounds part in the tail, the database's commit stalled. Also the
//!    tailer's CPU time from the first write until every order was
//!    acknowledged, per event: at a steady rate each event wakes its
//!    threads, which a backlog drain does not show.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use test_support::kafka::{create_topic_with, read_topic};
use test_support::process::cpu_seconds;
use test_support::tailer::{replica_gtid_state, Tailed, TailerSetup, TestDb};
use test_support::{connect, unique_name, Server, User};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency benchmark: run it with `make bench` (cargo bench --bench latency)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let source = std::env::var("LATENCY_SOURCE").unwrap_or_else(|_| "replica".into());
    let sources: &[Server] = match source.as_str() {
        "primary" => &[Server::Primary],
        "both" => &[Server::Primary, Server::Replica],
        _ => &[Server::Replica],
    };
    for &server in sources {
        runtime.block_on(bench(server));
    }
}

/// Milliseconds since the Unix epoch of a `YYYY-MM-DD HH:MM:SS.ffffff`
/// UTC text.
fn utc_millis(text: &str) -> Option<f64> {
    let t = time::PrimitiveDateTime::parse(
        text,
        time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]"
        ),
    )
    .ok()?;
    Some(t.assume_utc().unix_timestamp_nanos() as f64 / 1e6)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn bench(server: Server) {
    let rate = env_or("LATENCY_RATE", 2000).max(1);
    let seconds = env_or("LATENCY_SECONDS", 60).max(1);
    let writers = 8u64;
    let orders = rate * seconds;
    let db = TestDb::create("latency").await;
    let topic = unique_name("latency");
    create_topic_with(&topic, 3, &[("message.timestamp.type", "LogAppendTime")]).await;

    let start = match server {
        Server::Replica => replica_gtid_state().await,
        Server::Primary => {
            let mut primary = connect(Server::Primary, User::Admin).await;
            primary
                .query_first::<String, _>("SELECT @@gtid_binlog_pos")
                .await
                .expect("gtid_binlog_pos")
                .unwrap_or_default()
        }
    };
    let setup = TailerSetup::new(
        test_support::here!(),
        "latency",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    )
    .with_source_port(server.port());
    // The tailer's default linger, not the tests' shorter one, unless
    // LATENCY_LINGER asks for another.
    let linger = std::env::var("LATENCY_LINGER").unwrap_or_else(|_| "5ms".to_owned());
    println!("  kafka.linger = {linger}");
    let tailer = setup.spawn_with(&["--set", &format!("kafka.linger={linger}")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tailer.log().contains("streaming the binlog") {
        assert!(
            Instant::now() < deadline,
            "tailer did not start; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let name = match server {
        Server::Primary => "primary",
        Server::Replica => "replica",
    };
    println!("latency, tailer on the {name}: {rate} orders/s for {seconds} s ({orders} orders, {writers} connections)...");
    let pid = tailer.child.id();
    let cpu_before = cpu_seconds(pid);
    let began = Instant::now();
    let per_writer = orders / writers;
    let period = Duration::from_secs_f64(writers as f64 / rate as f64);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db_name = db.name.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(Server::Primary, User::Admin).await;
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut behind = 0u64;
            // Per order: its id, when the server's OK for it arrived (ms
            // since the epoch), and the INSERT's round trip (ms).
            let mut acked = Vec::with_capacity(per_writer as usize);
            for i in 0..per_writer {
                let t = ticks.tick().await;
                if t.elapsed() > period {
                    behind += 1;
                }
                let id = w * per_writer + i + 1;
                let sent = Instant::now();
                conn.exec_drop(
                    format!(
                        "INSERT INTO {db_name}.orders (id, customer_id, amount, currency, items, created_at) \
                         VALUES (?, ?, '19.99', 'EUR', '[{{\"sku\":\"latency\",\"qty\":1}}]', UTC_TIMESTAMP(6))"
                    ),
                    (id, id % 1000),
                )
                .await
                .expect("insert");
                acked.push((id, now_millis(), sent.elapsed().as_secs_f64() * 1e3));
            }
            (behind, acked)
        }));
    }
    let mut late = 0;
    let mut acked_at = std::collections::HashMap::with_capacity(orders as usize);
    let mut round_trips = Vec::with_capacity(orders as usize);
    for task in tasks {
        let (behind, acked) = task.await.expect("writer");
        late += behind;
        for (id, at, took) in acked {
            acked_at.insert(id, at);
            round_trips.push(took);
        }
    }
    let wrote = began.elapsed().as_secs_f64();
    println!(
        "  written in {wrote:.1} s ({:.0} orders/s; {late} inserts started late)",
        orders as f64 / wrote
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let published = setup.checkpoint().map_or(0, |c| c.events_published);
        if published >= orders {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{published} of {orders} published after 120 s; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let streamed = began.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let status = tailer.terminate(Duration::from_secs(30));
    match cpu {
        Some(cpu) => println!(
            "  tailer CPU over those {streamed:.1} s: {cpu:.2} s ({:.0} % of one core), {:.0} µs per event",
            cpu * 100.0 / streamed,
            cpu * 1e6 / orders as f64
        ),
        None => println!("  tailer CPU: could not read its /proc/<pid>/stat"),
    }

    let messages = read_topic(&topic);
    assert_eq!(messages.len() as u64, orders, "one event per order");
    // Each row's commit lies between its created_at (taken as its INSERT
    // ran) and the OK its client got: the first gives an upper bound of
    // commit -> append, the second a lower one. Where the two differ in
    // the tail, the database's commit stalled, not the tailer.
    let mut upper = Vec::with_capacity(messages.len());
    let mut lower = Vec::with_capacity(messages.len());
    for m in &messages {
        let payload: serde_json::Value =
            serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).expect("JSON");
        let created = payload["data"]["created_at"]
            .as_str()
            .and_then(utc_millis)
            .expect("created_at");
        let id = payload["data"]["id"].as_u64().expect("data.id");
        let appended = m.timestamp_ms.expect("a LogAppendTime timestamp") as f64;
        upper.push(appended - created);
        lower.push(
            appended
                - acked_at
                    .get(&id)
                    .copied()
                    .expect("an order the bench wrote"),
        );
    }
    println!(
        "  commit -> broker append over {} orders: {} (tailer {status})",
        upper.len(),
        quantiles(&mut upper)
    );
    println!(
        "    lower bound, from the OK each INSERT's client got: {}",
        quantiles(&mut lower)
    );
    println!(
        "    each INSERT's round trip (autocommit: its commit included): {}",
        quantiles(&mut round_trips)
    );
}

/// p50, p95, p99 and max of `values`, in ms.
fn quantiles(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(values, 50.0),
        percentile(values, 95.0),
        percentile(values, 99.0),
        values.last().copied().unwrap_or(0.0),
    )
}

/// Milliseconds since the Unix epoch, now.
fn now_millis() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}
