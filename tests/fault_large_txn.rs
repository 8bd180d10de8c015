//! One transaction inserting 200,000 orders: every one arrives exactly once,
//! and the tailer streams it through bounded memory (its peak RSS stays far
//! below what holding the transaction would take).
//!
//! Its own test binary: the transaction is large enough to slow every other
//! reader of the shared servers for a while.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;
use test_support::faults::{expected_data, order_values};
use test_support::process::status_kib;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_transaction_of_200k_orders_arrives_once_in_bounded_memory() {
    const ORDERS: u64 = 200_000;
    const PER_STATEMENT: u64 = 5_000;
    const DEADLINE: Duration = Duration::from_secs(300);
    // The bound. Streaming, the tailer holds at most kafka.max_in_flight
    // (5,000 by default; 20,000 when this was measured) unacknowledged
    // records plus a 1,024-item channel: at ~1.1 KiB per record (a ~570-byte
    // payload, the key, eight headers, librdkafka's copy and its per-message
    // overhead) that was ~22 MiB on top of the debug build's ~25 MiB baseline. The tailer holds a transaction's records
    // only up to source::txn's HOLD_LIMIT_BYTES (8 MiB as it counts them);
    // past that it reads the transaction to its end and then again,
    // streaming (measured: 26 MiB before the transaction, 43 MiB peak).
    // Holding the whole transaction would take its 108 MiB of payloads
    // alone on top of the baseline (> 130 MiB). 100 MiB still fails a
    // tailer that buffers the transaction.
    const PEAK_RSS_BOUND_MIB: u64 = 100;

    let started = Instant::now();
    let db = TestDb::create("large_txn").await;
    let topic = unique_name("large_txn");
    let setup = TailerSetup::new(
        test_support::here!(),
        "large_txn",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    );
    let mut tailer = setup.spawn();
    let pid = tailer.child.id();

    // Peak RSS, sampled until the tailer is stopped.
    let sampling = Arc::new(AtomicBool::new(true));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, max_rss) = (Arc::clone(&sampling), Arc::clone(&max_rss));
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    max_rss.fetch_max(kib, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // The tailer is streaming (preflight done, connected) before the big one.
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "INSERT INTO {}.orders (id, customer_id, amount, currency, status, items, created_at) VALUES {}",
            db.name,
            order_values(ORDERS + 1)
        ))
        .await
        .expect("insert");
    let warm = last_gtid(&mut primary).await;
    setup.wait_checkpoint(warm, Duration::from_secs(60), Some(&mut tailer));
    let baseline_kib = status_kib(pid, "VmRSS").unwrap_or(0);

    let max_packet: u64 = primary
        .query_first("SELECT @@GLOBAL.max_allowed_packet")
        .await
        .expect("max_allowed_packet")
        .expect("a value");
    let insert_started = Instant::now();
    let mut largest_statement = 0;
    let gtid = tokio::time::timeout(DEADLINE, async {
        let mut tx = primary
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .expect("begin");
        let mut id = 1;
        while id <= ORDERS {
            let end = (id + PER_STATEMENT).min(ORDERS + 1);
            let values: Vec<String> = (id..end).map(order_values).collect();
            let sql = format!(
                "INSERT INTO {}.orders (id, customer_id, amount, currency, status, items, created_at) VALUES {}",
                db.name,
                values.join(", ")
            );
            largest_statement = largest_statement.max(sql.len() as u64);
            assert!(
                (sql.len() as u64) < max_packet,
                "a statement of {} bytes does not fit max_allowed_packet {max_packet}",
                sql.len()
            );
            tx.query_drop(sql).await.expect("insert");
            id = end;
        }
        tx.commit().await.expect("commit");
        last_gtid(&mut primary).await
    })
    .await
    .expect("the transaction commits within the deadline");
    let committed_after = insert_started.elapsed();

    let remaining = DEADLINE.saturating_sub(started.elapsed());
    setup.wait_checkpoint(gtid, remaining, Some(&mut tailer));
    let streamed_after = insert_started.elapsed();
    let peak_kib = status_kib(pid, "VmHWM").expect("VmHWM of the running tailer");
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("sampler");
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));
    let cp = setup.checkpoint().expect("a checkpoint");

    let messages = consume_all(&topic);
    let mut by_id: BTreeMap<u64, u32> = BTreeMap::new();
    let mut rows = BTreeSet::new();
    let mut event_ids = BTreeSet::new();
    let mut payload_bytes = 0;
    let txn = gtid.to_string();
    for m in &messages {
        let id = m.payload["data"]["id"].as_u64().expect("data.id");
        *by_id.entry(id).or_default() += 1;
        event_ids.insert(m.payload["id"].as_str().expect("id").to_owned());
        if id <= ORDERS {
            assert_eq!(
                m.payload["binloggtid"],
                json!(txn),
                "order {id} is in the one transaction"
            );
            rows.insert(m.payload["binlogrow"].as_u64().expect("binlogrow"));
            payload_bytes += m.raw_payload.len();
        }
        assert_eq!(m.payload["data"], expected_data(id), "order {id}");
    }
    let missing: Vec<u64> = (1..=ORDERS + 1)
        .filter(|id| !by_id.contains_key(id))
        .collect();
    let repeated: Vec<u64> = by_id
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&id, _)| id)
        .collect();

    println!("one transaction of {ORDERS} orders ({txn}):");
    println!(
        "  {} statements of {PER_STATEMENT} rows, the largest {:.2} MiB (max_allowed_packet {} MiB)",
        ORDERS.div_ceil(PER_STATEMENT),
        largest_statement as f64 / 1048576.0,
        max_packet / 1048576
    );
    println!(
        "  committed on the primary after {:.1} s",
        committed_after.as_secs_f64()
    );
    println!(
        "  all acknowledged and checkpointed after {:.1} s ({:.0} events/s from the insert's start)",
        streamed_after.as_secs_f64(),
        ORDERS as f64 / streamed_after.as_secs_f64()
    );
    println!(
        "  tailer RSS: {:.1} MiB before the transaction, peak {:.1} MiB (VmHWM; sampled VmRSS max {:.1} MiB), bound {PEAK_RSS_BOUND_MIB} MiB",
        baseline_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        max_rss.load(Ordering::SeqCst) as f64 / 1024.0
    );
    println!(
        "  payloads: {:.1} MiB in all, {:.0} bytes each on average",
        payload_bytes as f64 / 1048576.0,
        payload_bytes as f64 / ORDERS as f64
    );
    println!(
        "  messages: {} for {} orders; {} repeated, {} missing; checkpoint {} ({} events)",
        messages.len(),
        ORDERS + 1,
        repeated.len(),
        missing.len(),
        cp.position,
        cp.events_published
    );

    assert!(
        missing.is_empty(),
        "orders lost: {} (first {:?})",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        repeated.is_empty(),
        "orders published more than once: {} (first {:?})",
        repeated.len(),
        &repeated[..repeated.len().min(20)]
    );
    assert_eq!(messages.len() as u64, ORDERS + 1, "one message per order");
    assert_eq!(event_ids.len() as u64, ORDERS + 1, "event ids are unique");
    assert_eq!(
        rows,
        (0..ORDERS).collect::<BTreeSet<_>>(),
        "row indexes 0..{ORDERS} in the transaction"
    );
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; log:\n{log}");
    assert!(
        peak_kib < PEAK_RSS_BOUND_MIB * 1024,
        "the tailer's peak RSS {:.1} MiB exceeds {PEAK_RSS_BOUND_MIB} MiB streaming one transaction",
        peak_kib as f64 / 1024.0
    );
}
