//! The ground every other test stands on: the local MariaDB primary and
//! replica and the Kafka broker started by `tests/env/services.sh` are real,
//! configured as the tailer needs, and work end to end.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Row, TxOpts};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use test_support::{connect, global_var, kafka_bootstrap, unique_name, Server, User};

/// Both servers carry the binlog settings the tailer needs, and the replica is
/// a read-only GTID replica that writes what it applies to its own binlog.
#[tokio::test]
async fn servers_have_the_binlog_settings_the_tailer_needs() {
    for server in [Server::Primary, Server::Replica] {
        let mut conn = connect(server, User::Admin).await;
        for (name, needed) in [
            ("log_bin", "1"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
            ("binlog_checksum", "CRC32"),
            ("log_slave_updates", "1"),
        ] {
            assert_eq!(
                global_var(&mut conn, name).await,
                needed,
                "{server:?}: @@{name}"
            );
        }
        let server_id = global_var(&mut conn, "server_id").await;
        let expected_id = if server == Server::Primary { "1" } else { "2" };
        assert_eq!(server_id, expected_id, "{server:?}: @@server_id");
    }

    let mut replica = connect(Server::Replica, User::Admin).await;
    assert_eq!(global_var(&mut replica, "read_only").await, "1");
    let status: Row = replica
        .query_first("SHOW SLAVE STATUS")
        .await
        .expect("SHOW SLAVE STATUS")
        .expect("the replica has a replication source configured");
    let field = |name: &str| -> String {
        status
            .get_opt::<String, _>(name)
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("SHOW SLAVE STATUS has no {name}"))
    };
    assert_eq!(field("Using_Gtid"), "Slave_Pos");
    assert_eq!(field("Slave_IO_Running"), "Yes");
    assert_eq!(field("Slave_SQL_Running"), "Yes");
    assert_eq!(field("Master_Port"), Server::Primary.port().to_string());
}

/// A row committed on the primary is applied by the replica, and the
/// replica's own binlog carries it under the primary's GTID (same domain,
/// server id and sequence number): the property that lets the tailer move
/// between servers by GTID.
#[tokio::test]
async fn row_committed_on_primary_reaches_replica_binlog_under_the_same_gtid() {
    let db = unique_name("foundation");
    let mut primary = connect(Server::Primary, User::Admin).await;
    let mut replica = connect(Server::Replica, User::Admin).await;

    // Where the replica's binlog stands before the change.
    let (start_file, start_pos): (String, u64) = {
        let row: Row = replica
            .query_first("SHOW MASTER STATUS")
            .await
            .expect("SHOW MASTER STATUS")
            .expect("the replica writes a binlog");
        (row.get(0).expect("File"), row.get(1).expect("Position"))
    };

    primary
        .query_drop(format!(
            "CREATE DATABASE {db}; \
             CREATE TABLE {db}.notes (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL) ENGINE=InnoDB"
        ))
        .await
        .expect("create the test's database");
    let note = "über 🚀 ✓";
    let mut tx = primary
        .start_transaction(TxOpts::default())
        .await
        .expect("begin");
    tx.exec_drop(
        format!("INSERT INTO {db}.notes (id, note) VALUES (?, ?)"),
        (1, note),
    )
    .await
    .expect("insert");
    tx.commit().await.expect("commit");
    let gtid: String = primary
        .query_first("SELECT @@last_gtid")
        .await
        .expect("SELECT @@last_gtid")
        .expect("a GTID for the committed transaction");
    let primary_id = global_var(&mut primary, "server_id").await;
    assert!(
        gtid.split('-').nth(1) == Some(primary_id.as_str()),
        "GTID {gtid} names the primary's server id {primary_id}"
    );

    // The replica applies it...
    let waited: i64 = replica
        .exec_first("SELECT MASTER_GTID_WAIT(?, 30)", (gtid.as_str(),))
        .await
        .expect("MASTER_GTID_WAIT")
        .expect("a result");
    assert_eq!(
        waited, 0,
        "the replica did not apply GTID {gtid} within 30 s"
    );
    let on_replica: Option<String> = replica
        .query_first(format!("SELECT note FROM {db}.notes WHERE id = 1"))
        .await
        .expect("select on the replica");
    assert_eq!(on_replica.as_deref(), Some(note));

    // ...and writes it to its own binlog under the primary's GTID.
    let files: Vec<String> = replica
        .query_map("SHOW BINARY LOGS", |row: Row| {
            row.get::<String, _>(0).expect("Log_name")
        })
        .await
        .expect("SHOW BINARY LOGS");
    let mut gtid_events = Vec::new();
    for file in files.iter().skip_while(|f| **f != start_file) {
        let from = if *file == start_file { start_pos } else { 4 };
        let events: Vec<(String, u32, String)> = replica
            .query_map(
                format!("SHOW BINLOG EVENTS IN '{file}' FROM {from}"),
                |row: Row| {
                    (
                        row.get::<String, _>("Event_type").expect("Event_type"),
                        row.get::<u32, _>("Server_id").expect("Server_id"),
                        row.get::<String, _>("Info").expect("Info"),
                    )
                },
            )
            .await
            .expect("SHOW BINLOG EVENTS");
        gtid_events.extend(
            events.into_iter().filter(|(kind, _, info)| {
                kind == "Gtid" && info.ends_with(&format!("GTID {gtid}"))
            }),
        );
    }
    assert_eq!(
        gtid_events.len(),
        1,
        "the replica's binlog holds GTID {gtid} exactly once; found {gtid_events:?}"
    );
    assert_eq!(
        gtid_events[0].1.to_string(),
        primary_id,
        "the event keeps the primary's server id"
    );

    primary
        .query_drop(format!("DROP DATABASE {db}"))
        .await
        .expect("drop the test's database");
}

/// Each application user can do its job and nothing more.
#[tokio::test]
async fn users_have_least_privilege() {
    // orders_app may insert orders (rolled back: nothing reaches the binlog)...
    let mut orders_app = connect(Server::Primary, User::OrdersApp).await;
    let mut tx = orders_app
        .start_transaction(TxOpts::default())
        .await
        .expect("begin");
    tx.query_drop(
        "INSERT INTO shop.orders (customer_id, amount, currency, items) \
         VALUES (1, '10.00', 'EUR', '[]')",
    )
    .await
    .expect("orders_app may insert into shop.orders");
    tx.rollback().await.expect("rollback");
    // ...but not create databases, nor read payments.
    let denied = orders_app
        .query_drop("CREATE DATABASE t_should_not_exist")
        .await;
    assert_access_denied(denied, "orders_app CREATE DATABASE");
    let denied = orders_app
        .query_drop("SELECT * FROM payments.payments LIMIT 1")
        .await;
    assert_access_denied(denied, "orders_app SELECT payments");

    // The tailer may read the binlog's state and the orders, never write.
    let mut tailer = connect(Server::Replica, User::Tailer).await;
    let _: Vec<Row> = tailer
        .query("SHOW BINARY LOGS")
        .await
        .expect("tailer may list the binlogs (BINLOG MONITOR)");
    let _: Vec<Row> = tailer
        .query("SELECT id FROM shop.orders LIMIT 1")
        .await
        .expect("tailer may read shop.orders");
    let grants: Vec<String> = tailer.query("SHOW GRANTS").await.expect("SHOW GRANTS");
    assert!(
        grants.iter().any(|g| g.contains("REPLICATION SLAVE")),
        "tailer holds REPLICATION SLAVE: {grants:?}"
    );
    // On the primary, where read_only does not answer first.
    let denied = connect(Server::Primary, User::Tailer)
        .await
        .query_drop(
            "INSERT INTO shop.orders (customer_id, amount, currency, items) \
             VALUES (1, '1.00', 'EUR', '[]')",
        )
        .await;
    assert_access_denied(denied, "tailer INSERT");

    // payments_app lives in its own database only.
    let mut payments_app = connect(Server::Primary, User::PaymentsApp).await;
    let _: Vec<Row> = payments_app
        .query("SELECT id FROM payments.payments LIMIT 1")
        .await
        .expect("payments_app may read payments");
    let denied = payments_app
        .query_drop("SELECT id FROM shop.orders LIMIT 1")
        .await;
    assert_access_denied(denied, "payments_app SELECT shop.orders");
}

fn assert_access_denied(result: Result<(), mysql_async::Error>, what: &str) {
    match result {
        Err(mysql_async::Error::Server(e)) => assert!(
            // 1044 database access denied, 1142 table access denied, 1227 privilege needed.
            [1044, 1142, 1227].contains(&e.code),
            "{what}: expected access denied, got error {} {}",
            e.code,
            e.message
        ),
        other => panic!("{what}: expected access denied, got {other:?}"),
    }
}

/// A message produced with acks=all and idempotence on is acknowledged with
/// an offset and consumed back unchanged: key, payload and headers.
#[tokio::test]
async fn kafka_round_trip_with_acks_all_and_idempotence() {
    let topic = unique_name("foundation");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("create_topics request");
    for result in created {
        result.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let mut sent = BTreeMap::new();
    for i in 0..20u32 {
        let key = format!("order-{}", i % 5);
        let payload = format!("{{\"n\":{i}}}");
        let delivery = producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "n",
                        value: Some(i.to_string().as_bytes()),
                    })),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("message {i} not acknowledged: {e}"));
        assert!(delivery.offset >= 0, "acknowledged with an offset");
        sent.insert(i, (key, payload, delivery.partition));
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", &topic)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.len() < sent.len() {
        let msg = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {} messages consumed within 60 s",
                    received.len(),
                    sent.len()
                )
            })
            .expect("consume");
        let n: u32 = msg
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "n"))
            .and_then(|h| h.value)
            .map(|v| {
                String::from_utf8_lossy(v)
                    .parse()
                    .expect("header n is a number")
            })
            .expect("header n");
        let key = String::from_utf8(msg.key().expect("key").to_vec()).expect("utf-8 key");
        let payload =
            String::from_utf8(msg.payload().expect("payload").to_vec()).expect("utf-8 payload");
        assert!(
            received
                .insert(n, (key, payload, msg.partition()))
                .is_none(),
            "message {n} consumed twice"
        );
    }
    assert_eq!(received, sent);

    admin
        .delete_topics(&[&topic], &options)
        .await
        .expect("delete the test's topic");
}
