//! Background reporting while the pipeline runs: the gauges derived from
//! time and readiness every second, the lag behind the server (bytes and
//! transactions, from a query connection of its own) every 5 s, and a
//! progress line in the log every 5 s while events flow or lag is high.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use tokio::sync::watch;

use crate::config::Config;
use crate::http;
use crate::metrics::Metrics;
use crate::source;

/// Keeps the derived gauges fresh until `stop` turns true (or the sender
/// is dropped), then closes its query connection: a connection dropped
/// unclosed is counted by the server as aborted (`Aborted_clients`) and
/// logged as a warning.
pub async fn monitor(
    config: Arc<Config>,
    opts: mysql_async::Opts,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut conn: Option<mysql_async::Conn> = None;
    for tick in 0u64.. {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        metrics.refresh();
        let ready = http::not_ready_reasons(&metrics, config.http.ready_max_lag).is_empty();
        metrics.ready.set(i64::from(ready));
        if tick % 5 != 0 {
            continue;
        }
        if conn.is_none() {
            conn = source::connect(&config, &opts).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match source::server_lag(c, &metrics.read_position()).await {
            Ok((bytes, transactions)) => {
                metrics.lag_bytes.set(bytes);
                metrics.lag_transactions.set(transactions);
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not measure the lag behind the server");
                conn = None;
            }
        }
    }
    if let Some(conn) = conn {
        let _ = conn.disconnect().await;
    }
}

/// A progress line every few seconds while events flow, until aborted.
pub async fn progress_log(metrics: Arc<Metrics>) {
    const EVERY: Duration = Duration::from_secs(5);
    let published = || -> u64 {
        metrics
            .published
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    };
    let mut last = published();
    let mut ticker = tokio::time::interval(EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = published();
        let rate = (now - last) as f64 / EVERY.as_secs_f64();
        if now != last || metrics.lag_seconds() > 10 {
            tracing::info!(
                events_per_second = format!("{rate:.0}"),
                events_published = now,
                transactions = metrics.transactions.get(),
                lag_seconds = metrics.lag_seconds(),
                in_flight = metrics.in_flight.get(),
                "progress"
            );
        }
        last = now;
    }
}
