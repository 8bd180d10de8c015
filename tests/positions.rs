//! Every binlog position binlog-tailer publishes (the `binlog.file` and
//! `binlog.pos` headers) or checkpoints is a real event boundary of the
//! server's binlog, and a `file:offset` start taken from a published record
//! publishes exactly from its transaction on.
//!
//! MariaDB 11.x writes `end_log_pos` 0 for the events inside a transaction
//! (`binlog_legacy_event_pos=OFF`, its default); MariaDB 10.11 writes every
//! end. The transactions here put such events (row events, a `SAVEPOINT`,
//! writes to an untailed table) between the orders, so a position taken
//! from one of them would be caught. The GTID index files 11.8 writes
//! beside its binlogs (`.idx`) must not disturb the lag in bytes either. The
//! test runs on whichever version the services run (`BT_MARIADB`) and says
//! which.

use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, wait_for_replica, Consumed, Tailed, TailerSetup,
    TestDb,
};
use test_support::{
    binlog_events, connect, free_port, http_get, unique_name, BinlogEvent, Server, User,
};

/// The event that starts at `offset` of `file` on the replica: `None` at
/// the end of the file; an error when `offset` is not an event boundary.
async fn event_at(
    replica: &mut Conn,
    file: &str,
    offset: u64,
) -> Result<Option<BinlogEvent>, mysql_async::Error> {
    Ok(binlog_events(replica, file, offset, 1)
        .await?
        .into_iter()
        .next())
}

/// Six transactions of three orders each: two inserted by one statement,
/// then an UPDATE of an untailed table and a `SAVEPOINT`, then the third.
/// Returns each transaction's GTID.
async fn write_transactions(db: &TestDb, first_id: u64) -> Vec<Gtid> {
    let mut primary = connect(Server::Primary, User::Admin).await;
    let mut gtids = Vec::new();
    for t in 0..6u64 {
        let id = first_id + 3 * t;
        let values = |id: u64| format!("({id}, {}, '{id}.25', 'EUR', '[]', NOW(6))", id % 7);
        primary
            .query_drop(format!(
                "START TRANSACTION; \
                 INSERT INTO {db}.orders (id, customer_id, amount, currency, items, created_at) VALUES {}, {}; \
                 UPDATE {db}.counter SET n = n + 1; \
                 SAVEPOINT s1; \
                 INSERT INTO {db}.orders (id, customer_id, amount, currency, items, created_at) VALUES {}; \
                 COMMIT",
                values(id),
                values(id + 1),
                values(id + 2),
                db = db.name
            ))
            .await
            .expect("transaction");
        gtids.push(last_gtid(&mut primary).await);
    }
    wait_for_replica(&mut primary).await;
    gtids
}

fn header<'a>(m: &'a Consumed, name: &str) -> &'a str {
    m.headers
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("record without {name}: {:?}", m.headers))
}

fn order_ids(messages: &[Consumed]) -> Vec<u64> {
    let mut ids: Vec<u64> = messages
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("order id"))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_and_checkpointed_positions_are_real_and_resumable() {
    let db = TestDb::create("positions").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "CREATE TABLE {db}.counter (n INT NOT NULL) ENGINE=InnoDB; \
             INSERT INTO {db}.counter VALUES (0)",
            db = db.name
        ))
        .await
        .expect("counter table");
    let mut replica = connect(Server::Replica, User::Admin).await;
    let version: String = replica
        .query_first("SELECT VERSION()")
        .await
        .expect("version")
        .expect("a version");
    let legacy: Option<i64> = replica
        .query_first("SELECT @@GLOBAL.binlog_legacy_event_pos")
        .await
        .ok()
        .flatten();

    let topic = unique_name("positions");
    let setup = TailerSetup::new(
        test_support::here!(),
        "positions",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    );
    let port = free_port();
    let setup = setup.with_http_listen(([127, 0, 0, 1], port).into());
    let mut tailer = setup.spawn();
    let gtids = write_transactions(&db, 1).await;
    let last = *gtids.last().expect("six transactions");
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));

    // Caught up, the lag in bytes (SHOW BINARY LOGS sizes past the read
    // position) comes to 0, also where 11.8 keeps a GTID index file
    // (`.idx`) beside each binlog.
    let replica_data = test_support::faults::services_state().join("replica/data");
    let idx_files = std::fs::read_dir(&replica_data)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".idx"))
                .count()
        })
        .unwrap_or(0);
    if test_support::mariadb_11() {
        assert!(
            idx_files > 0,
            "MariaDB 11.8 keeps .idx files beside its binlogs in {}",
            replica_data.display()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let lag = loop {
        let (_, metrics) = http_get(port, "/metrics").expect("metrics");
        let lag = metrics
            .lines()
            .find_map(|l| l.strip_prefix("binlog_tailer_lag_bytes "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if lag == Some(0.0) || Instant::now() > deadline {
            break lag;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(lag, Some(0.0), "binlog_tailer_lag_bytes once caught up");
    println!(
        "caught up: binlog_tailer_lag_bytes 0, {idx_files} .idx files beside the replica's binlogs"
    );
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let published = consume_all(&topic);
    assert_eq!(order_ids(&published), (1..=18).collect::<Vec<_>>());

    // On 11.x the replica writes end_log_pos 0 inside these transactions:
    // the case this test is about. On 10.11 every event has its end.
    let first = &published[0];
    let (file, pos) = (header(first, "binlog.file"), header(first, "binlog.pos"));
    let pos: u64 = pos.parse().expect("binlog.pos is a number");
    let events = binlog_events(&mut replica, file, pos, 8)
        .await
        .expect("the transaction's events");
    let zero_ends = events.iter().filter(|e| e.end_log_pos == 0).count();
    println!(
        "replica {version}, binlog_legacy_event_pos {}: the first transaction's events {:?}",
        legacy.map_or("n/a".to_owned(), |v| v.to_string()),
        events
            .iter()
            .map(|e| format!("{}@{}..{}", e.kind, e.pos, e.end_log_pos))
            .collect::<Vec<_>>()
    );
    if test_support::mariadb_11() && legacy == Some(0) {
        assert!(
            zero_ends > 0,
            "MariaDB 11.x with binlog_legacy_event_pos=OFF was expected to write end_log_pos 0 inside a transaction"
        );
    }

    // Every record's position is the start of its transaction's GTID event.
    for m in &published {
        let file = header(m, "binlog.file");
        let pos: u64 = header(m, "binlog.pos").parse().expect("binlog.pos");
        let event = event_at(&mut replica, file, pos)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{file}:{pos} of {} is no event boundary: {e}",
                    header(m, "binlog.gtid")
                )
            })
            .unwrap_or_else(|| panic!("{file}:{pos} is the end of the file"));
        assert_eq!(event.pos, pos);
        assert_eq!(
            event.kind,
            "Gtid",
            "{file}:{pos} of {} starts a {} event",
            header(m, "binlog.gtid"),
            event.kind
        );
        assert_ne!(pos, 0);
    }

    // The checkpoint's coordinate is the end of the last transaction: once
    // something else is written, the next event starts exactly there.
    let checkpoint = setup.checkpoint().expect("a checkpoint");
    let coord = checkpoint
        .position
        .coord
        .clone()
        .expect("the checkpoint has a file:offset");
    primary
        .query_drop(format!("UPDATE {}.counter SET n = n + 1", db.name))
        .await
        .expect("a later transaction");
    wait_for_replica(&mut primary).await;
    let next = event_at(&mut replica, &coord.file, coord.offset)
        .await
        .unwrap_or_else(|e| panic!("checkpoint {coord} is no event boundary: {e}"))
        .unwrap_or_else(|| panic!("nothing after checkpoint {coord}"));
    assert_eq!(next.pos, coord.offset, "checkpoint {coord}");

    // Started at file:offset of the fourth transaction's records, a new
    // tailer publishes that transaction and the two after it, byte for
    // byte as before.
    let fourth = published
        .iter()
        .find(|m| header(m, "binlog.gtid") == gtids[3].to_string())
        .expect("a record of the fourth transaction");
    let start = format!(
        "{}:{}",
        header(fourth, "binlog.file"),
        header(fourth, "binlog.pos")
    );
    let topic2 = unique_name("positions-from-offset");
    let setup2 = TailerSetup::new(
        test_support::here!(),
        "positions-from-offset",
        &[Tailed::orders(&db, &topic2)],
        &start,
        "",
    );
    let mut tailer2 = setup2.spawn();
    setup2.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer2));
    assert_eq!(tailer2.terminate(Duration::from_secs(30)).code(), Some(0));
    let resumed = consume_all(&topic2);
    assert_eq!(
        order_ids(&resumed),
        (10..=18).collect::<Vec<_>>(),
        "from {start}: exactly the fourth to sixth transactions"
    );
    for copy in &resumed {
        let original = published
            .iter()
            .find(|m| m.payload["id"] == copy.payload["id"])
            .expect("an original");
        assert_eq!(copy.raw_payload, original.raw_payload);
        for h in ["binlog.file", "binlog.pos", "binlog.gtid", "binlog.row"] {
            assert_eq!(header(copy, h), header(original, h), "header {h}");
        }
    }
    println!(
        "{} records at real GTID-event positions; checkpoint {coord} is an event boundary; \
         from {start}: {} records, identical",
        published.len(),
        resumed.len()
    );
}
