//! Exactly once into Kafka where a single newest record per partition is
//! not enough: several GTID domains interleaving through SIGKILLs, a replay
//! written into the live topic, a batch the broker refuses for good, and a
//! store created anew after `RESET MASTER`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use test_support::faults::{by_order, insert_orders, Writer};
use test_support::kafka::{alter_topic, create_topic_with};
use test_support::random::{crash_seed, Lcg};
use test_support::scratch::{ScratchServer, ROW_LOGGING};
use test_support::tailer::{
    assert_checkpoint_unchanged, assert_commit_order_per_partition, consume_all, last_gtid,
    replica_gtid_state, wait_for_replica, Consumed, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

/// Order ids with the number of messages each has, and the ids published
/// more than once.
fn repeats(messages: &[Consumed]) -> (Vec<u64>, Vec<u64>) {
    let by_id = by_order(messages);
    let repeated = by_id
        .iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    (by_id.keys().copied().collect(), repeated)
}

/// Live records only (a replay into the same topic carries `binlog.replay`).
fn live(messages: &[Consumed]) -> Vec<Consumed> {
    messages
        .iter()
        .filter(|m| !m.headers.contains_key("binlog.replay"))
        .cloned()
        .collect()
}

/// Domains 0, 31 and 32 write orders at the same time on the primary (three
/// sessions with their own `gtid_domain_id`, as multi-source replication and
/// some multi-primary set-ups produce); the tailer reads the replica and is
/// SIGKILLed ten times at random moments. Each partition then holds records
/// of three domains interleaved: its frontier must be kept per domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_domains_interleaved_through_ten_sigkills_leave_every_order_exactly_once() {
    let mut rng = Lcg(crash_seed("multi-domain crash test"));

    let db = TestDb::create("domains").await;
    let topic = unique_name("domains");
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "domains",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    const DOMAINS: [u32; 3] = [0, 31, 32];
    let writers: Vec<Writer> = DOMAINS
        .iter()
        .map(|&d| {
            Writer::start_in(
                &db,
                Some(d),
                u64::from(d) * 1_000_000,
                Duration::from_millis(25),
                5,
                10,
            )
        })
        .collect();

    let mut kills = 0;
    let mut checkpointed_at_kill = Vec::new();
    while kills < 10 {
        let tailer = setup.spawn();
        tokio::time::sleep(Duration::from_millis(300 + rng.next(1500))).await;
        tailer.kill();
        kills += 1;
        checkpointed_at_kill.push(setup.checkpoint().map_or(0, |c| c.events_published));
    }
    let mut committed = Vec::new();
    let mut lasts = Vec::new();
    for writer in writers {
        let (ids, last) = writer.finish().await;
        committed.extend(ids);
        lasts.push(last);
    }
    committed.sort_unstable();
    let mut primary = connect(Server::Primary, User::Admin).await;
    wait_for_replica(&mut primary).await;

    let mut tailer = setup.spawn();
    for &last in &lasts {
        setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    }
    let log = tailer.log();
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));

    let messages = consume_all(&topic);
    let (ids, repeated) = repeats(&messages);
    let domains_seen: std::collections::BTreeSet<u32> = messages
        .iter()
        .filter_map(|m| m.headers.get("binlog.gtid")?.parse::<Gtid>().ok())
        .map(|g| g.domain)
        .collect();
    println!(
        "{kills} SIGKILLs (checkpointed events at each: {checkpointed_at_kill:?}); {} orders committed \
         in domains {domains_seen:?} (last {lasts:?}); {} messages, {} repeated; the last run skipped \
         events it found in the topic: {}",
        committed.len(),
        messages.len(),
        repeated.len(),
        log.contains("skipping events the topic already holds")
    );
    assert_eq!(
        domains_seen,
        DOMAINS.into_iter().collect(),
        "every domain reached the topic"
    );
    assert_eq!(ids, committed, "every committed order, nothing else");
    assert!(repeated.is_empty(), "orders published twice: {repeated:?}");
    assert_commit_order_per_partition(&messages);
}

/// 10,000 replayed records written into the live topic after the live ones,
/// then a SIGKILL with the checkpoint far behind: the restart must find the
/// live records behind the replay and publish nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_into_the_live_topic_does_not_hide_what_the_live_tailer_published() {
    const ORDERS: u64 = 10_000;
    let db = TestDb::create("replay_live").await;
    let topic = unique_name("replay_live");
    let start = replica_gtid_state().await;
    // The checkpoint is written once, early; everything after it is in the
    // topic only.
    let setup = TailerSetup::new(
        test_support::here!(),
        "replay_live",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    );
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(insert_orders(&db.name, [1]))
        .await
        .expect("first order");
    let first = last_gtid(&mut primary).await;
    let mut tailer = setup.spawn();
    setup.wait_checkpoint(first, Duration::from_secs(60), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));

    let tailer = setup.spawn_with(&["--set", "checkpoint.interval=\"1h\""]);
    for chunk in (2..=ORDERS).collect::<Vec<_>>().chunks(1000) {
        primary
            .query_drop(insert_orders(&db.name, chunk.iter().copied()))
            .await
            .expect("orders");
    }
    let last = last_gtid(&mut primary).await;
    wait_for_replica(&mut primary).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while live(&consume_all(&topic)).len() < ORDERS as usize {
        assert!(
            Instant::now() < deadline,
            "the live tailer did not publish {ORDERS} orders in time; log:\n{}",
            tailer.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, _, err) = setup.command(&["replay", "--from", &start, "--to", &last.to_string()]);
    assert_eq!(code, 0, "replay into the live topic:\n{err}");
    tailer.kill();
    let behind = setup.checkpoint().expect("a checkpoint");

    let mut tailer = setup.spawn();
    let started = Instant::now();
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let took = started.elapsed();
    let log = tailer.log();
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));

    let messages = consume_all(&topic);
    let live_messages = live(&messages);
    let (ids, repeated) = repeats(&live_messages);
    println!(
        "{} messages in the live topic: {} live, {} replayed; checkpoint at the SIGKILL {}; \
         restart caught up in {took:?}; frontier read: {}",
        messages.len(),
        live_messages.len(),
        messages.len() - live_messages.len(),
        behind.position,
        log.lines()
            .find(|l| l.contains("read back what the topics hold"))
            .unwrap_or("(not logged)")
    );
    assert_eq!(
        messages.len() - live_messages.len(),
        ORDERS as usize,
        "the replay"
    );
    assert_eq!(ids, (1..=ORDERS).collect::<Vec<_>>(), "every order live");
    assert!(
        repeated.is_empty(),
        "live orders published twice: {} of them",
        repeated.len()
    );
}

/// A batch the topic refuses for good (`max.message.bytes`) stops the tailer
/// before any later record of its partition is written; after the
/// operator raises the limit, a restart publishes every order exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_broker_refuses_leaves_no_gap_and_after_the_fix_every_order_arrives_once() {
    let db = TestDb::create("refused").await;
    let topic = unique_name("refused");
    // One partition: every order behind the refused one is in its partition.
    create_topic_with(&topic, 1, &[("max.message.bytes", "16384")]).await;
    let start = replica_gtid_state().await;
    let setup = TailerSetup::new(
        test_support::here!(),
        "refused",
        &[Tailed::orders(&db, &topic)],
        &start,
        // Small batches, so that only the large order's batch passes the limit.
        "\n[kafka.properties]\n\"batch.size\" = \"4096\"\n",
    );
    let mut primary = connect(Server::Primary, User::Admin).await;
    for id in 1..=300u64 {
        primary
            .query_drop(insert_orders(&db.name, [id]))
            .await
            .expect("order");
        if id == 150 {
            // An order whose event is ~60 KiB of hex digits that do not
            // repeat (so compression keeps it over the topic's limit).
            let mut rng = Lcg(150);
            let items: Vec<String> = (0..300)
                .map(|_| {
                    let sku: String = (0..192)
                        .map(|_| char::from(b"0123456789abcdef"[rng.next(16) as usize]))
                        .collect();
                    format!(r#"{{"sku": "{sku}", "quantity": 1}}"#)
                })
                .collect();
            primary
                .query_drop(format!(
                    "INSERT INTO {}.orders (id, customer_id, amount, currency, status, items, created_at) \
                     VALUES (100000, 1, '1.00', 'EUR', 'created', '[{}]', NOW(6))",
                    db.name,
                    items.join(",")
                ))
                .await
                .expect("the large order");
        }
    }
    let last = last_gtid(&mut primary).await;
    wait_for_replica(&mut primary).await;

    let mut tailer = setup.spawn();
    let status = tailer.wait(Duration::from_secs(120));
    let log = tailer.log();
    assert_eq!(
        status.code(),
        Some(1),
        "a refused record is a definite error; log:\n{log}"
    );
    assert!(
        (log.contains("the broker refused event") || log.contains("the Kafka producer stopped"))
            && log.contains("max.message.bytes"),
        "the error names the refusal and the fix; log:\n{log}"
    );
    let before_fix = consume_all(&topic);
    let (ids, _) = repeats(&before_fix);
    println!(
        "refused: exit 1; the topic held {} orders (ids {:?}..{:?}) when it stopped",
        ids.len(),
        ids.first(),
        ids.last()
    );
    assert!(
        !ids.contains(&100_000),
        "the refused order is not in the topic"
    );
    assert!(
        ids.iter().all(|&id| id <= 150),
        "no order after the refused one reached its partition: {:?}",
        ids.iter().filter(|&&id| id > 150).collect::<Vec<_>>()
    );

    alter_topic(&topic, &[("max.message.bytes", "1048588")]).await;
    let mut tailer = setup.spawn();
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let messages = consume_all(&topic);
    let (ids, repeated) = repeats(&messages);
    let mut expected: Vec<u64> = (1..=300).collect();
    expected.push(100_000);
    expected.sort_unstable();
    println!(
        "after the fix: {} messages for {} orders, {} repeated",
        messages.len(),
        expected.len(),
        repeated.len()
    );
    assert_eq!(ids, expected, "every order after the fix");
    assert!(repeated.is_empty(), "published twice: {repeated:?}");
    assert_commit_order_per_partition(&messages);
}

/// `RESET MASTER` restarts the source's sequence numbers: orders written
/// after it carry GTIDs the topic already holds from before it. The old
/// store must refuse to resume there (the server would accept its GTID and
/// skip the new orders that reuse it), and a store created anew for the
/// reset source must not take the old records for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_store_after_reset_master_skips_nothing_it_never_published() {
    let server = ScratchServer::start(test_support::here!(), ROW_LOGGING).await;
    let db = TestDb {
        name: "shop".into(),
    };
    let mut conn = server.root().await;
    let topic = unique_name("reset_master");
    let insert = |id: u64| insert_orders("shop", [id]);
    let mut orders = BTreeMap::new();
    let first_setup = TailerSetup::new(
        test_support::here!(),
        "reset_master_a",
        &[Tailed::orders(&db, &topic)],
        "earliest",
        "",
    )
    .with_source_port(server.port);
    let mut tailer = first_setup.spawn();
    let mut last = None;
    for id in 1..=5 {
        conn.query_drop(insert(id)).await.expect("order");
        let gtid = last_gtid(&mut conn).await;
        orders.insert(id, gtid);
        last = Some(gtid);
    }
    first_setup.wait_checkpoint(
        last.expect("five orders"),
        Duration::from_secs(60),
        Some(&mut tailer),
    );
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));

    let before_reset = first_setup.checkpoint().expect("a checkpoint");
    conn.query_drop("RESET MASTER").await.expect("RESET MASTER");
    // More transactions than before the reset: the checkpoint's GTID exists
    // again, so the server itself would accept it and skip the new ones.
    for id in 6..=20 {
        conn.query_drop(insert(id)).await.expect("order");
        let gtid = last_gtid(&mut conn).await;
        orders.insert(id, gtid);
        last = Some(gtid);
    }
    // What the topic's newest record from before the reset would cover.
    let newest_old = orders[&5];
    let covered: Vec<u64> = (6..=20)
        .filter(|id| orders[id].domain == newest_old.domain && orders[id].seq <= newest_old.seq)
        .collect();
    println!(
        "GTIDs of the orders before and after RESET MASTER: {orders:?}; \
         orders after it at or before {newest_old}: {covered:?}"
    );
    assert_eq!(
        covered,
        (6..=15).collect::<Vec<_>>(),
        "RESET MASTER restarts sequence numbers"
    );

    // The old store resumes on the reset server: it must not start.
    let mut tailer = first_setup.spawn();
    let status = tailer.wait(Duration::from_secs(60));
    let log = tailer.log();
    println!(
        "the old store on the reset server: exit {:?}; {}",
        status.code(),
        log.lines()
            .find(|l| l.contains("RESET MASTER"))
            .unwrap_or("(no line names RESET MASTER)")
    );
    assert_eq!(status.code(), Some(1), "a definite error; log:\n{log}");
    assert!(
        log.contains("binlog no longer holds it") && log.contains("new checkpoint store"),
        "the error names the reset and the fix; log:\n{log}"
    );
    assert_checkpoint_unchanged(&before_reset, first_setup.checkpoint(), "after the refusal");

    // A store created anew, from the start of the reset binlog.
    let second_setup = TailerSetup::new(
        test_support::here!(),
        "reset_master_b",
        &[Tailed::orders(&db, &topic)],
        "earliest",
        "",
    )
    .with_source_port(server.port);
    let mut tailer = second_setup.spawn();
    second_setup.wait_checkpoint(
        last.expect("twenty orders"),
        Duration::from_secs(60),
        Some(&mut tailer),
    );
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
    let messages = consume_all(&topic);
    let (ids, repeated) = repeats(&messages);
    println!("{} messages; orders {ids:?}", messages.len());
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "nothing skipped");
    assert!(repeated.is_empty(), "published twice: {repeated:?}");
}
