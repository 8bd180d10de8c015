//! Every ordinary way rows reach a tailed table, on a partitioned `orders`
//! table, read from the replica: a trigger on another table, INSERT …
//! SELECT, LOAD DATA LOCAL INFILE (through the `mariadb` client), and
//! upserts (INSERT … ON DUPLICATE KEY UPDATE: a new key is an order created,
//! an existing key an update, which publishes nothing). The topic holds
//! exactly the orders that were created, once each.

use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use test_support::tailer::{
    consume_all, last_gtid, replica_gtid_state, wait_for_replica, Tailed, TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_insert_select_load_data_upserts_and_partitions_publish_exactly_the_new_orders() {
    let db = TestDb::create("row_sources").await;
    let name = &db.name;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(format!(
            "ALTER TABLE {name}.orders PARTITION BY HASH (id) PARTITIONS 4; \
             CREATE TABLE {name}.staging LIKE {name}.orders; \
             ALTER TABLE {name}.staging REMOVE PARTITIONING; \
             CREATE TABLE {name}.intake (id BIGINT UNSIGNED PRIMARY KEY, customer_id BIGINT UNSIGNED); \
             CREATE TRIGGER {name}.intake_to_orders AFTER INSERT ON {name}.intake FOR EACH ROW \
               INSERT INTO {name}.orders (id, customer_id, amount, currency, items, created_at) \
               VALUES (NEW.id, NEW.customer_id, '1.00', 'EUR', '[]', NOW(6))"
        ))
        .await
        .expect("a partitioned orders table, a staging table, a trigger");
    wait_for_replica(&mut primary).await;
    let topic = unique_name("row_sources");
    let setup = TailerSetup::new(
        test_support::here!(),
        "row_sources",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    );
    let mut tailer = setup.spawn();

    let values = |id: u64| format!("({id}, {}, '9.99', 'EUR', '[]', NOW(6))", id % 5 + 1);
    let columns = "(id, customer_id, amount, currency, items, created_at)";
    // A trigger: orders 1, 2 come from rows of another table.
    primary
        .query_drop(format!("INSERT INTO {name}.intake VALUES (1, 1), (2, 2)"))
        .await
        .expect("trigger");
    // INSERT … SELECT: orders 10-12 from staging.
    primary
        .query_drop(format!(
            "INSERT INTO {name}.staging {columns} VALUES {}, {}, {}; \
             INSERT INTO {name}.orders SELECT * FROM {name}.staging",
            values(10),
            values(11),
            values(12)
        ))
        .await
        .expect("INSERT … SELECT");
    // Upserts: 12 exists (an update, nothing published), 13 is new.
    primary
        .query_drop(format!(
            "INSERT INTO {name}.orders {columns} VALUES {}, {} \
             ON DUPLICATE KEY UPDATE status = 'paid'",
            values(12),
            values(13)
        ))
        .await
        .expect("upsert");
    // LOAD DATA LOCAL INFILE through the mariadb client: orders 20-22.
    let csv = std::env::temp_dir().join(format!("{topic}.csv"));
    std::fs::write(
        &csv,
        "20,1,5.00,EUR,[]\n21,2,6.00,EUR,[]\n22,3,7.00,EUR,[]\n",
    )
    .expect("csv");
    let (user, password) = User::Admin.credentials();
    let out = Command::new("mariadb")
        .args(["-h127.0.0.1", "--local-infile=1"])
        .arg(format!("-P{}", Server::Primary.port()))
        .arg(format!("-u{user}"))
        .arg(format!("-p{password}"))
        .arg("-e")
        .arg(format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE {name}.orders FIELDS TERMINATED BY ',' \
             (id, customer_id, amount, currency, items) SET created_at = NOW(6)",
            csv.display()
        ))
        .output()
        .expect("run the mariadb client");
    let _ = std::fs::remove_file(&csv);
    assert!(
        out.status.success(),
        "LOAD DATA LOCAL INFILE: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    primary
        .query_drop(format!(
            "INSERT INTO {name}.orders {columns} VALUES {}",
            values(30)
        ))
        .await
        .expect("order 30");
    let last = last_gtid(&mut primary).await;
    wait_for_replica(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let log = tailer.log();
    assert_eq!(
        tailer.terminate(Duration::from_secs(60)).code(),
        Some(0),
        "log:\n{log}"
    );

    let committed: Vec<u64> = primary
        .query(format!("SELECT id FROM {name}.orders ORDER BY id"))
        .await
        .expect("SELECT");
    assert_eq!(committed, vec![1, 2, 10, 11, 12, 13, 20, 21, 22, 30]);
    let messages = consume_all(&topic);
    let mut ids: Vec<u64> = messages
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("data.id"))
        .collect();
    ids.sort_unstable();
    println!("rows from triggers, INSERT … SELECT, upserts, LOAD DATA, into 4 partitions:");
    println!("  committed {committed:?}; topic {ids:?}");
    assert_eq!(ids, committed, "each created order once");
    let upserted = messages
        .iter()
        .find(|m| m.payload["data"]["id"] == 12)
        .expect("order 12");
    assert_eq!(
        upserted.payload["data"]["status"], "created",
        "order 12 is published as it was created, not as the upsert changed it"
    );
}
