//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the
//! process is alive), `/readyz` (connected to MariaDB and Kafka, events
//! acknowledged (none waiting 5 s or more without any acknowledgement), and
//! the replication lag under `http.ready_max_lag`; otherwise 503 with the
//! reasons, one per line).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use service_kit::ops_http::Ops;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Events waiting this long without any acknowledgement make the tailer
/// not ready: a leader election normally ends well within it.
pub const ACK_WAIT_NOT_READY: Duration = Duration::from_secs(5);

/// Why the tailer is not ready; empty when it is.
pub fn not_ready_reasons(metrics: &Metrics, ready_max_lag: Duration) -> Vec<String> {
    let mut reasons = Vec::new();
    if metrics.source_connected.get() != 1 {
        reasons.push("not connected to MariaDB (binlog stream down; reconnecting)".to_owned());
    }
    if metrics.broker_connected.get() != 1 {
        reasons.push("no connection to a Kafka broker".to_owned());
    }
    let ack_wait = metrics.ack_wait.get();
    if ack_wait >= ACK_WAIT_NOT_READY.as_secs_f64() {
        reasons.push(format!(
            "no acknowledgement from Kafka for {ack_wait:.0} s while {} events wait (a partition \
             without a leader, too few in-sync replicas, or brokers away); nothing is dropped",
            metrics.in_flight.get()
        ));
    }
    let lag = metrics.lag_seconds();
    if u64::try_from(lag).unwrap_or(0) > ready_max_lag.as_secs() {
        reasons.push(format!(
            "replication lag {lag} s is above http.ready_max_lag ({} s)",
            ready_max_lag.as_secs()
        ));
    }
    reasons
}

/// Binds the endpoint (port 0 picks a free one).
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready_max_lag: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let ops = Ops::new(metrics.registry.clone())
        .on_scrape({
            let metrics = Arc::clone(&metrics);
            move || metrics.refresh()
        })
        .readiness(move || {
            metrics.refresh();
            let reasons = not_ready_reasons(&metrics, ready_max_lag);
            metrics.ready.set(i64::from(reasons.is_empty()));
            std::future::ready(reasons)
        });
    let app: Router = ops.router();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}
