//! The tailer end to end: the real binary reading the real replica,
//! publishing to the real broker. Each test has its own database, topic and
//! state directory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::TxOpts;
use serde_json::{json, Value as Json};
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Consumed, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

fn order_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/order_created.v1.json"),
    )
    .expect("schema file");
    let schema: Json = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// An order as the test inserts it, and as its event's `data` must carry it.
#[derive(Debug, Clone)]
struct Order {
    id: u64,
    customer_id: u64,
    amount: &'static str,
    currency: &'static str,
    items: Json,
    created_at: String,
}

impl Order {
    fn new(id: u64) -> Order {
        const AMOUNTS: [&str; 5] = ["0.01", "19.99", "1234567890.00", "250.50", "0.00"];
        const CURRENCIES: [&str; 3] = ["EUR", "USD", "JPY"];
        Order {
            id,
            customer_id: id % 7 + 1,
            amount: AMOUNTS[(id % 5) as usize],
            currency: CURRENCIES[(id % 3) as usize],
            items: json!([{"sku": format!("sku-{id}"), "qty": id % 4 + 1, "note": "ünïcødé ✓"}]),
            created_at: format!(
                "2026-11-26 10:{:02}:{:02}.{:06}",
                id % 60,
                (id * 7) % 60,
                id * 1001 % 1_000_000
            ),
        }
    }

    fn values_sql(&self) -> String {
        format!(
            "({}, {}, '{}', '{}', 'created', '{}', '{}')",
            self.id,
            self.customer_id,
            self.amount,
            self.currency,
            self.items.to_string().replace('\'', "''"),
            self.created_at
        )
    }

    fn expected_data(&self) -> Json {
        json!({
            "id": self.id,
            "customer_id": self.customer_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": "created",
            "items": self.items,
            "created_at": self.created_at,
        })
    }
}

fn insert_sql(db: &TestDb, orders: &[Order]) -> String {
    let values: Vec<String> = orders.iter().map(Order::values_sql).collect();
    format!(
        "INSERT INTO {}.orders (id, customer_id, amount, currency, status, items, created_at) VALUES {}",
        db.name,
        values.join(", ")
    )
}

/// Checks every event against the schema and its envelope against its
/// headers and key; returns them by order id.
fn check_events(messages: &[Consumed], db: &TestDb) -> BTreeMap<u64, Consumed> {
    let schema = order_schema();
    let mut by_id = BTreeMap::new();
    let mut event_ids = BTreeSet::new();
    for m in messages {
        if let Err(e) = schema.validate(&m.payload) {
            panic!(
                "event does not match schemas/order_created.v1.json: {e}\n{}",
                m.payload
            );
        }
        let id = m.payload["data"]["id"].as_u64().expect("data.id");
        assert_eq!(m.key, id.to_string(), "key is the order id");
        assert_eq!(m.payload["subject"], json!(id.to_string()));
        assert_eq!(
            m.payload["source"],
            json!(format!("/mariadb/test/{}/orders", db.name))
        );
        let gtid = m.payload["binloggtid"].as_str().expect("binloggtid");
        let row = m.payload["binlogrow"].as_u64().expect("binlogrow");
        assert_eq!(m.payload["id"], json!(format!("{gtid}.{row}")));
        assert_eq!(m.headers.get("binlog.gtid").map(String::as_str), Some(gtid));
        assert_eq!(m.headers.get("binlog.row"), Some(&row.to_string()));
        assert_eq!(
            m.headers.get("content-type").map(String::as_str),
            Some("application/cloudevents+json; charset=UTF-8")
        );
        assert!(
            event_ids.insert(m.payload["id"].as_str().unwrap_or_default().to_owned()),
            "event id repeated: {}",
            m.payload["id"]
        );
        assert!(
            by_id.insert(id, m.clone()).is_none(),
            "order {id} published twice"
        );
    }
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_inserts_become_one_event_each_and_rollbacks_none() {
    let db = TestDb::create("orders").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "CREATE TABLE {}.audit (id INT PRIMARY KEY, note TEXT) ENGINE=InnoDB",
            db.name
        ))
        .await
        .expect("second table");
    let topic = unique_name("orders");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "orders",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let mut tailer = setup.spawn();

    let mut committed: Vec<Order> = Vec::new();
    let mut rolled_back: Vec<u64> = Vec::new();
    // Single-row transactions (autocommit).
    for id in 1..=20 {
        let order = Order::new(id);
        primary
            .query_drop(insert_sql(&db, std::slice::from_ref(&order)))
            .await
            .expect("insert");
        committed.push(order);
    }
    // One multi-row statement and a second statement in one transaction,
    // with a row for a table that is not tailed in between.
    {
        let batch: Vec<Order> = (21..=30).map(Order::new).collect();
        let mut tx = primary
            .start_transaction(TxOpts::default())
            .await
            .expect("begin");
        tx.query_drop(insert_sql(&db, &batch[..6]))
            .await
            .expect("insert");
        tx.query_drop(format!(
            "INSERT INTO {}.audit VALUES (1, 'not tailed')",
            db.name
        ))
        .await
        .expect("audit");
        tx.query_drop(insert_sql(&db, &batch[6..]))
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        committed.extend(batch);
    }
    // Rolled back: never in the binlog, never published.
    for first in [31u64, 34] {
        let batch: Vec<Order> = (first..first + 3).map(Order::new).collect();
        let mut tx = primary
            .start_transaction(TxOpts::default())
            .await
            .expect("begin");
        tx.query_drop(insert_sql(&db, &batch))
            .await
            .expect("insert");
        tx.rollback().await.expect("rollback");
        rolled_back.extend(batch.iter().map(|o| o.id));
    }
    // Updates and deletes are read and counted, not published.
    primary
        .query_drop(format!(
            "UPDATE {db}.orders SET status = 'paid' WHERE id <= 5; DELETE FROM {db}.orders WHERE id = 6",
            db = db.name
        ))
        .await
        .expect("update and delete");
    // A transaction mixing an update and inserts.
    {
        let batch: Vec<Order> = (40..=42).map(Order::new).collect();
        let mut tx = primary
            .start_transaction(TxOpts::default())
            .await
            .expect("begin");
        tx.query_drop(format!(
            "UPDATE {}.orders SET status = 'cancelled' WHERE id = 7",
            db.name
        ))
        .await
        .expect("update");
        tx.query_drop(insert_sql(&db, &batch))
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        committed.extend(batch);
    }
    let last = last_gtid(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));

    let messages = consume_all(&topic);
    let by_id = check_events(&messages, &db);
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        committed.iter().map(|o| o.id).collect::<Vec<_>>(),
        "exactly the committed orders, none of the rolled-back {rolled_back:?}"
    );
    assert_eq!(
        messages.len(),
        committed.len(),
        "one event per committed order"
    );
    for order in &committed {
        assert_eq!(
            by_id[&order.id].payload["data"],
            order.expected_data(),
            "order {}",
            order.id
        );
    }
    // Row indexes count every row change of the transaction: in the mixed
    // transaction the update of order 7 is row 0, so the inserts are 1..=3.
    assert_eq!(by_id[&40].payload["binlogrow"], json!(1));
    assert_eq!(by_id[&42].payload["binlogrow"], json!(3));
    // In the multi-statement transaction the audit row sits between.
    assert_eq!(by_id[&26].payload["binlogrow"], json!(5));
    assert_eq!(by_id[&27].payload["binlogrow"], json!(7));
    assert_eq!(
        by_id[&21].payload["binloggtid"],
        by_id[&30].payload["binloggtid"]
    );

    test_support::tailer::assert_commit_order_per_partition(&messages);

    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "clean shutdown exits 0");
    let cp = setup.checkpoint().expect("a checkpoint");
    assert!(cp.position.gtid.contains(last));
    assert_eq!(cp.events_published, committed.len() as u64);
    let (code, out, _) = setup.command(&["checkpoint", "show", "--format", "json"]);
    assert_eq!(code, 0);
    let shown: Json = serde_json::from_str(&out).expect("checkpoint show prints JSON");
    assert_eq!(shown["position"], json!(cp.position.to_string()));
    assert_eq!(shown["events_published"], json!(committed.len()));
}

/// Inserts `count` single-row orders, one per transaction, starting at
/// `first`; returns the GTID of the last.
async fn insert_orders(db: &TestDb, first: u64, count: u64) -> binlog_tailer::position::Gtid {
    let mut primary = connect(Server::Primary, User::Admin).await;
    for id in first..first + count {
        primary
            .query_drop(insert_sql(db, &[Order::new(id)]))
            .await
            .expect("insert");
    }
    last_gtid(&mut primary).await
}

async fn stop_mid_stream(kill: bool) {
    let db = TestDb::create(if kill { "sigkill" } else { "sigterm" }).await;
    let topic = unique_name("stop");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "stop",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    const TOTAL: u64 = 3000;
    const IN_BACKGROUND: u64 = 2500;
    let mut tailer = setup.spawn();
    // Insert in the background while the tailer streams; stop it midway.
    let writer = {
        let db_name = db.name.clone();
        tokio::spawn(
            async move { insert_orders(&TestDb { name: db_name }, 1, IN_BACKGROUND).await },
        )
    };
    // Wait until the tailer has published some of them, then stop it while
    // the writer is still going.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if setup
            .checkpoint()
            .is_some_and(|c| c.events_published >= 300)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress; log:\n{}",
            tailer.log()
        );
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!("tailer exited early ({status}); log:\n{}", tailer.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writer_was_running = !writer.is_finished();
    let at_stop = if kill {
        tailer.kill();
        None
    } else {
        let status = tailer.terminate(Duration::from_secs(30));
        Some(status)
    };
    if let Some(status) = at_stop {
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0 after draining");
    }
    let published_at_stop = setup.checkpoint().map_or(0, |c| c.events_published);
    writer.await.expect("writer");
    // More while the tailer is down.
    let last = insert_orders(&db, IN_BACKGROUND + 1, TOTAL - IN_BACKGROUND).await;

    let mut tailer = setup.spawn();
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));

    let messages = consume_all(&topic);
    let mut seen: BTreeMap<u64, &Consumed> = BTreeMap::new();
    let mut duplicates = 0;
    for m in &messages {
        let id = m.payload["data"]["id"].as_u64().expect("id");
        if let Some(first) = seen.insert(id, m) {
            duplicates += 1;
            assert_eq!(
                first.raw_payload, m.raw_payload,
                "a repeated event is byte-identical"
            );
        }
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=TOTAL).collect::<Vec<_>>(),
        "every committed order is in the topic"
    );
    for (id, m) in &seen {
        assert_eq!(m.payload["data"], Order::new(*id).expected_data());
    }
    println!(
        "stopped with {} after {published_at_stop} acknowledged events (writer still running: {writer_was_running}); \
         {} messages for {TOTAL} orders ({duplicates} repeated)",
        if kill { "SIGKILL" } else { "SIGTERM" },
        messages.len()
    );
    // SIGTERM drains and checkpoints; after SIGKILL the restarted tailer
    // skips what each partition already holds: nothing repeated either way.
    assert_eq!(duplicates, 0, "nothing repeated");
    assert_eq!(messages.len() as u64, TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_loses_nothing_and_repeats_nothing() {
    stop_mid_stream(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_and_repeats_nothing() {
    stop_mid_stream(true).await;
}

/// Whether the replica lists a replica registered under `server_id`: it
/// does while a binlog dump thread of that id runs on it.
async fn registered_on_replica(server_id: u32) -> bool {
    let mut replica = connect(Server::Replica, User::Admin).await;
    let ids: Vec<u32> = replica
        .query_map("SHOW SLAVE HOSTS", |row: mysql_async::Row| {
            row.get::<u32, _>("Server_id").unwrap_or_default()
        })
        .await
        .expect("SHOW SLAVE HOSTS");
    ids.contains(&server_id)
}

/// A clean stop ends the tailer's binlog dump on the server. Left to
/// itself, the server keeps a dump thread whose replica went away until a
/// heartbeat to it fails (here, with a 30 s heartbeat, 30 to 60 s), and a
/// restart under the same replica id then waits for the server to evict it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_ends_the_binlog_dump_on_the_server() {
    let db = TestDb::create("dumpend").await;
    let topic = unique_name("dumpend");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "dumpend",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let server_id = setup.server_id;
    let args = [
        "--set",
        "source.heartbeat=\"30s\"",
        "--set",
        "source.read_timeout=\"90s\"",
    ];
    let mut tailer = setup.spawn_with(&args);
    let last = insert_orders(&db, 1, 3).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    assert!(
        registered_on_replica(server_id).await,
        "while streaming, the replica lists replica id {server_id}"
    );
    let status = tailer.terminate(Duration::from_secs(30));
    assert!(status.success(), "a clean stop: {status}");
    let stopped = std::time::Instant::now();
    while registered_on_replica(server_id).await {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "5 s after the tailer stopped, the replica still runs a binlog dump for replica id \
             {server_id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates `legacy` (`legacy_columns` after `id INT PRIMARY KEY`) in a test
/// database that is not tailed, writes `legacy_sql` (`{db}` for the
/// database) then two orders in one transaction, and returns the orders'
/// event ids, sorted, and the transaction's GTID. The tailer must read it
/// without a warning or an error.
async fn orders_after_untailed_rows(
    prefix: &str,
    legacy_columns: &str,
    legacy_sql: &str,
) -> (Vec<String>, binlog_tailer::position::Gtid) {
    let db = TestDb::create(prefix).await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "CREATE TABLE {}.legacy (id INT PRIMARY KEY, {legacy_columns}) ENGINE=InnoDB",
            db.name
        ))
        .await
        .expect("legacy table");
    test_support::tailer::wait_for_replica(&mut primary).await;
    let topic = unique_name(prefix);
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        prefix,
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let mut tailer = setup.spawn();
    primary
        .query_drop(format!(
            "START TRANSACTION; {}; {}; COMMIT",
            legacy_sql.replace("{db}", &db.name),
            insert_sql(&db, &[Order::new(1), Order::new(2)])
        ))
        .await
        .expect("one transaction: the legacy rows, then two orders");
    let last = last_gtid(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let log = tailer.log();
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    assert!(
        !log.contains("cannot decode") && !log.contains("ERROR"),
        "the legacy table's rows are counted without a warning: {log}"
    );
    let mut ids: Vec<String> = consume_all(&topic)
        .iter()
        .map(|m| m.payload["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    (ids, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// A table that is not tailed is only counted, never decoded: a column in a
/// character set such as utf16 neither stops the tailer nor hides the row
/// indexes of orders written in the same transaction.
async fn a_table_that_is_not_tailed_is_counted_not_decoded_even_in_the_orders_transaction() {
    let (ids, last) = orders_after_untailed_rows(
        "otherchar",
        "t VARCHAR(20) CHARACTER SET utf16",
        "INSERT INTO {db}.legacy VALUES (1, 'utf-16 text')",
    )
    .await;
    // Row 0 of the transaction is the legacy row; the orders are rows 1, 2.
    assert_eq!(ids, vec![format!("{last}.1"), format!("{last}.2")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// Nothing about the columns of a table that is not tailed can stop the
/// tailer: compressed columns, legacy charsets (column and ENUM labels) and
/// bytes invalid in their charset, written before the orders of the same
/// transaction, are stepped over and counted, so the orders keep their row
/// indexes.
async fn untailed_compressed_and_legacy_charset_columns_in_the_orders_transaction() {
    let (ids, last) = orders_after_untailed_rows(
        "untailedcols",
        "v VARCHAR(200) COMPRESSED, t TEXT COMPRESSED, b MEDIUMBLOB COMPRESSED, \
         c VARCHAR(20) CHARACTER SET cp1251, e ENUM('да','нет') CHARACTER SET cp1251, \
         g VARCHAR(20) CHARACTER SET geostd8, k VARCHAR(20) CHARACTER SET sjis",
        "SET SESSION sql_mode = ''; \
         INSERT INTO {db}.legacy VALUES \
           (1, REPEAT('compress me ', 15), REPEAT('text ', 200), REPEAT(x'00ff', 500), \
            'Привет', 'нет', 'text', 'テキスト'), \
           (2, 'x', '', NULL, CONVERT(x'98' USING cp1251), 'да', NULL, CONVERT(x'8140' USING sjis)); \
         UPDATE {db}.legacy SET t = REPEAT('again ', 100) WHERE id = 1",
    )
    .await;
    // Rows 0, 1 are the legacy inserts, row 2 the update; the orders are 3, 4.
    assert_eq!(ids, vec![format!("{last}.3"), format!("{last}.4")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// A value of a tailed table holding bytes its charset does not define
/// (0x98 is unassigned in cp1251; MariaDB stores it all the same) stops the
/// tailer with exit 1, naming the table, row, column, charset and bytes,
/// and nothing is published with a replacement character.
async fn bytes_invalid_in_a_tailed_columns_charset_stop_the_tailer_naming_them() {
    let db = TestDb::create("badbytes").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "CREATE TABLE {}.legacy (id INT PRIMARY KEY, note VARCHAR(20) CHARACTER SET cp1251) \
             ENGINE=InnoDB",
            db.name
        ))
        .await
        .expect("legacy table");
    test_support::tailer::wait_for_replica(&mut primary).await;
    let topic = unique_name("badbytes");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "badbytes",
        &[Tailed {
            table: db.table("legacy"),
            topic: topic.clone(),
            event_type: "test.legacy.created.v1".into(),
        }],
        &start,
        "",
    );
    let mut tailer = setup.spawn();
    primary
        .query_drop(format!(
            "INSERT INTO {db}.legacy VALUES (1, CONVERT(x'cff0e8e2e5f2' USING cp1251)); \
             INSERT INTO {db}.legacy VALUES (2, CONVERT(x'41984142' USING cp1251))",
            db = db.name
        ))
        .await
        .expect("a valid row, then one with 0x98");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the tailer still runs after a value invalid in its charset; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = tailer.log();
    assert_eq!(status.code(), Some(1), "exit code 1; log:\n{log}");
    for needed in [
        &format!("`{}`.`legacy`", db.name) as &str,
        "row 0",
        "`note`",
        "not valid cp1251: 98 41 42",
        "after 1 valid bytes",
    ] {
        assert!(log.contains(needed), "the error names {needed:?}:\n{log}");
    }
    // The valid row before it is published, decoded from cp1251.
    let messages = consume_all(&topic);
    assert_eq!(messages.len(), 1, "only the valid row");
    assert_eq!(messages[0].payload["data"]["note"], json!("Привет"));
}

/// `kafka.max_in_flight_bytes` smaller than any event: each event is sent
/// alone once the one before is acknowledged (the bound never blocks an event
/// outright), in order, and every order arrives exactly once; the setting is
/// refused when zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_larger_than_max_in_flight_bytes_go_one_at_a_time() {
    const TOTAL: u64 = 200;
    let db = TestDb::create("inflightbytes").await;
    let topic = unique_name("inflightbytes");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "inflightbytes",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let (code, _, err) = setup.command(&["--set", "kafka.max_in_flight_bytes=0", "run"]);
    assert_eq!(code, 2, "a zero bound is a config error: {err}");
    assert!(err.contains("kafka.max_in_flight_bytes"), "{err}");

    let mut tailer = setup.spawn_with(&["--set", "kafka.max_in_flight_bytes=1"]);
    let last = insert_orders(&db, 1, TOTAL).await;
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let ids: Vec<u64> = consume_all(&topic)
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("id"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=TOTAL).collect::<Vec<_>>(), "each order once");
}
