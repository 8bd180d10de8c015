//! The whole system end to end: order-service (HTTP → MariaDB primary),
//! binlog-tailer (replica → Kafka), payment-service (Kafka → its own
//! database). 2,000 orders posted concurrently must each be charged exactly
//! once, for exactly their amount, through two SIGKILLs of the
//! payment-service and a replay of the tailer over orders already paid.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;
use test_support::services::{OrderService, PaymentService, PaymentsDb};
use test_support::tailer::{replica_gtid_state, Tailed, TailerSetup, TestDb};
use test_support::{connect, kafka_bootstrap, unique_name, Server, User};

const ORDERS: u64 = 2_000;
const CLIENTS: u64 = 8;

async fn payment_count(db: &str) -> u64 {
    let mut admin = connect(Server::Primary, User::Admin).await;
    admin
        .query_first(format!("SELECT COUNT(*) FROM {db}.payments"))
        .await
        .expect("count")
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_order_is_charged_exactly_once() {
    let shop = TestDb::create("system").await;
    let mut admin = connect(Server::Primary, User::Admin).await;
    admin
        .query_drop(format!(
            "GRANT SELECT, INSERT ON {}.* TO '{}'@'127.0.0.1'",
            shop.name,
            User::OrdersApp.credentials().0
        ))
        .await
        .expect("grant orders_app");
    let pay_db = PaymentsDb::create("pay").await.name;
    let topic = unique_name("orders");
    let dlq = format!("{topic}.dlq");
    test_support::kafka::create_topic(&topic, 3).await;
    test_support::kafka::create_topic(&dlq, 3).await;
    let start = replica_gtid_state().await;

    // The tailer on the replica.
    let tailer_setup = TailerSetup::new(
        test_support::here!(),
        "system",
        &[Tailed::orders(&shop, &topic)],
        &start,
        "",
    );
    let mut tailer = tailer_setup.spawn();

    // The payment service, consuming the tailer's topic.
    let pay_config = tailer_setup.dir.join("payment-service.toml");
    std::fs::write(
        &pay_config,
        format!(
            "[database]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\ndatabase = \"{pay_db}\"\n\n\
             [kafka]\nbootstrap_servers = \"{kafka}\"\ntopic = \"{topic}\"\ngroup_id = \"{group}\"\n\
             dead_letter_topic = \"{dlq}\"\n\n\
             # A SIGKILLed member leaves the group after 6 s, not after the default 45 s.\n\
             [kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\
             \"heartbeat.interval.ms\" = \"1000\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n",
            port = Server::Primary.port(),
            user = User::PaymentsApp.credentials().0,
            kafka = kafka_bootstrap(),
            group = unique_name("payments"),
        ),
    )
    .expect("payment config");
    let mut payments = Some(PaymentService::start(
        test_support::here!(),
        &pay_config,
        Server::Primary.port(),
    ));

    // The order service, and 2,000 orders from 8 concurrent clients.
    let orders = OrderService::start(test_support::here!(), &shop.name, Server::Primary.port());
    let began = Instant::now();
    let created: Arc<Mutex<BTreeMap<u64, String>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let port = orders.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let created = Arc::clone(&created);
            std::thread::spawn(move || {
                for n in 0..ORDERS / CLIENTS {
                    let cents = (c * 1000 + n) % 100_000 + 1;
                    let body = json!({
                        "customer_id": c + 1,
                        "amount": format!("{}.{:02}", cents / 100, cents % 100),
                        "currency": "EUR",
                        "items": [{"sku": format!("sku-{c}-{n}"), "qty": 1}]
                    });
                    let (status, text) = test_support::http_request(
                        port,
                        "POST",
                        "/orders",
                        Some(body.to_string().as_bytes()),
                    )
                    .expect("POST /orders");
                    assert_eq!(status, 201, "{text}");
                    let order = test_support::services::json_body(&text);
                    let id = order["id"].as_u64().expect("id");
                    let amount = order["amount"].as_str().expect("amount").to_owned();
                    created.lock().expect("lock").insert(id, amount);
                }
            })
        })
        .collect();

    // Kill the payment service twice while orders flow and are charged.
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    for threshold in [400, 1_100] {
        while payment_count(&pay_db).await < threshold {
            assert!(
                Instant::now() < deadline,
                "payments stalled below {threshold}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(service) = payments.take() {
            service.kill();
            kills += 1;
        }
        payments = Some(PaymentService::start(
            test_support::here!(),
            &pay_config,
            Server::Primary.port(),
        ));
    }
    for client in clients {
        client.join().expect("client");
    }
    let posted_in = began.elapsed();
    let created = Arc::try_unwrap(created)
        .expect("one owner")
        .into_inner()
        .expect("lock");
    assert_eq!(created.len() as u64, ORDERS);

    while payment_count(&pay_db).await < ORDERS {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            panic!("the tailer exited ({status}); log:\n{}", tailer.log());
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {ORDERS} orders paid after 300 s; payment log:\n{}",
            payment_count(&pay_db).await,
            payments.as_ref().map(|p| p.log()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_paid_in = began.elapsed();

    // Exactly one payment per order, for exactly its amount.
    let rows: Vec<(u64, String, String)> = admin
        .query(format!(
            "SELECT order_id, CAST(amount AS CHAR), currency FROM {pay_db}.payments ORDER BY order_id"
        ))
        .await
        .expect("payments");
    assert_eq!(rows.len() as u64, ORDERS, "one payment per order");
    for (order_id, amount, currency) in &rows {
        assert_eq!(
            created.get(order_id),
            Some(amount),
            "order {order_id}: charged its amount"
        );
        assert_eq!(currency, "EUR");
    }

    // A replay of the tailer over orders already paid: every event again,
    // no second charge.
    let duplicates_before = payments.as_ref().map_or(0.0, |p| {
        p.metric("payment_service_events_total{outcome=\"duplicate\"")
    });
    let (code, _, err) = tailer_setup.command(&["replay", "--from", &start]);
    assert_eq!(code, 0, "replay: {err}");
    let replay_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let duplicates = payments.as_ref().map_or(0.0, |p| {
            p.metric("payment_service_events_total{outcome=\"duplicate\"")
        });
        if duplicates - duplicates_before >= ORDERS as f64 {
            break;
        }
        assert!(
            Instant::now() < replay_deadline,
            "the payment-service saw {} of {ORDERS} replayed events as duplicates",
            duplicates - duplicates_before
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        payment_count(&pay_db).await,
        ORDERS,
        "the replay charged nothing twice"
    );

    println!(
        "{ORDERS} orders from {CLIENTS} clients posted in {:.1} s ({:.0} orders/s accepted); \
         all paid {:.1} s after the first post ({:.0} orders/s end to end); \
         payment-service SIGKILLed {kills} times; a replay of all {ORDERS} events charged nothing",
        posted_in.as_secs_f64(),
        ORDERS as f64 / posted_in.as_secs_f64(),
        all_paid_in.as_secs_f64(),
        ORDERS as f64 / all_paid_in.as_secs_f64()
    );
    drop(orders);
    drop(payments);
    assert_eq!(tailer.terminate(Duration::from_secs(30)).code(), Some(0));
}
