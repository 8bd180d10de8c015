//! The HTTP endpoint of a running tailer: /healthz, /readyz and /metrics,
//! with the documented metric names and values that match what happened.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use test_support::tailer::{last_gtid, replica_gtid_state, Tailed, TailerSetup, TestDb};
use test_support::{connect, free_port, http_get, unique_name, Server, User};

/// Every metric the README documents.
const METRICS: &[&str] = &[
    "binlog_tailer_build_info",
    "binlog_tailer_source_connected",
    "binlog_tailer_broker_connected",
    "binlog_tailer_ready",
    "binlog_tailer_binlog_events_total",
    "binlog_tailer_binlog_bytes_total",
    "binlog_tailer_rows_total",
    "binlog_tailer_transactions_total",
    "binlog_tailer_events_published_total",
    "binlog_tailer_events_skipped_total",
    "binlog_tailer_publish_errors_total",
    "binlog_tailer_events_in_flight",
    "binlog_tailer_publish_latency_seconds_bucket",
    "binlog_tailer_ack_wait_seconds",
    "binlog_tailer_ack_stalled_seconds_total",
    "binlog_tailer_kafka_request_retries_total",
    "binlog_tailer_kafka_request_errors_total",
    "binlog_tailer_reconnects_total",
    "binlog_tailer_replication_lag_seconds",
    "binlog_tailer_lag_bytes",
    "binlog_tailer_lag_transactions",
    "binlog_tailer_last_commit_timestamp_seconds",
    "binlog_tailer_checkpoint_timestamp_seconds",
    "binlog_tailer_checkpoint_age_seconds",
    "binlog_tailer_checkpoint_gtid_sequence",
    "binlog_tailer_checkpoint_binlog_file_index",
    "binlog_tailer_checkpoint_binlog_offset",
    "binlog_tailer_xa_prepared_pending",
];

/// The value of the first sample line starting with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_tell_the_truth() {
    let db = TestDb::create("http").await;
    let topic = unique_name("http");
    let port = free_port();
    let setup = TailerSetup::new(
        test_support::here!(),
        "http",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    )
    .with_http_listen(([127, 0, 0, 1], port).into());
    let mut tailer = setup.spawn();

    // Ready once connected to both sides.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, body)) = http_get(port, "/readyz") {
            assert_eq!(body, "ready\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready; log:\n{}",
            tailer.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        http_get(port, "/healthz").expect("healthz"),
        (200, "ok\n".to_owned())
    );

    let mut primary = connect(Server::Primary, User::Admin).await;
    for id in 1..=25u64 {
        primary
            .query_drop(format!(
                "INSERT INTO {}.orders (id, customer_id, amount, currency, items) VALUES ({id}, 1, '1.00', 'EUR', '[]')",
                db.name
            ))
            .await
            .expect("insert");
    }
    primary
        .query_drop(format!(
            "UPDATE {}.orders SET status = 'paid' WHERE id <= 3",
            db.name
        ))
        .await
        .expect("update");
    let last = last_gtid(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));

    let (status, metrics) = http_get(port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    for name in METRICS {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "/metrics exports {name}:\n{metrics}"
        );
    }
    let table = db.table("orders");
    assert_eq!(
        sample(
            &metrics,
            &format!("binlog_tailer_events_published_total{{topic=\"{topic}\"}}")
        ),
        Some(25.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("binlog_tailer_rows_total{{operation=\"insert\",table=\"{table}\"}}")
        ),
        Some(25.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("binlog_tailer_rows_total{{operation=\"update\",table=\"{table}\"}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&metrics, "binlog_tailer_source_connected"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "binlog_tailer_broker_connected"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "binlog_tailer_events_in_flight"),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, "binlog_tailer_publish_latency_seconds_count"),
        Some(25.0)
    );
    let cp = setup.checkpoint().expect("checkpoint");
    assert_eq!(
        sample(&metrics, "binlog_tailer_checkpoint_binlog_offset"),
        cp.position.coord.as_ref().map(|c| c.offset as f64)
    );
    assert!(metrics.contains(&format!(
        "binlog_tailer_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));

    // Idle and caught up: after a heartbeat the lag is 0.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    assert_eq!(
        sample(&metrics, "binlog_tailer_replication_lag_seconds"),
        Some(0.0)
    );

    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
}
