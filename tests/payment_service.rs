//! The payment service end to end: the real `payment-service` binary
//! consuming from the real broker and writing to the real MariaDB primary.
//! Each test has its own payments database (schemas/payments.sql under
//! another name), its own topics and its own consumer group, and produces
//! its events itself in the exact format binlog-tailer publishes.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value as Json};
use test_support::kafka::{committed_offsets, create_topic, high_watermarks, read_topic};
use test_support::services::{sample, PaymentService};
use test_support::{connect, free_port, http_get, kafka_bootstrap, unique_name, Server, User};

// ---------------------------------------------------------------------------
// Fixtures: database, topics, events.

/// A payments database of the test's own, created from schemas/payments.sql
/// with the database name replaced, writable by payments_app.
struct PayDb {
    name: String,
}

impl PayDb {
    async fn create() -> PayDb {
        PayDb {
            name: test_support::services::PaymentsDb::create("pay").await.name,
        }
    }

    /// Every payment row: order id → (event id, amount text, currency).
    async fn payments(&self) -> BTreeMap<u64, (String, String, String)> {
        let mut admin = connect(Server::Primary, User::Admin).await;
        let rows: Vec<(u64, String, String, String)> = admin
            .query(format!(
                "SELECT order_id, event_id, CAST(amount AS CHAR), currency FROM {}.payments",
                self.name
            ))
            .await
            .expect("read payments");
        let n = rows.len();
        let map: BTreeMap<_, _> = rows
            .into_iter()
            .map(|(o, e, a, c)| (o, (e, a, c)))
            .collect();
        assert_eq!(map.len(), n, "order_id is unique");
        map
    }

    async fn count(&self) -> u64 {
        let mut admin = connect(Server::Primary, User::Admin).await;
        admin
            .query_first(format!("SELECT COUNT(*) FROM {}.payments", self.name))
            .await
            .expect("count")
            .unwrap_or(0)
    }
}

/// An order and its OrderCreated event, as binlog-tailer publishes it.
#[derive(Debug, Clone)]
struct OrderEvent {
    order_id: u64,
    amount: String,
    currency: &'static str,
    /// GTID sequence number and row index: the event id is `0-1-<seq>.<row>`.
    seq: u64,
    row: u64,
}

impl OrderEvent {
    fn new(order_id: u64) -> OrderEvent {
        const SPECIAL: [&str; 5] = ["0.01", "9999999999.99", "0.00", "1234567890.12", "19.99"];
        const CURRENCIES: [&str; 3] = ["EUR", "USD", "JPY"];
        let amount = match SPECIAL.get(order_id as usize % 40) {
            Some(s) => (*s).to_owned(),
            None => format!("{}.{:02}", order_id * 7919 % 100_000, order_id * 37 % 100),
        };
        OrderEvent {
            order_id,
            amount,
            currency: CURRENCIES[order_id as usize % 3],
            // Three orders per source transaction.
            seq: 5000 + order_id / 3,
            row: order_id % 3,
        }
    }

    fn event_id(&self) -> String {
        format!("0-1-{}.{}", self.seq, self.row)
    }

    fn payload(&self) -> Json {
        json!({
            "specversion": "1.0",
            "id": self.event_id(),
            "source": "/mariadb/shop/shop/orders",
            "type": "shop.order.created.v1",
            "subject": self.order_id.to_string(),
            "time": "2026-11-26T05:59:41Z",
            "datacontenttype": "application/json",
            "dataschema": "urn:binlog-tailer:schema:order_created.v1",
            "binloggtid": format!("0-1-{}", self.seq),
            "binlogrow": self.row,
            "binlogserverid": 2,
            "binlogfile": "mariadb-bin.000002",
            "binlogpos": 4000 + self.seq * 512,
            "data": {
                "id": self.order_id,
                "customer_id": self.order_id % 7 + 1,
                "amount": self.amount,
                "currency": self.currency,
                "status": "created",
                "items": [{"sku": format!("sku-{}", self.order_id), "qty": 1}],
                "created_at": "2026-11-26 05:59:41.318802"
            }
        })
    }

    /// The headers binlog-tailer sets: live (`binlog.epoch`) or replayed
    /// (`binlog.replay`).
    fn headers(&self, replay: bool) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (
                "content-type",
                "application/cloudevents+json; charset=UTF-8".to_owned(),
            ),
            ("binlog.gtid", format!("0-1-{}", self.seq)),
            ("binlog.row", self.row.to_string()),
            ("binlog.server_id", "2".to_owned()),
            ("binlog.file", "mariadb-bin.000002".to_owned()),
            ("binlog.pos", (4000 + self.seq * 512).to_string()),
        ];
        if replay {
            h.push(("binlog.replay", "1".to_owned()));
        } else {
            h.push(("binlog.epoch", "1".to_owned()));
        }
        h
    }

    fn message(&self, replay: bool) -> Msg {
        Msg {
            key: Some(self.order_id.to_string().into_bytes()),
            payload: Some(self.payload().to_string().into_bytes()),
            headers: self.headers(replay),
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone)]
struct Msg {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
}

fn schema_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/order_created.v1.json"),
    )
    .expect("schema file");
    let schema: Json = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // The tailer's partitioner: the Java client's murmur2 of the key.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "2")
        .create()
        .expect("producer")
}

/// Produces `messages` in order and waits for every acknowledgement;
/// returns each one's (partition, offset).
async fn produce(producer: &FutureProducer, topic: &str, messages: &[Msg]) -> Vec<(i32, i64)> {
    let mut pending = Vec::with_capacity(messages.len());
    for m in messages {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(k) = &m.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &m.payload {
            record = record.payload(p.as_slice());
        }
        // Sequential sends keep the order within each partition.
        pending.push(
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|d| (d.partition, d.offset))
                .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}")),
        );
    }
    pending
}

/// Produces `messages` without waiting for each acknowledgement before the
/// next (the idempotent producer keeps their order within each partition),
/// then waits for all of them: a backlog in seconds. Returns each one's
/// (partition, offset).
async fn produce_all(producer: &FutureProducer, topic: &str, messages: &[Msg]) -> Vec<(i32, i64)> {
    let mut pending = Vec::with_capacity(messages.len());
    for m in messages {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(k) = &m.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &m.payload {
            record = record.payload(p.as_slice());
        }
        match producer.send_result(record) {
            Ok(delivery) => pending.push(delivery),
            Err((e, _)) => panic!("queueing a record for {topic}: {e}"),
        }
    }
    let mut placed = Vec::with_capacity(pending.len());
    for delivery in pending {
        match delivery.await {
            Ok(Ok(d)) => placed.push((d.partition, d.offset)),
            Ok(Err((e, _))) => panic!("producing to {topic}: {e}"),
            Err(e) => panic!("producing to {topic}: {e}"),
        }
    }
    placed
}

// ---------------------------------------------------------------------------
// The service process.

/// What a test's service instance is configured with.
struct Setup {
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    group: String,
}

impl Setup {
    fn new(name: &str, db: &PayDb, topic: &str, dlq: &str, db_port: u16) -> Setup {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name(name));
        std::fs::create_dir_all(&dir).expect("test dir");
        let config = dir.join("payment-service.toml");
        let port = free_port();
        let group = unique_name("group");
        let text = format!(
            r#"
[database]
host = "127.0.0.1"
port = {db_port}
user = "{user}"
database = "{db}"
timeout = "3s"
retry_backoff_min = "50ms"
retry_backoff_max = "500ms"
health_interval = "300ms"

[kafka]
bootstrap_servers = "{kafka}"
topic = "{topic}"
group_id = "{group}"
dead_letter_topic = "{dlq}"
commit_interval = "1s"
request_timeout = "20s"

[kafka.consumer_properties]
# A SIGKILLed member leaves the group after this, not after the default 45 s.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[http]
listen = "127.0.0.1:{port}"
"#,
            user = User::PaymentsApp.credentials().0,
            db = db.name,
            kafka = kafka_bootstrap(),
        );
        std::fs::write(&config, text).expect("write config");
        Setup {
            dir,
            config,
            port,
            group,
        }
    }

    /// Starts the binary, its log in `<dir>/service-<n>.log`, and waits for
    /// `/healthz`.
    fn spawn(&self) -> PaymentService {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        PaymentService::start_as_configured(
            test_support::here!(),
            &self.config,
            self.port,
            self.dir.join(format!("service-{n}.log")),
            "info,payment_service=debug",
        )
    }
}

/// Checks each row against the event that charged it.
fn assert_payments_match(
    payments: &BTreeMap<u64, (String, String, String)>,
    expected: &BTreeMap<u64, OrderEvent>,
) {
    let missing: Vec<u64> = expected
        .keys()
        .filter(|id| !payments.contains_key(id))
        .copied()
        .collect();
    assert!(missing.is_empty(), "orders without a payment: {missing:?}");
    let extra: Vec<u64> = payments
        .keys()
        .filter(|id| !expected.contains_key(id))
        .copied()
        .collect();
    assert!(extra.is_empty(), "payments for unknown orders: {extra:?}");
    for (id, (event_id, amount, currency)) in payments {
        let e = &expected[id];
        assert_eq!(amount, &e.amount, "order {id}: amount");
        assert_eq!(currency, e.currency, "order {id}: currency");
        assert_eq!(event_id, &e.event_id(), "order {id}: event id");
    }
}

// ---------------------------------------------------------------------------
// The tests.

/// 200 orders, 40 of them delivered more than once (repeated in the topic,
/// replayed with the same event id, or a second event with another id for
/// the same order): exactly one payment per order with the event's amount,
/// the repeats counted as duplicates, and after SIGTERM the group's offsets
/// committed to the end of every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_order_is_charged_once_whatever_the_duplicates() {
    let db = PayDb::create().await;
    let topic = unique_name("orders");
    let dlq = unique_name("dlq");
    create_topic(&topic, 3).await;
    create_topic(&dlq, 1).await;
    let setup = Setup::new("pay_dup", &db, &topic, &dlq, Server::Primary.port());
    let mut service = setup.spawn();

    let validator = schema_validator();
    let orders: BTreeMap<u64, OrderEvent> = (1..=200).map(|id| (id, OrderEvent::new(id))).collect();
    let mut messages = Vec::new();
    let mut duplicates = 0;
    for (id, order) in &orders {
        let m = order.message(false);
        if let Err(e) = validator.validate(&order.payload()) {
            panic!("the test's event does not match the schema: {e}");
        }
        messages.push(m.clone());
        // Every 10th: the same record twice in the topic.
        if id % 10 == 0 {
            messages.push(m);
            duplicates += 1;
        }
    }
    // Every 13th: replayed later (binlog-tailer replay: same id, same bytes).
    for (_, order) in orders.iter().filter(|(id, _)| *id % 13 == 0) {
        messages.push(order.message(true));
        duplicates += 1;
    }
    // Every 40th: a second event for the same order with another id and
    // amount. The order is already charged: nothing more.
    for (_, order) in orders.iter().filter(|(id, _)| *id % 40 == 7) {
        let mut other = order.clone();
        other.seq += 1_000_000;
        other.amount = "1.00".into();
        messages.push(other.message(false));
        duplicates += 1;
    }
    let producer = producer();
    let started = Instant::now();
    produce(&producer, &topic, &messages).await;
    let total = messages.len() as u64;

    service
        .wait_until("every message processed", Duration::from_secs(90), || {
            let done = service_processed(setup.port) >= total;
            async move { done }
        })
        .await;
    let elapsed = started.elapsed();

    let payments = db.payments().await;
    assert_eq!(payments.len(), 200);
    assert_payments_match(&payments, &orders);
    assert_eq!(service.outcome("charged"), 200);
    assert_eq!(service.outcome("duplicate"), duplicates);
    assert_eq!(service.outcome("dead_lettered"), 0);
    assert!(read_topic(&dlq).is_empty(), "nothing dead-lettered");
    println!(
        "{total} messages ({duplicates} duplicates) → {} payments in {elapsed:.1?}",
        payments.len()
    );

    let status = service.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "clean exit after SIGTERM");
    assert_eq!(
        committed_offsets(&setup.group, &topic, 3),
        high_watermarks(&topic, 3),
        "every processed offset committed at shutdown"
    );
    // A restart repeats nothing.
    let mut again = setup.spawn();
    again
        .wait_until("partitions assigned", Duration::from_secs(30), || {
            let assigned = matches!(http_get(setup.port, "/metrics"), Ok((200, m)) if sample(&m, "payment_service_assigned_partitions") == 3.0);
            async move { assigned }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        again.processed(),
        0,
        "a clean restart processes nothing again"
    );
    assert_eq!(db.count().await, 200);
    assert_eq!(again.terminate(Duration::from_secs(30)).code(), Some(0));
}

fn service_processed(port: u16) -> u64 {
    let Ok((200, body)) = http_get(port, "/metrics") else {
        return 0;
    };
    ["charged", "duplicate", "dead_lettered", "snapshot_skipped"]
        .iter()
        .map(|o| {
            sample(
                &body,
                &format!("payment_service_events_total{{outcome=\"{o}\"}}"),
            ) as u64
        })
        .sum()
}

/// SIGKILL twice while a backlog is being charged, restart each time: every
/// order charged exactly once, none missing. (Large enough that batches of
/// 500 do not drain it between two looks at the table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_and_charges_nothing_twice() {
    const ORDERS: u64 = 30_000;
    let db = PayDb::create().await;
    let topic = unique_name("orders");
    let dlq = unique_name("dlq");
    create_topic(&topic, 3).await;
    create_topic(&dlq, 1).await;
    let setup = Setup::new("pay_kill", &db, &topic, &dlq, Server::Primary.port());

    let orders: BTreeMap<u64, OrderEvent> =
        (1..=ORDERS).map(|id| (id, OrderEvent::new(id))).collect();
    let messages: Vec<Msg> = orders.values().map(|o| o.message(false)).collect();
    let producer = producer();
    produce_all(&producer, &topic, &messages).await;

    let started = Instant::now();
    let mut kills = Vec::new();
    for threshold in [ORDERS / 5, ORDERS / 2] {
        let mut service = setup.spawn();
        let db = &db;
        service
            .wait_until(
                &format!("{threshold} payments before the kill"),
                Duration::from_secs(90),
                || async move { db.count().await >= threshold },
            )
            .await;
        service.kill();
        let at_kill = db.count().await;
        assert!(
            at_kill < ORDERS,
            "the backlog was done before the kill ({at_kill} rows); raise ORDERS"
        );
        kills.push(at_kill);
    }
    let mut service = setup.spawn();
    {
        let db = &db;
        service
            .wait_until(
                "every order charged",
                Duration::from_secs(120),
                || async move { db.count().await >= ORDERS },
            )
            .await;
    }
    // Let the last instance reach the end of every partition.
    let hw: i64 = high_watermarks(&topic, 3).iter().sum();
    service
        .wait_until("the consumer caught up", Duration::from_secs(60), || {
            let lag = service_lag(setup.port);
            async move { lag == Some(0) }
        })
        .await;
    let payments = db.payments().await;
    assert_eq!(payments.len() as u64, ORDERS);
    assert_payments_match(&payments, &orders);
    let repeated = service.outcome("duplicate");
    println!(
        "{ORDERS} orders ({hw} messages), SIGKILLs at {kills:?} rows; the last instance found {repeated} already charged and charged {}; {} payments in {:.1?}",
        service.outcome("charged"),
        payments.len(),
        started.elapsed()
    );
    assert_eq!(service.outcome("dead_lettered"), 0);
    assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
    assert_eq!(db.count().await, ORDERS);
}

fn service_lag(port: u16) -> Option<u64> {
    let Ok((200, body)) = http_get(port, "/metrics") else {
        return None;
    };
    if sample(&body, "payment_service_assigned_partitions") < 1.0 {
        return None;
    }
    Some(sample(&body, "payment_service_consumer_lag_messages") as u64)
}

/// Malformed events go to the dead-letter topic with their reason; the
/// valid events around them are charged, and the service keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_dead_lettered_and_the_rest_charged() {
    let db = PayDb::create().await;
    let topic = unique_name("orders");
    let dlq = unique_name("dlq");
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    let setup = Setup::new("pay_dlq", &db, &topic, &dlq, Server::Primary.port());
    let mut service = setup.spawn();

    let edit = |id: u64, f: &dyn Fn(&mut Json)| -> Msg {
        let order = OrderEvent::new(id);
        let mut doc = order.payload();
        f(&mut doc);
        Msg {
            payload: Some(doc.to_string().into_bytes()),
            ..order.message(false)
        }
    };
    let raw = |id: u64, payload: Option<&[u8]>| -> Msg {
        Msg {
            payload: payload.map(<[u8]>::to_vec),
            ..OrderEvent::new(id).message(false)
        }
    };
    // (message, a part of the dlq.reason it must get)
    let bad: Vec<(Msg, &str)> = vec![
        (
            raw(1001, Some(b"{\"specversion\": \"1.0\", \"id\": ")),
            "not JSON",
        ),
        (raw(1002, Some(&[0xff, 0xfe, 0x00])), "not JSON"),
        (raw(1003, Some(b"[1, 2, 3]")), "not a JSON object"),
        (raw(1004, None), "no payload"),
        (
            edit(1005, &|d| d["type"] = json!("shop.order.cancelled.v1")),
            "wrong event type",
        ),
        (
            edit(1006, &|d| d["data"]["amount"] = json!("-5.00")),
            "negative",
        ),
        (
            edit(1007, &|d| d["data"]["amount"] = json!("12.5")),
            "data.amount \"12.5\" is not a DECIMAL(12,2)",
        ),
        (
            edit(1008, &|d| d["data"]["amount"] = json!("12345678901.00")),
            "is not a DECIMAL(12,2)",
        ),
        (
            edit(1009, &|d| d["data"]["amount"] = json!(12.5)),
            "data.amount must be a string",
        ),
        (
            edit(1010, &|d| {
                d["data"].as_object_mut().map(|o| o.remove("currency"));
            }),
            "data.currency is missing",
        ),
        (
            edit(1011, &|d| {
                d.as_object_mut().map(|o| o.remove("data"));
            }),
            "data is missing",
        ),
        (
            edit(1012, &|d| d["data"]["id"] = json!("1012")),
            "data.id must be an integer",
        ),
        (
            edit(1013, &|d| d["data"]["currency"] = json!("usd")),
            "ISO 4217",
        ),
        (
            edit(1014, &|d| d["id"] = json!("x".repeat(129))),
            "id must be 1 to 128",
        ),
        // The event id of order 1 (charged before) on another order.
        (
            edit(1015, &|d| d["id"] = json!(OrderEvent::new(1).event_id())),
            "event id 0-1-5000.1 already charged order 1; this event is for order 1015",
        ),
    ];
    // Valid orders 1..=15 around and between the bad ones.
    let valid: BTreeMap<u64, OrderEvent> = (1..=15).map(|id| (id, OrderEvent::new(id))).collect();
    let mut messages = Vec::new();
    let mut expected_bad = Vec::new();
    let mut valid_iter = valid.values();
    for (m, reason) in &bad {
        if let Some(v) = valid_iter.next() {
            messages.push(v.message(false));
        }
        expected_bad.push((messages.len(), m.clone(), *reason));
        messages.push(m.clone());
    }
    messages.extend(valid_iter.map(|v| v.message(false)));
    let producer = producer();
    let placed = produce(&producer, &topic, &messages).await;
    let total = messages.len() as u64;

    service
        .wait_until("every message processed", Duration::from_secs(60), || {
            let done = service_processed(setup.port) >= total;
            async move { done }
        })
        .await;
    assert_payments_match(&db.payments().await, &valid);
    assert_eq!(service.outcome("charged"), valid.len() as u64);
    assert_eq!(service.outcome("dead_lettered"), bad.len() as u64);

    let letters = read_topic(&dlq);
    assert_eq!(letters.len(), bad.len(), "one dead letter per bad message");
    for ((index, original, reason), letter) in expected_bad.iter().zip(&letters) {
        let (partition, offset) = placed[*index];
        let got_reason = letter.header("dlq.reason").unwrap_or_default();
        assert!(
            got_reason.contains(reason),
            "dead letter of offset {offset}: reason {got_reason:?} lacks {reason:?}"
        );
        assert_eq!(letter.key, original.key, "original key kept");
        assert_eq!(letter.payload, original.payload, "original payload kept");
        for (k, v) in &original.headers {
            assert_eq!(
                letter.header(k),
                Some(v.as_str()),
                "original header {k} kept"
            );
        }
        assert_eq!(letter.header("dlq.source.topic"), Some(topic.as_str()));
        assert_eq!(
            letter.header("dlq.source.partition"),
            Some(partition.to_string().as_str())
        );
        assert_eq!(
            letter.header("dlq.source.offset"),
            Some(offset.to_string().as_str())
        );
        assert_eq!(
            letter.header("dlq.consumer.group"),
            Some(setup.group.as_str())
        );
        println!(
            "dead letter {}@{}: {got_reason}",
            letter.partition, letter.offset
        );
    }
    let metrics = service.metrics();
    for (reason, n) in [
        ("not_json", 2),
        ("no_payload", 1),
        ("wrong_type", 1),
        ("schema", 10),
        ("event_id_conflict", 1),
    ] {
        assert_eq!(
            sample(
                &metrics,
                &format!("payment_service_dead_letters_total{{reason=\"{reason}\"}}")
            ),
            f64::from(n),
            "dead letters for {reason}"
        );
    }

    // Still running and healthy, and still charging.
    service.assert_running();
    assert_eq!(http_get(setup.port, "/healthz").expect("healthz").0, 200);
    let late = OrderEvent::new(99);
    produce(&producer, &topic, &[late.message(false)]).await;
    service
        .wait_until("the late order charged", Duration::from_secs(30), || {
            let done = service_processed(setup.port) > total;
            async move { done }
        })
        .await;
    let payments = db.payments().await;
    assert_eq!(
        payments.get(&99).map(|p| p.1.as_str()),
        Some(late.amount.as_str())
    );
    assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
}

/// GET /payments/{id}: the payment, 404 for an unknown order, 400 for a
/// non-number; /healthz, /readyz and every documented metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_shows_payments_health_and_metrics() {
    let db = PayDb::create().await;
    let topic = unique_name("orders");
    let dlq = unique_name("dlq");
    create_topic(&topic, 3).await;
    create_topic(&dlq, 1).await;
    let setup = Setup::new("pay_http", &db, &topic, &dlq, Server::Primary.port());
    let mut service = setup.spawn();

    let orders: Vec<OrderEvent> = [1u64, 2, 3, 77]
        .iter()
        .map(|&id| OrderEvent::new(id))
        .collect();
    let messages: Vec<Msg> = orders.iter().map(|o| o.message(false)).collect();
    produce(&producer(), &topic, &messages).await;
    let before = time::OffsetDateTime::now_utc();
    service
        .wait_until("the orders charged", Duration::from_secs(60), || {
            let done = service_processed(setup.port) >= 4;
            async move { done }
        })
        .await;

    for order in &orders {
        let (status, body) =
            http_get(setup.port, &format!("/payments/{}", order.order_id)).expect("GET");
        assert_eq!(status, 200, "{body}");
        let got: Json = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(got["order_id"], json!(order.order_id));
        assert_eq!(got["event_id"], json!(order.event_id()));
        assert_eq!(got["amount"], json!(order.amount));
        assert_eq!(got["currency"], json!(order.currency));
        let charged_at = got["charged_at"].as_str().expect("charged_at");
        let t =
            time::OffsetDateTime::parse(charged_at, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("charged_at {charged_at:?}: {e}"));
        let skew = (t - before).whole_seconds();
        assert!(
            (-120..=120).contains(&skew),
            "charged_at {charged_at} is not now in UTC (skew {skew} s)"
        );
        assert_eq!(got.as_object().map(|o| o.len()), Some(5), "{body}");
    }
    let (status, body) = http_get(setup.port, "/payments/123456789").expect("GET");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no payment for order 123456789"), "{body}");
    let (status, _) = http_get(setup.port, "/payments/abc").expect("GET");
    assert_eq!(status, 400);

    assert_eq!(
        http_get(setup.port, "/healthz").expect("GET"),
        (200, "ok\n".to_owned())
    );
    service
        .wait_until("ready", Duration::from_secs(20), || {
            let ready = matches!(http_get(setup.port, "/readyz"), Ok((200, _)));
            async move { ready }
        })
        .await;
    let metrics = service.metrics();
    for name in payment_service::METRIC_NAMES {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert_eq!(sample(&metrics, "payment_service_db_up"), 1.0);
    assert_eq!(sample(&metrics, "payment_service_ready"), 1.0);
    assert_eq!(sample(&metrics, "payment_service_assigned_partitions"), 3.0);
    assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
}

/// A TCP relay to the MariaDB primary that the test can cut: a database
/// outage without touching the shared server.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay listen");
        let port = listener.local_addr().expect("relay addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, o) = (Arc::clone(&down), Arc::clone(&open));
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if d.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                };
                let pipes = [
                    (inbound.try_clone(), outbound.try_clone()),
                    (outbound.try_clone(), inbound.try_clone()),
                ];
                if let Ok(mut list) = o.lock() {
                    list.extend(inbound.try_clone());
                    list.extend(outbound.try_clone());
                }
                for pipe in pipes {
                    if let (Ok(mut from), Ok(mut to)) = pipe {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    }
                }
            }
        });
        Relay { port, down, open }
    }

    /// Cuts every open connection and refuses new ones (`true`), or lets
    /// them through again.
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            if let Ok(mut list) = self.open.lock() {
                for s in list.drain(..) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// The database goes away: the service stays alive (/healthz 200), says it
/// is not ready (/readyz 503), charges nothing and commits no offset past
/// the waiting message; once the database is back every order is charged
/// exactly once. A SIGTERM while waiting exits 4 and the next start charges
/// the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_holds_the_offsets_until_the_rows_are_in() {
    let db = PayDb::create().await;
    let topic = unique_name("orders");
    let dlq = unique_name("dlq");
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    let relay = Relay::start(Server::Primary.port());
    let setup = Setup::new("pay_outage", &db, &topic, &dlq, relay.port);
    let producer = producer();

    // 1. Down from the start.
    relay.set_down(true);
    let mut service = setup.spawn();
    let first: Vec<OrderEvent> = (1..=20).map(OrderEvent::new).collect();
    produce(
        &producer,
        &topic,
        &first.iter().map(|o| o.message(false)).collect::<Vec<_>>(),
    )
    .await;
    service
        .wait_until("db errors counted", Duration::from_secs(30), || {
            let errors = sample(
                &http_get(setup.port, "/metrics")
                    .map(|r| r.1)
                    .unwrap_or_default(),
                "payment_service_db_errors_total",
            );
            async move { errors >= 5.0 }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, body) = http_get(setup.port, "/readyz").expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database unreachable"), "{body}");
    assert!(body.contains("charging order 1"), "{body}");
    assert!(!body.contains("Kafka"), "the broker is up: {body}");
    assert_eq!(http_get(setup.port, "/healthz").expect("healthz").0, 200);
    assert_eq!(db.count().await, 0);
    assert_eq!(service.processed(), 0);
    assert_eq!(
        committed_offsets(&setup.group, &topic, 1),
        vec![-1],
        "no offset committed"
    );
    println!(
        "down: /readyz 503 ({} db errors so far): {}",
        service.sample("payment_service_db_errors_total"),
        body.replace('\n', " | ")
    );

    // 2. Back: everything charged once, offsets committed.
    relay.set_down(false);
    {
        let db = &db;
        service
            .wait_until(
                "the first 20 charged",
                Duration::from_secs(60),
                || async move { db.count().await >= 20 },
            )
            .await;
    }
    service
        .wait_until("ready again", Duration::from_secs(20), || {
            let ready = matches!(http_get(setup.port, "/readyz"), Ok((200, _)));
            async move { ready }
        })
        .await;

    // 3. Cut mid-stream (pooled connections die), more orders, back again.
    relay.set_down(true);
    let second: Vec<OrderEvent> = (21..=40).map(OrderEvent::new).collect();
    produce(
        &producer,
        &topic,
        &second.iter().map(|o| o.message(false)).collect::<Vec<_>>(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(db.count().await, 20, "nothing charged while down");
    let committed = committed_offsets(&setup.group, &topic, 1)[0];
    assert!(
        committed <= 20,
        "committed offset {committed} passed the waiting message"
    );
    relay.set_down(false);
    {
        let db = &db;
        service
            .wait_until("all 40 charged", Duration::from_secs(60), || async move {
                db.count().await >= 40
            })
            .await;
    }
    service
        .wait_until("all processed", Duration::from_secs(20), || {
            let done = service_processed(setup.port) >= 40;
            async move { done }
        })
        .await;
    let expected: BTreeMap<u64, OrderEvent> = first
        .iter()
        .chain(&second)
        .map(|o| (o.order_id, o.clone()))
        .collect();
    assert_payments_match(&db.payments().await, &expected);
    assert_eq!(service.outcome("charged"), 40);

    // 4. SIGTERM while a charge waits: exit 4, nothing lost.
    relay.set_down(true);
    let last = OrderEvent::new(41);
    produce(&producer, &topic, &[last.message(false)]).await;
    service
        .wait_until(
            "the charge of order 41 is retried",
            Duration::from_secs(30),
            || {
                let stuck = http_get(setup.port, "/readyz")
                    .map(|(_, b)| b.contains("charging order 41"))
                    .unwrap_or(false);
                async move { stuck }
            },
        )
        .await;
    let status = service.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(4), "interrupted exit");
    assert_eq!(committed_offsets(&setup.group, &topic, 1), vec![40]);
    relay.set_down(false);
    let mut service = setup.spawn();
    {
        let db = &db;
        service
            .wait_until(
                "order 41 charged after the restart",
                Duration::from_secs(60),
                || async move { db.count().await >= 41 },
            )
            .await;
    }
    assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
    assert_eq!(committed_offsets(&setup.group, &topic, 1), vec![41]);
}

/// The `payment_service_batch_messages` histogram: (batches, messages).
fn batches(metrics: &str) -> (u64, u64) {
    (
        sample(metrics, "payment_service_batch_messages_count") as u64,
        sample(metrics, "payment_service_batch_messages_sum") as u64,
    )
}

/// A backlog waiting when the service starts is taken in batches, and each
/// batch judged exactly as one message at a time would be: a repeat of an
/// event charged before, a second event for an order charged before, an
/// invalid event, an event id already charged for another order (before,
/// and earlier in the same batch), the same event twice in the batch, and a
/// later event of an order whose first event was dead-lettered. Each order
/// charged once; the invalid and conflicting ones dead-lettered in order;
/// offsets committed past all; no batch fell back to one message per
/// transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_charges_each_order_once_and_dead_letters_as_one_at_a_time_would() {
    let db = PayDb::create().await;
    let topic = unique_name("orders");
    let dlq = unique_name("dlq");
    // One partition: the whole backlog in one fetch, so in one batch.
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    let setup = Setup::new("pay_batch", &db, &topic, &dlq, Server::Primary.port());
    let producer = producer();

    // Orders 1..=5 charged by a first run.
    let before: BTreeMap<u64, OrderEvent> = (1..=5).map(|id| (id, OrderEvent::new(id))).collect();
    produce(
        &producer,
        &topic,
        &before
            .values()
            .map(|o| o.message(false))
            .collect::<Vec<_>>(),
    )
    .await;
    let mut service = setup.spawn();
    service
        .wait_until("orders 1..=5 charged", Duration::from_secs(60), || {
            let done = service_processed(setup.port) >= 5;
            async move { done }
        })
        .await;
    assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
    assert_eq!(committed_offsets(&setup.group, &topic, 1), vec![5]);

    // The backlog, produced while the service is stopped.
    let with_event_id = |id: u64, event_id: String| -> Msg {
        let order = OrderEvent::new(id);
        let mut doc = order.payload();
        doc["id"] = json!(event_id);
        Msg {
            payload: Some(doc.to_string().into_bytes()),
            ..order.message(false)
        }
    };
    let mut expected: BTreeMap<u64, OrderEvent> = before.clone();
    let mut messages = Vec::new();
    let push_new = |messages: &mut Vec<Msg>,
                    expected: &mut BTreeMap<u64, OrderEvent>,
                    ids: std::ops::RangeInclusive<u64>| {
        for id in ids {
            let o = OrderEvent::new(id);
            messages.push(o.message(false));
            expected.insert(id, o);
        }
    };
    push_new(&mut messages, &mut expected, 6..=20);
    // Order 3's event again (a replay): a duplicate.
    messages.push(before[&3].message(true));
    // Not JSON: dead-lettered.
    let invalid = Msg {
        payload: Some(b"{\"specversion\": \"1.0\", \"id\": ".to_vec()),
        ..OrderEvent::new(1001).message(false)
    };
    messages.push(invalid.clone());
    push_new(&mut messages, &mut expected, 21..=30);
    // Order 60 with the event id that charged order 1: dead-lettered.
    let conflict_before = with_event_id(60, OrderEvent::new(1).event_id());
    messages.push(conflict_before.clone());
    // Order 2 again, another event id and amount: a duplicate.
    let mut other = before[&2].clone();
    other.seq += 1_000_000;
    other.amount = "1.00".into();
    messages.push(other.message(false));
    push_new(&mut messages, &mut expected, 31..=40);
    // Order 61 with the event id of order 10, charged earlier in this batch.
    let conflict_in_batch = with_event_id(61, OrderEvent::new(10).event_id());
    messages.push(conflict_in_batch.clone());
    // Order 62's event twice: charged, then a duplicate.
    let twice = OrderEvent::new(62);
    messages.push(twice.message(false));
    messages.push(twice.message(false));
    expected.insert(62, twice);
    // Order 60's own event, after its conflicting one: charged.
    let sixty = OrderEvent::new(60);
    messages.push(sixty.message(false));
    expected.insert(60, sixty);
    push_new(&mut messages, &mut expected, 41..=50);
    let placed = produce(&producer, &topic, &messages).await;
    let total = messages.len() as u64;

    let mut service = setup.spawn();
    service
        .wait_until("the backlog processed", Duration::from_secs(60), || {
            let done = service_processed(setup.port) >= total;
            async move { done }
        })
        .await;

    assert_payments_match(&db.payments().await, &expected);
    assert_eq!(db.count().await, 52, "orders 1..=50, 60 and 62");
    assert_eq!(service.outcome("charged"), 47);
    assert_eq!(service.outcome("duplicate"), 3);
    assert_eq!(service.outcome("dead_lettered"), 3);
    let metrics = service.metrics();
    for (reason, n) in [("not_json", 1.0), ("event_id_conflict", 2.0)] {
        assert_eq!(
            sample(
                &metrics,
                &format!("payment_service_dead_letters_total{{reason=\"{reason}\"}}")
            ),
            n,
            "dead letters for {reason}"
        );
    }
    let (batch_count, batched) = batches(&metrics);
    assert_eq!(batched, total, "every message in a batch");
    assert!(
        batch_count < total / 4,
        "{total} messages in {batch_count} batches: not batched"
    );
    assert_eq!(
        sample(&metrics, "payment_service_batch_fallbacks_total"),
        0.0,
        "the duplicates and conflicts were judged in the batch"
    );

    let letters = read_topic(&dlq);
    let expected_letters = [
        (&invalid, "not JSON"),
        (
            &conflict_before,
            "event id 0-1-5000.1 already charged order 1; this event is for order 60",
        ),
        (
            &conflict_in_batch,
            "event id 0-1-5003.1 already charged order 10; this event is for order 61",
        ),
    ];
    assert_eq!(letters.len(), expected_letters.len(), "dead letters");
    for ((original, reason), letter) in expected_letters.iter().zip(&letters) {
        let got = letter.header("dlq.reason").unwrap_or_default();
        assert!(got.contains(reason), "reason {got:?} lacks {reason:?}");
        assert_eq!(letter.payload, original.payload, "original payload kept");
        let index = messages
            .iter()
            .position(|m| m.payload == original.payload)
            .expect("the original");
        assert_eq!(
            letter.header("dlq.source.offset"),
            Some(placed[index].1.to_string().as_str())
        );
    }
    println!(
        "{total} messages in {batch_count} batch(es): 47 charged, 3 duplicates, 3 dead letters"
    );

    assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
    assert_eq!(
        committed_offsets(&setup.group, &topic, 1),
        high_watermarks(&topic, 1),
        "offsets committed past every message"
    );
}

/// 5,000 events waiting in three partitions (a tenth of them repeated)
/// when the service starts: charged exactly once each, in batches of at
/// most `kafka.batch_max_messages` (500), every offset committed; prints
/// the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_charged_exactly_once_in_batches() {
    const ORDERS: u64 = 5_000;
    let db = PayDb::create().await;
    let topic = unique_name("orders");
    let dlq = unique_name("dlq");
    create_topic(&topic, 3).await;
    create_topic(&dlq, 1).await;
    let setup = Setup::new("pay_backlog", &db, &topic, &dlq, Server::Primary.port());

    let orders: BTreeMap<u64, OrderEvent> =
        (1..=ORDERS).map(|id| (id, OrderEvent::new(id))).collect();
    let mut messages = Vec::new();
    let mut repeats = 0;
    for (id, order) in &orders {
        messages.push(order.message(false));
        if id % 10 == 0 {
            messages.push(order.message(true));
            repeats += 1;
        }
    }
    let total = messages.len() as u64;
    produce_all(&producer(), &topic, &messages).await;

    let started = Instant::now();
    let mut service = setup.spawn();
    service
        .wait_until("the backlog processed", Duration::from_secs(120), || {
            let done = service_processed(setup.port) >= total;
            async move { done }
        })
        .await;
    let elapsed = started.elapsed();

    let payments = db.payments().await;
    assert_eq!(payments.len() as u64, ORDERS);
    assert_payments_match(&payments, &orders);
    assert_eq!(service.outcome("charged"), ORDERS);
    assert_eq!(service.outcome("duplicate"), repeats);
    assert_eq!(service.outcome("dead_lettered"), 0);
    let metrics = service.metrics();
    let (batch_count, batched) = batches(&metrics);
    assert_eq!(batched, total);
    assert_eq!(
        sample(
            &metrics,
            "payment_service_batch_messages_bucket{le=\"500\"}"
        ) as u64,
        batch_count,
        "no batch over kafka.batch_max_messages"
    );
    assert!(
        batch_count * 20 <= total,
        "{total} messages in {batch_count} batches: not batched"
    );
    println!(
        "{total} messages ({repeats} repeats) in {batch_count} batches → {ORDERS} payments \
         in {elapsed:.1?} from the start of the service ({:.0} messages/s, start-up included)",
        total as f64 / elapsed.as_secs_f64()
    );

    assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
    assert_eq!(
        committed_offsets(&setup.group, &topic, 3),
        high_watermarks(&topic, 3),
        "every offset committed"
    );
    assert_eq!(db.count().await, ORDERS);
}

/// A snapshot record of `order`, as `binlog-tailer snapshot` publishes it
/// (id `snapshot:…`, the `binlogsnapshot` extension, `binlog.snapshot`).
fn snapshot_message(order: &OrderEvent) -> Msg {
    let mut payload = order.payload();
    payload["id"] = json!(format!(
        "snapshot:0-1-4999@mariadb-bin.000002:4096:shop.orders:{}",
        order.order_id
    ));
    payload["binloggtid"] = json!("0-1-4999");
    payload["binlogrow"] = json!(0);
    payload["binlogsnapshot"] = json!("00c0ffee00c0ffee");
    let mut headers = order.headers(false);
    headers.push(("binlog.snapshot", "00c0ffee00c0ffee".to_owned()));
    Msg {
        key: Some(order.order_id.to_string().into_bytes()),
        payload: Some(payload.to_string().into_bytes()),
        headers,
    }
}

/// Snapshot records next to live events. With the default
/// `kafka.snapshot_records = "charge"`, a snapshot record charges an order
/// nothing charged yet, and nothing for an order already charged, whichever
/// comes first: no order is charged twice. With `"skip"`, snapshot records
/// charge nothing at all and live events are charged as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_records_never_charge_an_order_twice() {
    let validator = schema_validator();
    let orders: BTreeMap<u64, OrderEvent> = (1..=35).map(|id| (id, OrderEvent::new(id))).collect();
    // Live events for 1..=20; then a snapshot holding 11..=35; then live
    // events for 31..=35 (they were inserted while the snapshot was read).
    let mut messages: Vec<Msg> = (1..=20).map(|id| orders[&id].message(false)).collect();
    for id in 11..=35 {
        let m = snapshot_message(&orders[&id]);
        let payload: Json =
            serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).expect("JSON");
        if let Err(e) = validator.validate(&payload) {
            panic!("the test's snapshot event does not match the schema: {e}");
        }
        messages.push(m);
    }
    messages.extend((31..=35).map(|id| orders[&id].message(false)));

    for skip in [false, true] {
        let db = PayDb::create().await;
        let topic = unique_name("orders");
        let dlq = unique_name("dlq");
        create_topic(&topic, 3).await;
        create_topic(&dlq, 1).await;
        let setup = Setup::new("pay_snapshot", &db, &topic, &dlq, Server::Primary.port());
        if skip {
            let text = std::fs::read_to_string(&setup.config).expect("config");
            let text = text.replacen(
                "request_timeout = \"20s\"\n",
                "request_timeout = \"20s\"\nsnapshot_records = \"skip\"\n",
                1,
            );
            std::fs::write(&setup.config, text).expect("config");
        }
        let mut service = setup.spawn();
        produce(&producer(), &topic, &messages).await;
        let total = messages.len() as u64;
        service
            .wait_until("every message processed", Duration::from_secs(90), || {
                let done = service_processed(setup.port) >= total;
                async move { done }
            })
            .await;
        let payments = db.payments().await;
        if skip {
            // Only the live events: 1..=20 and 31..=35.
            let live: Vec<u64> = (1..=20).chain(31..=35).collect();
            assert_eq!(payments.keys().copied().collect::<Vec<_>>(), live);
            for (id, (event_id, _, _)) in &payments {
                assert_eq!(event_id, &orders[id].event_id(), "order {id}");
            }
            assert_eq!(service.outcome("snapshot_skipped"), 25);
            assert_eq!(service.outcome("charged"), 25);
            assert_eq!(service.outcome("duplicate"), 0);
        } else {
            // Every order once: 1..=20 by their live events, 21..=35 by
            // their snapshot records; the rest are duplicates.
            assert_eq!(payments.len(), 35);
            for (id, (event_id, amount, currency)) in &payments {
                let order = &orders[id];
                let want = if *id <= 20 {
                    order.event_id()
                } else {
                    format!("snapshot:0-1-4999@mariadb-bin.000002:4096:shop.orders:{id}")
                };
                assert_eq!(event_id, &want, "order {id}: charged by");
                assert_eq!(amount, &order.amount, "order {id}");
                assert_eq!(currency, order.currency, "order {id}");
            }
            assert_eq!(service.outcome("charged"), 35);
            assert_eq!(service.outcome("duplicate"), 15);
            assert_eq!(service.outcome("snapshot_skipped"), 0);
        }
        assert_eq!(service.outcome("dead_lettered"), 0);
        assert_eq!(service.terminate(Duration::from_secs(30)).code(), Some(0));
    }
}
