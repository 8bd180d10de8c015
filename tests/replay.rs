//! Going back in time on purpose: bounded replays (to another topic or the
//! same one) and rewinds of the live checkpoint. Replayed and re-published
//! events are byte-identical to the originals.

use std::collections::BTreeMap;
use std::time::Duration;

use binlog_tailer::position::{Gtid, Position};
use mysql_async::prelude::Queryable;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, Consumed, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

async fn insert_batch(db: &TestDb, ids: std::ops::RangeInclusive<u64>) -> Gtid {
    let mut primary = connect(Server::Primary, User::Admin).await;
    for id in ids {
        primary
            .query_drop(format!(
                "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
                 VALUES ({id}, {}, '{id}.50', 'EUR', '[{{\"n\":{id}}}]', NOW(6))",
                db.name,
                id % 5
            ))
            .await
            .expect("insert");
    }
    last_gtid(&mut primary).await
}

fn ids(messages: &[Consumed]) -> Vec<u64> {
    let mut ids: Vec<u64> = messages
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("id"))
        .collect();
    ids.sort_unstable();
    ids
}

/// Every message has the same bytes as the original with its event id.
fn assert_identical(originals: &[Consumed], copies: &[Consumed]) {
    let by_id: BTreeMap<&str, &Consumed> = originals
        .iter()
        .map(|m| (m.payload["id"].as_str().expect("id"), m))
        .collect();
    for copy in copies {
        let id = copy.payload["id"].as_str().expect("id");
        let original = by_id
            .get(id)
            .unwrap_or_else(|| panic!("no original for event {id}"));
        assert_eq!(
            copy.raw_payload, original.raw_payload,
            "event {id} byte for byte"
        );
        assert_eq!(copy.key, original.key, "event {id} key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_rewinds_publish_identical_events() {
    let db = TestDb::create("replay").await;
    let topic = unique_name("live");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "replay",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let mut tailer = setup.spawn();
    let g1 = insert_batch(&db, 1..=10).await;
    setup.wait_checkpoint(g1, Duration::from_secs(60), Some(&mut tailer));
    let g2 = insert_batch(&db, 11..=25).await;
    setup.wait_checkpoint(g2, Duration::from_secs(60), Some(&mut tailer));
    let g3 = insert_batch(&db, 26..=30).await;
    setup.wait_checkpoint(g3, Duration::from_secs(60), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let live_before = setup.checkpoint().expect("checkpoint");
    let originals = consume_all(&topic);
    assert_eq!(ids(&originals), (1..=30).collect::<Vec<_>>());

    // `checkpoint list` numbers the history; find the entry that ends batch 1.
    let (code, out, err) =
        setup.command(&["checkpoint", "list", "--limit", "1000", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let entries: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let after_batch1 = entries
        .iter()
        .find(|e| {
            e["position"]
                .as_str()
                .and_then(|p| p.parse::<Position>().ok())
                // Other replication domains may have moved too.
                .is_some_and(|p| p.gtid.get(g1.domain) == Some(g1))
        })
        .unwrap_or_else(|| panic!("a history entry at {g1}: {out}"));
    let entry = format!("#{}", after_batch1["entry"]);

    // A bounded replay of batch 2 into another topic.
    let replay_topic = unique_name("replayed");
    let (code, _, err) = setup.command(&[
        "replay",
        "--from",
        &g1.to_string(),
        "--to",
        &g2.to_string(),
        "--topic",
        &replay_topic,
    ]);
    assert_eq!(code, 0, "replay exits 0:\n{err}");
    let replayed = consume_all(&replay_topic);
    assert_eq!(
        ids(&replayed),
        (11..=25).collect::<Vec<_>>(),
        "exactly batch 2"
    );
    assert_identical(&originals, &replayed);
    assert!(replayed
        .iter()
        .all(|m| m.headers.get("binlog.replay").map(String::as_str) == Some("1")));
    assert_eq!(
        setup.checkpoint().expect("checkpoint"),
        live_before,
        "the live checkpoint is untouched"
    );

    // From a history entry up to the live checkpoint (the default --to).
    let replay_topic2 = unique_name("replayed");
    let (code, _, err) = setup.command(&["replay", "--from", &entry, "--topic", &replay_topic2]);
    assert_eq!(code, 0, "{err}");
    let replayed2 = consume_all(&replay_topic2);
    assert_eq!(
        ids(&replayed2),
        (11..=30).collect::<Vec<_>>(),
        "batches 2 and 3"
    );
    assert_identical(&originals, &replayed2);

    // Rewind: move the live checkpoint back to the end of batch 1 and run.
    let (code, out, err) = setup.command(&["checkpoint", "set", &g1.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("epoch 1"), "{out}");
    let mut tailer = setup.spawn();
    setup.wait_checkpoint(g3, Duration::from_secs(60), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let after_rewind = consume_all(&topic);
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for id in ids(&after_rewind) {
        *counts.entry(id).or_default() += 1;
    }
    for id in 1..=30u64 {
        let want = if id <= 10 { 1 } else { 2 };
        assert_eq!(
            counts.get(&id).copied(),
            Some(want),
            "order {id} after the rewind"
        );
    }
    assert_identical(&originals, &after_rewind);

    // The rewound stream is itself exactly-once across restarts.
    let mut tailer = setup.spawn();
    let g4 = insert_batch(&db, 31..=35).await;
    setup.wait_checkpoint(g4, Duration::from_secs(60), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let finally = consume_all(&topic);
    assert_eq!(
        finally.len(),
        10 + 2 * 20 + 5,
        "batch 4 once, nothing else again"
    );
    println!(
        "{} originals, {} replayed to another topic, {} after --from {entry}, {} in the live topic after the rewind",
        originals.len(),
        replayed.len(),
        replayed2.len(),
        after_rewind.len()
    );
}
