//! order-service: takes orders over HTTP and writes them to its own MariaDB
//! database. Nothing else: it has no Kafka code. binlog-tailer turns each
//! committed order into an `OrderCreated` event.
//!
//! # Contract
//! - `POST /orders` with `{customer_id, amount, currency, items}` validates the
//!   body (400 for a body that is not JSON, 413 for one over 64 KiB, 422 naming
//!   the field for anything else wrong), inserts one row into `orders` in one
//!   transaction, and answers `201` with the stored order (its `id` and
//!   `created_at`) only after the commit.
//! - `GET /orders/{id}`: the order, or 404.
//! - The database unreachable: `503` and nothing written. A commit whose
//!   outcome is unknown (the connection died during it) answers `503` with
//!   the order id, so the caller can look it up.
//! - `/healthz` (alive), `/readyz` (the database answers), `/metrics`.

mod config;
mod routes;
pub mod validate;

use std::sync::Arc;

use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use prometheus::Registry;
use service_kit::metrics::Registrar;
use service_kit::ops_http::Ops;
use tokio::sync::watch;

pub use config::{DatabaseConfig, HttpConfig, OrderConfig, ENV_PREFIX};
use routes::App;
pub use service_kit::config::ConfigError;

/// How long a pooled database connection may stay idle before the pool
/// closes it.
const IDLE_CONNECTION_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the service until `shutdown` turns true.
///
/// # Errors
/// When the configuration's password is missing or the address cannot be bound.
pub async fn run(config: OrderConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let db = &config.database;
    let password = service_kit::config::read_secret(db.password_file.as_deref(), &db.password_env)?;
    let opts: Opts = OptsBuilder::default()
        .ip_or_hostname(db.host.clone())
        .tcp_port(db.port)
        .user(Some(db.user.clone()))
        .pass(Some(password))
        .db_name(Some(db.name.clone()))
        .prefer_socket(false)
        .pool_opts(
            PoolOpts::default()
                .with_constraints(PoolConstraints::new(0, db.pool_max.max(1)).unwrap_or_default())
                // Keep returned connections for the next requests. With
                // mysql_async's default (no idle time to live) a pool whose
                // minimum is 0 closes every connection it gets back, so each
                // order paid for a new connection: TCP, login and the
                // client's set-up queries, ~7 statements on the primary.
                // Idle connections above the minimum close after a minute.
                .with_inactive_connection_ttl(IDLE_CONNECTION_TTL)
                // The routes keep no session state, and a transaction a
                // request leaves open is rolled back before its connection
                // is reused. Resetting each returned connection would cost a
                // round trip and empty its prepared-statement cache, so every
                // order would prepare its statement again.
                .with_reset_connection(false),
        )
        .into();
    let registry = Registry::new();
    let requests = Registrar::new(&registry).counter_vec(
        "order_service_requests_total",
        "HTTP requests by route and status code.",
        &["route", "status"],
    );
    let app = Arc::new(App {
        pool: Pool::new(opts),
        database: db.name.clone(),
        timeout: db.timeout,
        requests,
    });
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on http.listen = {}: {e}", config.http.listen)
        })?;
    tracing::info!(addr = %listener.local_addr()?, "order-service listening");
    let ops = Ops::new(registry).readiness({
        let app = Arc::clone(&app);
        move || {
            let app = Arc::clone(&app);
            async move { routes::not_ready_reasons(&app).await }
        }
    });
    let router = routes::router(Arc::clone(&app)).merge(ops.router());
    let mut shutdown = shutdown;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
    app.pool.clone().disconnect().await.ok();
    Ok(())
}
