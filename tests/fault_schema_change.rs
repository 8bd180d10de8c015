//! ALTER TABLE on the tailed table mid-stream: each event's `data` has
//! exactly the columns the table had when its row was inserted, in the
//! table's order, with exact values; and a second tailer replaying from the
//! GTID state before the first change publishes byte-identical messages.
//!
//! Its own test binary, like the other fault tests (these tests stop no
//! service, so they may run in parallel with each other).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use binlog_tailer::position::{Gtid, GtidState};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::{json, Map, Value as Json};
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, wait_for_replica, Consumed, Tailed, TailerSetup,
    TestDb,
};
use test_support::{connect, unique_name, Server, User};

/// The table's columns in order, as information_schema has them now.
async fn columns(conn: &mut Conn, db: &TestDb) -> Vec<String> {
    conn.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'orders' ORDER BY ORDINAL_POSITION",
        (db.name.as_str(),),
    )
    .await
    .expect("columns")
}

/// A row to insert: column → SQL literal and the value its event must carry.
struct Row {
    id: u64,
    values: Vec<(&'static str, String, Json)>,
}

impl Row {
    /// An order with the base columns; `extra` adds or overrides columns.
    fn new(id: u64, customer_id: &str, extra: &[(&'static str, &str, Json)]) -> Row {
        let mut values = vec![
            ("id", id.to_string(), json!(id)),
            (
                "customer_id",
                customer_id.to_owned(),
                serde_json::from_str(customer_id).expect("a number"),
            ),
            ("amount", format!("'{id}.05'"), json!(format!("{id}.05"))),
            ("currency", "'EUR'".into(), json!("EUR")),
            ("status", "'created'".into(), json!("created")),
            (
                "items",
                format!("'[{{\"sku\": \"s{id}\", \"qty\": {id}}}]'"),
                json!([{"sku": format!("s{id}"), "qty": id}]),
            ),
            (
                "created_at",
                format!("'2026-11-26 08:00:{:02}.{:06}'", id % 60, id * 37),
                json!(format!("2026-11-26 08:00:{:02}.{:06}", id % 60, id * 37)),
            ),
        ];
        for (name, sql, value) in extra {
            match values.iter_mut().find(|(n, _, _)| n == name) {
                Some(slot) => *slot = (name, (*sql).to_owned(), value.clone()),
                None => values.push((name, (*sql).to_owned(), value.clone())),
            }
        }
        Row { id, values }
    }

    fn insert_sql(&self, db: &TestDb) -> String {
        let names: Vec<&str> = self.values.iter().map(|(n, _, _)| *n).collect();
        let sql: Vec<&str> = self.values.iter().map(|(_, s, _)| s.as_str()).collect();
        format!(
            "INSERT INTO {}.orders ({}) VALUES ({})",
            db.name,
            names.join(", "),
            sql.join(", ")
        )
    }

    /// `data` as it must be published: the table's columns at insert time,
    /// in its order.
    fn expected(&self, columns: &[String]) -> Json {
        let mut data = Map::new();
        for c in columns {
            let value = self
                .values
                .iter()
                .find(|(n, _, _)| *n == c.as_str())
                .map_or(Json::Null, |(_, _, v)| v.clone());
            data.insert(c.clone(), value);
        }
        Json::Object(data)
    }
}

fn topic_setup(name: &str, db: &TestDb, start: &str) -> (String, TailerSetup) {
    let topic = unique_name(name);
    let setup = TailerSetup::new(
        test_support::here!(),
        name,
        &[Tailed::orders(db, &topic)],
        start,
        "",
    );
    (topic, setup)
}

/// Messages by event id; panics on a repeated id.
fn by_event_id(messages: &[Consumed]) -> BTreeMap<String, &Consumed> {
    let mut out = BTreeMap::new();
    for m in messages {
        let id = m.payload["id"].as_str().expect("id").to_owned();
        assert!(
            out.insert(id.clone(), m).is_none(),
            "event {id} published twice"
        );
    }
    out
}

/// Compares the replay with the original for every event after `from`:
/// the same set of event ids, each byte-identical (key, payload, headers but
/// the store id).
/// Returns the differences.
fn compare_replay(
    original: &BTreeMap<String, &Consumed>,
    replay: &BTreeMap<String, &Consumed>,
    from: &GtidState,
) -> Vec<String> {
    let after = |id: &str| {
        let gtid: Gtid = id
            .split('.')
            .next()
            .unwrap_or_default()
            .parse()
            .expect("gtid");
        !from.contains(gtid)
    };
    let expected: BTreeSet<&String> = original.keys().filter(|id| after(id)).collect();
    let got: BTreeSet<&String> = replay.keys().collect();
    let mut diffs = Vec::new();
    if expected != got {
        diffs.push(format!(
            "event ids differ: only in the original {:?}, only in the replay {:?}",
            expected.difference(&got).collect::<Vec<_>>(),
            got.difference(&expected).collect::<Vec<_>>()
        ));
    }
    // Every header but the publishing store's id: the second run is a store
    // of its own.
    let event_headers = |m: &Consumed| {
        let mut h = m.headers.clone();
        h.remove("binlog.store");
        h
    };
    for (id, r) in replay {
        let Some(o) = original.get(id) else { continue };
        if o.raw_payload != r.raw_payload || o.key != r.key || event_headers(o) != event_headers(r)
        {
            diffs.push(format!(
                "event {id} differs:\n  original: {}\n  replay:   {}",
                String::from_utf8_lossy(&o.raw_payload),
                String::from_utf8_lossy(&r.raw_payload)
            ));
        }
    }
    diffs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_mid_stream_publishes_each_rows_own_columns_and_replays_identically() {
    let db = TestDb::create("schema").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    let (topic, setup) = topic_setup("schema", &db, &replica_gtid_state().await);
    let mut tailer = setup.spawn();

    // (phase, columns at insert time, rows)
    let mut phases: Vec<(&str, Vec<String>, Vec<Row>)> = Vec::new();
    let mut before_change = None;
    let steps: Vec<(&str, Option<&str>, Vec<Row>)> = vec![
        (
            "original",
            None,
            vec![
                Row::new(1, "7", &[]),
                Row::new(2, "0", &[]),
                Row::new(3, "18446744073709551615", &[]),
            ],
        ),
        (
            "ADD COLUMN coupon VARCHAR(20) NULL",
            Some("ALTER TABLE {t} ADD COLUMN coupon VARCHAR(20) NULL"),
            vec![
                Row::new(4, "8", &[("coupon", "'SAVE10'", json!("SAVE10"))]),
                Row::new(5, "9", &[("coupon", "NULL", Json::Null)]),
                Row::new(6, "10", &[("coupon", "'ünï€✓'", json!("ünï€✓"))]),
                Row::new(7, "11", &[]),
            ],
        ),
        (
            "DROP COLUMN coupon",
            Some("ALTER TABLE {t} DROP COLUMN coupon"),
            vec![
                Row::new(8, "12", &[]),
                Row::new(9, "18446744073709551614", &[]),
            ],
        ),
        (
            "MODIFY customer_id BIGINT NOT NULL (signed)",
            // Values beyond the signed range go first (deletes are not
            // published); their events stay unsigned, live and on replay.
            Some(
                "DELETE FROM {t} WHERE customer_id > 9223372036854775807; \
                 ALTER TABLE {t} MODIFY customer_id BIGINT NOT NULL",
            ),
            vec![
                Row::new(10, "-42", &[]),
                Row::new(11, "9223372036854775807", &[]),
                Row::new(12, "-9223372036854775808", &[]),
            ],
        ),
        (
            "MODIFY currency VARCHAR(10) ascii",
            Some("ALTER TABLE {t} MODIFY currency VARCHAR(10) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"),
            vec![Row::new(
                13,
                "-1",
                &[("currency", "'USDC.e'", json!("USDC.e"))],
            )],
        ),
        (
            "ADD COLUMN note AFTER customer_id",
            Some("ALTER TABLE {t} ADD COLUMN note VARCHAR(30) NULL AFTER customer_id"),
            vec![
                Row::new(14, "5", &[("note", "'gift'", json!("gift"))]),
                Row::new(15, "6", &[]),
            ],
        ),
    ];
    for (phase, alter, rows) in steps {
        if let Some(alter) = alter {
            if before_change.is_none() {
                wait_for_replica(&mut primary).await;
                before_change = Some(replica_gtid_state().await);
            }
            let sql = alter.replace("{t}", &db.table("orders"));
            primary
                .query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let cols = columns(&mut primary, &db).await;
        for row in &rows {
            primary
                .query_drop(row.insert_sql(&db))
                .await
                .unwrap_or_else(|e| panic!("{phase}: insert order {}: {e}", row.id));
        }
        phases.push((phase, cols, rows));
    }
    let last = last_gtid(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; log:\n{log}");
    let messages = consume_all(&topic);

    // The replay, from the GTID state before the first ALTER.
    let before_change = before_change.expect("a change");
    let (replay_topic, replay_setup) = topic_setup("schema_replay", &db, &before_change);
    let mut replay = replay_setup.spawn();
    replay_setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut replay));
    let replay_log = replay.log();
    let status = replay.terminate(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0; log:\n{replay_log}"
    );
    let replayed = consume_all(&replay_topic);

    let original = by_event_id(&messages);
    let replay_by_id = by_event_id(&replayed);
    let diffs = compare_replay(&original, &replay_by_id, &gtid_state(&before_change));
    let mut by_order: BTreeMap<u64, &Consumed> = BTreeMap::new();
    for m in &messages {
        let id = m.payload["data"]["id"].as_u64().expect("data.id");
        assert!(
            by_order.insert(id, m).is_none(),
            "order {id} published twice"
        );
    }

    println!("schema changes mid-stream ({} orders):", by_order.len());
    for (phase, cols, rows) in &phases {
        println!(
            "  {phase}: orders {:?}, columns {}",
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            cols.join(", ")
        );
    }
    println!(
        "  replay from {before_change}: {} events, {} byte-identical, {} differences",
        replayed.len(),
        replayed.len().saturating_sub(diffs.len()),
        diffs.len()
    );

    let mut wrong = Vec::new();
    let mut count = 0;
    for (phase, cols, rows) in &phases {
        for row in rows {
            count += 1;
            let Some(m) = by_order.get(&row.id) else {
                wrong.push(format!("{phase}: order {} was not published", row.id));
                continue;
            };
            let data = &m.payload["data"];
            let keys: Vec<&String> = data
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            let cols_ref: Vec<&String> = cols.iter().collect();
            if keys != cols_ref || *data != row.expected(cols) {
                wrong.push(format!(
                    "{phase}: order {}:\n  expected {}\n  got      {}",
                    row.id,
                    row.expected(cols),
                    data
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "events that do not match their row:\n{}",
        wrong.join("\n")
    );
    assert_eq!(messages.len(), count, "one event per order");
    assert!(
        diffs.is_empty(),
        "the replay differs from the original:\n{}",
        diffs.join("\n")
    );
}

/// A JSON column added, filled, and dropped again: its rows were JSON when
/// inserted, so they are published as JSON, live and on replay alike (the
/// replay reads them after the column is gone from the table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_column_dropped_later_replays_identically() {
    let db = TestDb::create("schema_json").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    let (topic, setup) = topic_setup("schema_json", &db, &replica_gtid_state().await);
    let mut tailer = setup.spawn();

    primary
        .query_drop(Row::new(1, "1", &[]).insert_sql(&db))
        .await
        .expect("insert");
    wait_for_replica(&mut primary).await;
    let before_change = replica_gtid_state().await;
    primary
        .query_drop(format!(
            "ALTER TABLE {}.orders ADD COLUMN meta JSON NULL",
            db.name
        ))
        .await
        .expect("ADD COLUMN meta JSON");
    let with_meta = Row::new(
        2,
        "2",
        &[(
            "meta",
            "'{\"gift\": true, \"n\": [1, 2]}'",
            json!({"gift": true, "n": [1, 2]}),
        )],
    );
    primary
        .query_drop(with_meta.insert_sql(&db))
        .await
        .expect("insert");
    let meta_cols = columns(&mut primary, &db).await;
    // The live tailer has read the row while the column still exists.
    let with_meta_gtid = last_gtid(&mut primary).await;
    setup.wait_checkpoint(with_meta_gtid, Duration::from_secs(60), Some(&mut tailer));
    primary
        .query_drop(format!("ALTER TABLE {}.orders DROP COLUMN meta", db.name))
        .await
        .expect("DROP COLUMN meta");
    primary
        .query_drop(Row::new(3, "3", &[]).insert_sql(&db))
        .await
        .expect("insert");
    let last = last_gtid(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let messages = consume_all(&topic);

    let (replay_topic, replay_setup) = topic_setup("schema_json_replay", &db, &before_change);
    let mut replay = replay_setup.spawn();
    replay_setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut replay));
    let status = replay.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let replayed = consume_all(&replay_topic);

    let original = by_event_id(&messages);
    let replay_by_id = by_event_id(&replayed);
    let diffs = compare_replay(&original, &replay_by_id, &gtid_state(&before_change));
    let live = messages
        .iter()
        .find(|m| m.payload["data"]["id"] == json!(2))
        .expect("order 2 published");
    let replayed_row = replayed
        .iter()
        .find(|m| m.payload["data"]["id"] == json!(2))
        .map(|m| m.payload["data"].clone());

    println!("a JSON column added, used and dropped:");
    println!("  live:   {}", live.payload["data"]);
    println!(
        "  replay: {}",
        replayed_row
            .as_ref()
            .map_or("(missing)".into(), ToString::to_string)
    );
    println!(
        "  {} events compared, {} differences",
        replayed.len(),
        diffs.len()
    );

    assert_eq!(
        live.payload["data"],
        with_meta.expected(&meta_cols),
        "live: order 2"
    );
    assert_eq!(
        replayed_row,
        Some(with_meta.expected(&meta_cols)),
        "replay: order 2 carries its JSON column as JSON"
    );
    assert!(
        diffs.is_empty(),
        "the replay differs from the original:\n{}",
        diffs.join("\n")
    );
}

/// A JSON column becomes plain text mid-stream (`MODIFY items LONGTEXT`:
/// same name, no `json_valid` check any more), and a row then holds text
/// that is not JSON. The binlog cannot tell; the configuration still lists
/// `items` as JSON. The tailer must stop with a definite error that names the
/// column and the fix, without losing or skipping the row; once the operator
/// takes `items` off `json_columns`, it publishes the row as a string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_column_turned_text_stops_clearly_and_resumes_once_reconfigured() {
    let db = TestDb::create("schema_json_text").await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    let (topic, setup) = topic_setup("schema_json_text", &db, &replica_gtid_state().await);
    let mut tailer = setup.spawn();

    let before = Row::new(1, "1", &[]);
    primary
        .query_drop(before.insert_sql(&db))
        .await
        .expect("insert");
    let cols = columns(&mut primary, &db).await;
    let first = last_gtid(&mut primary).await;
    setup.wait_checkpoint(first, Duration::from_secs(60), Some(&mut tailer));
    primary
        .query_drop(format!(
            "ALTER TABLE {}.orders MODIFY items LONGTEXT NOT NULL",
            db.name
        ))
        .await
        .expect("MODIFY items LONGTEXT");
    let after = Row::new(
        2,
        "2",
        &[("items", "'two desks, no JSON'", json!("two desks, no JSON"))],
    );
    primary
        .query_drop(after.insert_sql(&db))
        .await
        .expect("insert");
    let last = last_gtid(&mut primary).await;

    let status = tailer.wait(Duration::from_secs(60));
    let log = tailer.log();
    println!("a JSON column turned LONGTEXT mid-stream: the tailer stopped ({status})");
    for line in log.lines().filter(|l| l.contains("ERROR")) {
        println!("    {line}");
    }
    assert_eq!(status.code(), Some(1), "a definite error; log:\n{log}");
    assert!(
        log.contains("items") && log.contains("json_columns"),
        "the error names the column and the setting; log:\n{log}"
    );
    let cp = setup.checkpoint().expect("checkpoint");
    assert!(
        cp.position.gtid.contains(first) && !cp.position.gtid.contains(last),
        "the checkpoint stays before the row: {}",
        cp.position
    );

    // The operator's fix: items is plain text now.
    let text = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(&setup.config, text.replace("\"items\", ", "")).expect("config");
    let mut tailer = setup.spawn();
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(60)).code(), Some(0));

    let messages = consume_all(&topic);
    let data_of = |id: u64| {
        messages
            .iter()
            .find(|m| m.payload["data"]["id"] == json!(id))
            .map(|m| m.payload["data"].clone())
    };
    println!("  before: {:?}", data_of(1).map(|d| d.to_string()));
    println!("  after:  {:?}", data_of(2).map(|d| d.to_string()));
    assert_eq!(messages.len(), 2, "one event per order");
    assert_eq!(
        data_of(1),
        Some(before.expected(&cols)),
        "order 1: items as JSON"
    );
    assert_eq!(
        data_of(2),
        Some(after.expected(&cols)),
        "order 2: items as text"
    );
}

fn gtid_state(text: &str) -> GtidState {
    text.parse().expect("GTID state")
}
