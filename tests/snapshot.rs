//! Snapshots against the real services: the rows that exist published once
//! each, handed over to the stream at the read view's position with no gap
//! and no repeat while writers keep inserting, also across a SIGKILL in the
//! middle; exact values for every column type; a `--topic` backfill that
//! leaves the live checkpoint alone.
//!
//! Sizes: `SNAPSHOT_ORDERS` existing orders (default 20,000; the issue's
//! figure is 200,000) and `SNAPSHOT_WRITERS` concurrent writers (default 8).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binlog_tailer::checkpoint::Store;
use binlog_tailer::position::Gtid;
use binlog_tailer::snapshot::State;
use mysql_async::prelude::Queryable;
use test_support::process::status_kib;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, wait_for_replica, Consumed, Tailed, TailerSetup,
    TestDb,
};
use test_support::{connect, unique_name, Server, User};

fn size(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Inserts orders 1..=count into `db` before any tailer runs.
async fn existing_orders(db: &TestDb, count: u64) {
    let mut primary = connect(Server::Primary, User::Admin).await;
    let batch = 50_000u64;
    primary
        .query_drop(format!(
            "SET SESSION max_recursive_iterations = {}",
            batch + 1
        ))
        .await
        .expect("session");
    let mut first = 1;
    while first <= count {
        let n = batch.min(count - first + 1);
        primary
            .query_drop(db.insert_many(first, n))
            .await
            .expect("insert existing orders");
        first += n;
    }
    wait_for_replica(&mut primary).await;
}

/// `writers` connections inserting one order per transaction (ids from
/// 10,000,000 + w × 1,000,000) until `stop`; each returns its ids.
fn start_writers(
    db: &TestDb,
    writers: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    (0..writers)
        .map(|w| {
            let name = db.name.clone();
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let mut primary = connect(Server::Primary, User::Admin).await;
                let mut ids = Vec::new();
                let mut id = 10_000_000 + w * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    primary
                        .query_drop(format!(
                            "INSERT INTO {name}.orders (id, customer_id, amount, currency, items, created_at) \
                             VALUES ({id}, {w}, '1.00', 'EUR', '[]', NOW(6))"
                        ))
                        .await
                        .expect("insert");
                    ids.push(id);
                    id += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ids
            })
        })
        .collect()
}

/// One more order after everything else: when the checkpoint covers it,
/// every order before it is published.
async fn marker(db: &TestDb, id: u64) -> Gtid {
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
             VALUES ({id}, 1, '1.00', 'EUR', '[]', NOW(6))",
            db.name
        ))
        .await
        .expect("marker insert");
    last_gtid(&mut primary).await
}

/// The snapshot progress `run` saved, if any.
fn live_snapshot(setup: &TailerSetup) -> Option<State> {
    let store = Store::open_existing(&setup.state).ok()??;
    let text = store.snapshot_state("live").ok()??;
    serde_json::from_str(&text).ok()
}

/// Every id once, every event valid against schemas/order_created.v1.json,
/// and how many came from the snapshot.
fn each_once(messages: &[Consumed], expected: &[u64]) -> (usize, usize) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/order_created.v1.json"),
        )
        .expect("schema file"),
    )
    .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for m in messages {
        let errors: Vec<String> = validator
            .iter_errors(&m.payload)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", m.payload);
    }
    let mut by_id: BTreeMap<u64, Vec<&Consumed>> = BTreeMap::new();
    for m in messages {
        by_id
            .entry(m.payload["data"]["id"].as_u64().expect("id"))
            .or_default()
            .push(m);
    }
    let repeated: Vec<(u64, Vec<String>)> = by_id
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| (*k, v.iter().map(|m| m.payload["id"].to_string()).collect()))
        .take(10)
        .collect();
    assert!(repeated.is_empty(), "orders published twice: {repeated:?}");
    let got: Vec<u64> = by_id.keys().copied().collect();
    let mut want = expected.to_vec();
    want.sort_unstable();
    let missing: Vec<u64> = want
        .iter()
        .filter(|id| !by_id.contains_key(id))
        .take(10)
        .copied()
        .collect();
    assert!(missing.is_empty(), "orders never published: {missing:?}…");
    assert_eq!(got, want, "exactly the committed orders");
    let snapshot = messages
        .iter()
        .filter(|m| m.headers.contains_key("binlog.snapshot"))
        .count();
    for m in messages {
        let marked = m.headers.contains_key("binlog.snapshot");
        assert_eq!(
            marked,
            m.payload.get("binlogsnapshot").is_some(),
            "header and extension agree: {}",
            m.payload
        );
        if marked {
            assert!(
                m.payload["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("snapshot:")),
                "{}",
                m.payload["id"]
            );
            assert_eq!(
                m.headers.get("binlog.snapshot.table").map(String::as_str),
                m.payload["source"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("/mariadb/test/"))
                    .map(|s| s.replace('/', "."))
                    .as_deref()
            );
        }
    }
    (snapshot, messages.len() - snapshot)
}

/// Existing orders snapshotted (from `server`) while writers insert: every
/// order exactly once in the topic, from the snapshot or from the stream,
/// never both.
/// With `kill`, the tailer is SIGKILLed in the middle of the snapshot and
/// started again.
/// How the first tailer is stopped in the middle of the snapshot, if it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    No,
    Kill,
    Term,
}

async fn snapshot_while_writing(prefix: &str, server: Server, stop_midway: Stop) {
    let kill = stop_midway != Stop::No;
    let existing = size("SNAPSHOT_ORDERS", 20_000);
    let writers = size("SNAPSHOT_WRITERS", 8);
    let db = TestDb::create(prefix).await;
    existing_orders(&db, existing).await;
    let topic = unique_name(prefix);
    let chunk = (existing / 40).max(100);
    let setup = TailerSetup::new(
        test_support::here!(),
        prefix,
        &[Tailed::orders(&db, &topic)],
        "snapshot",
        &format!("\n[snapshot]\nchunk_rows = {chunk}\n"),
    )
    .with_source_port(server.port());
    let stop = Arc::new(AtomicBool::new(false));
    let handles = start_writers(&db, writers, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut tailer = setup.spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    if kill {
        // Killed once some chunks are acknowledged, before the end.
        loop {
            if let Some(state) = live_snapshot(&setup) {
                assert!(
                    !state.done,
                    "the snapshot ended before the kill; log:\n{}",
                    tailer.log()
                );
                if state.rows > 0 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no chunk acknowledged; log:\n{}",
                tailer.log()
            );
            if let Some(status) = tailer.child.try_wait().expect("try_wait") {
                panic!("the tailer exited ({status}); log:\n{}", tailer.log());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let at_kill = live_snapshot(&setup).map_or(0, |s| s.rows);
        if stop_midway == Stop::Term {
            let status = tailer.terminate(Duration::from_secs(30));
            assert_eq!(status.code(), Some(0), "SIGTERM mid-snapshot exits 0");
            let state = live_snapshot(&setup).expect("progress");
            assert!(!state.done, "stopped before the end");
            println!(
                "stopped (SIGTERM) with {at_kill} rows acknowledged, {} when it exited",
                state.rows
            );
        } else {
            tailer.kill();
            println!("killed with {at_kill} rows acknowledged");
        }
        assert!(
            setup.checkpoint().is_none(),
            "no live checkpoint before the snapshot ends"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        tailer = setup.spawn();
    }
    let mut peak_kib = 0;
    while setup.checkpoint().is_none() {
        if let Some(kib) = status_kib(tailer.child.id(), "VmHWM") {
            peak_kib = peak_kib.max(kib);
        }
        assert!(
            Instant::now() < deadline,
            "the snapshot did not end; log:\n{}",
            tailer.log()
        );
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!("the tailer exited ({status}); log:\n{}", tailer.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snapshot_took = started.elapsed();
    // The stream takes over while the writers go on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut expected: Vec<u64> = (1..=existing).collect();
    for handle in handles {
        expected.extend(handle.await.expect("writer"));
    }
    expected.push(99_999_999);
    let last = marker(&db, 99_999_999).await;
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    let state = live_snapshot(&setup).expect("snapshot progress");
    assert!(state.done);
    assert_eq!(
        state.views.len(),
        if kill { 2 } else { 1 },
        "read views: {:?}",
        state.views
    );

    let messages = consume_all(&topic);
    let (from_snapshot, from_stream) = each_once(&messages, &expected);
    println!(
        "{existing} existing orders, {writers} writers ({} orders written meanwhile); snapshot \
         (and hand-over) took {snapshot_took:?}; {from_snapshot} records from the snapshot, \
         {from_stream} from the stream; peak RSS of the tailer that finished the snapshot \
         {:.1} MiB",
        expected.len() as u64 - existing,
        peak_kib as f64 / 1024.0
    );
    // Bounded by the chunk and the records in flight, not by the table.
    assert!(peak_kib < 96 * 1024, "peak RSS {peak_kib} KiB");
    assert!(
        from_snapshot as u64 >= existing,
        "every existing order is in the snapshot"
    );
    assert!(
        from_stream > 0,
        "the stream published the orders written after the view"
    );
    assert!(log.contains("snapshot done; streaming starts at its position"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_has_every_order_exactly_once() {
    // From the primary: the read view's position is in its own binlog.
    snapshot_while_writing("snap", Server::Primary, Stop::No).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_killed_midway_resumes_exactly_once() {
    // From the replica: the position is in the replica's binlog, its GTIDs
    // the primary's.
    snapshot_while_writing("snapkill", Server::Replica, Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_stopped_by_sigterm_resumes_exactly_once() {
    snapshot_while_writing("snapterm", Server::Replica, Stop::Term).await;
}

/// Every column type: a snapshot row carries exactly the values its insert
/// event carries (the expected JSON of crates/test-support/src/alltypes.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_rows_carry_exact_values() {
    use test_support::alltypes;
    let db = TestDb::create("snaptypes").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(alltypes::CREATE_TABLE.replace("{db}", &db.name))
        .await
        .expect("create alltypes");
    primary
        .query_drop(format!(
            "SET time_zone = '+00:00'; {}",
            alltypes::insert(&db.name)
        ))
        .await
        .expect("insert the rows");
    wait_for_replica(&mut primary).await;
    let topic = unique_name("snaptypes");
    let setup = TailerSetup::new(
        test_support::here!(),
        "snaptypes",
        &[Tailed {
            table: db.table("alltypes"),
            topic: topic.clone(),
            event_type: "test.alltypes.created.v1".into(),
        }],
        "latest",
        "",
    );
    let (code, out, err) = setup.command(&["snapshot"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let messages = consume_all(&topic);
    let expected = alltypes::rows();
    assert_eq!(messages.len(), expected.len(), "one event per row");
    for (_, want) in &expected {
        let id = want["id"].as_u64().expect("id");
        let got = messages
            .iter()
            .find(|m| m.payload["data"]["id"] == serde_json::json!(id))
            .unwrap_or_else(|| panic!("no event for row {id}"));
        assert!(got.headers.contains_key("binlog.snapshot"));
        let got = &got.payload["data"];
        let wrong: Vec<String> = want
            .as_object()
            .expect("object")
            .iter()
            .filter(|(column, value)| got[column.as_str()] != **value)
            .map(|(column, value)| format!("  {column}: got {}, want {value}", got[column]))
            .collect();
        assert_eq!(
            got.as_object().map(|o| o.len()),
            want.as_object().map(|o| o.len()),
            "row {id}: column count"
        );
        assert!(wrong.is_empty(), "row {id}:\n{}", wrong.join("\n"));
    }
}

/// `snapshot --topic T` publishes every row to T (resuming nothing, asking
/// nothing of the live store) and leaves the live checkpoint as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_backfill_leaves_the_live_checkpoint_untouched() {
    let db = TestDb::create("snapfill").await;
    let topic = unique_name("snapfill-live");
    let backfill = unique_name("snapfill-new");
    let start = replica_gtid_state().await;
    existing_orders(&db, 500).await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "snapfill",
        &[Tailed::orders(&db, &topic)],
        &start,
        "\n[snapshot]\nchunk_rows = 64\n",
    );
    let mut tailer = setup.spawn();
    let last = marker(&db, 501).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let before = setup.checkpoint().expect("live checkpoint");

    let (code, out, err) = setup.command(&["snapshot", "--topic", &backfill]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let after = setup.checkpoint().expect("live checkpoint");
    assert_eq!(before, after, "the live checkpoint is untouched");

    let expected: Vec<u64> = (1..=501).collect();
    let messages = consume_all(&backfill);
    let (from_snapshot, from_stream) = each_once(&messages, &expected);
    assert_eq!((from_snapshot, from_stream), (501, 0));
    assert_eq!(
        consume_all(&topic).len(),
        501,
        "the live topic got nothing more"
    );

    // Run again: a new snapshot (the last one finished), a new id.
    let (code, _, err) = setup.command(&["snapshot", "--topic", &backfill, "--where", "id <= 10"]);
    assert_eq!(code, 0, "stderr:\n{err}");
    let messages = consume_all(&backfill);
    assert_eq!(messages.len(), 511, "--where limits the rows");
}

/// A snapshot whose position the server purged before streaming could start
/// is a definite error naming the position; nothing streams, and no live
/// checkpoint is written. On a server of the test's own (it purges binlogs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_snapshot_position_is_a_definite_error() {
    use test_support::scratch::{ScratchServer, ROW_LOGGING};
    let server = ScratchServer::start(test_support::here!(), ROW_LOGGING).await;
    let db = TestDb {
        name: "shop".into(),
    };
    let mut root = server.root().await;
    root.query_drop(format!(
        "SET SESSION max_recursive_iterations = 20001; {}",
        db.insert_many(1, 20_000)
    ))
    .await
    .expect("existing orders");
    let topic = unique_name("snappurged");
    let setup = TailerSetup::new(
        test_support::here!(),
        "snappurged",
        &[Tailed::orders(&db, &topic)],
        "snapshot",
        "\n[snapshot]\nchunk_rows = 100\n",
    )
    .with_source_port(server.port);
    let mut tailer = setup.spawn();
    // Held still in the middle of the snapshot while the server moves to a
    // new binlog and purges the one holding the read view's position.
    let deadline = Instant::now() + Duration::from_secs(60);
    while live_snapshot(&setup).is_none_or(|s| s.rows == 0) {
        assert!(
            Instant::now() < deadline,
            "no chunk acknowledged; log:\n{}",
            tailer.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tailer.signal("STOP");
    let state = live_snapshot(&setup).expect("progress");
    assert!(!state.done, "the snapshot ended before it could be held");
    // The file stays until InnoDB has made its transactions durable (the
    // server's binlog checkpoint): flush and purge until it is gone.
    let purge_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        root.query_drop("FLUSH BINARY LOGS").await.expect("flush");
        let current: String = root
            .query_first::<mysql_async::Row, _>("SHOW MASTER STATUS")
            .await
            .expect("status")
            .and_then(|r| r.get(0))
            .expect("file");
        root.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
            .await
            .expect("purge");
        let files: Vec<String> = root
            .query::<mysql_async::Row, _>("SHOW BINARY LOGS")
            .await
            .expect("SHOW BINARY LOGS")
            .into_iter()
            .filter_map(|r| r.get(0))
            .collect();
        if files == [current.clone()] {
            break;
        }
        let warnings: Vec<mysql_async::Row> = root.query("SHOW WARNINGS").await.expect("warnings");
        assert!(
            Instant::now() < purge_deadline,
            "the old binlogs stay: {files:?}; {warnings:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tailer.signal("CONT");
    let status = tailer.wait(Duration::from_secs(60));
    let log = tailer.log();
    assert_eq!(status.code(), Some(1), "exit 1; log:\n{log}");
    let position = &state.views[0].position;
    assert!(
        log.contains(&format!(
            "the snapshot's position {position} is no longer in the server's binlog"
        )),
        "the error names the position; log:\n{log}"
    );
    assert!(
        setup.checkpoint().is_none(),
        "no live checkpoint was written"
    );
}

/// A table without a one-column integer primary key cannot be read in key
/// ranges: `check` fails for start.from = "snapshot", and `snapshot`
/// stops, each naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_an_integer_key_is_refused_naming_it() {
    let db = TestDb::create("snapkey").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "CREATE TABLE {}.pairs (a INT NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b)); \
             INSERT INTO {0}.pairs VALUES (1, 1)",
            db.name
        ))
        .await
        .expect("create");
    wait_for_replica(&mut primary).await;
    let tables = [Tailed {
        table: db.table("pairs"),
        topic: unique_name("snapkey"),
        event_type: "test.pair.created.v1".into(),
    }];
    let setup = TailerSetup::new(test_support::here!(), "snapkey", &tables, "snapshot", "");
    let (code, out, _) = setup.command(&["check"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("primary key (a, b)"), "{out}");
    assert!(out.contains("one-column integer primary key"), "{out}");

    let setup = TailerSetup::new(test_support::here!(), "snapkey", &tables, "latest", "");
    let (code, _, err) = setup.command(&["snapshot"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("one-column integer primary key; this table's primary key is (a, b)"),
        "{err}"
    );
}
