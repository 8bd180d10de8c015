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

pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use prometheus::{Encoder, IntCounterVec, Opts as MetricOpts, Registry, TextEncoder};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use tokio::sync::watch;

use crate::config::ConfigError;
use validate::{validate, MAX_BODY_BYTES};

/// Environment variable prefix for configuration overrides.
pub const ENV_PREFIX: &str = "ORDER_SERVICE__";

/// The service's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfig {
    pub database: DatabaseConfig,
    #[serde(default)]
    pub http: HttpConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    #[serde(default = "default_password_env")]
    pub password_env: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The order service's own database.
    #[serde(default = "default_database")]
    pub name: String,
    /// How long a request waits for a connection before answering 503.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_pool_max")]
    pub pool_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    3306
}
fn default_password_env() -> String {
    "ORDER_SERVICE_DB_PASSWORD".into()
}
fn default_database() -> String {
    "shop".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_pool_max() -> usize {
    32
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl OrderConfig {
    /// Loads the file, environment (`ORDER_SERVICE__SECTION__KEY`) and
    /// `--set` overrides.
    ///
    /// # Errors
    /// A [`ConfigError`] naming what is wrong.
    pub fn load(
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let config: OrderConfig = crate::config::load_layered(path, ENV_PREFIX, env, overrides)?;
        if config.database.name.is_empty() || config.database.name.contains('`') {
            return Err(ConfigError::Field {
                field: "database.name".into(),
                message: format!("{:?} is not a usable database name", config.database.name),
            });
        }
        Ok(config)
    }
}

struct App {
    pool: Pool,
    database: String,
    timeout: Duration,
    registry: Registry,
    requests: IntCounterVec,
}

/// Runs the service until `shutdown` turns true.
///
/// # Errors
/// When the configuration's password is missing or the address cannot be bound.
pub async fn run(config: OrderConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let db = &config.database;
    let password = crate::config::read_secret(db.password_file.as_deref(), &db.password_env)?;
    let opts: Opts = OptsBuilder::default()
        .ip_or_hostname(db.host.clone())
        .tcp_port(db.port)
        .user(Some(db.user.clone()))
        .pass(Some(password))
        .db_name(Some(db.name.clone()))
        .prefer_socket(false)
        .pool_opts(
            PoolOpts::default()
                .with_constraints(PoolConstraints::new(0, db.pool_max.max(1)).unwrap_or_default()),
        )
        .into();
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        MetricOpts::new(
            "order_service_requests_total",
            "HTTP requests by route and status code.",
        ),
        &["route", "status"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    let app = Arc::new(App {
        pool: Pool::new(opts),
        database: db.name.clone(),
        timeout: db.timeout,
        registry,
        requests,
    });
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on http.listen = {}: {e}", config.http.listen)
        })?;
    tracing::info!(addr = %listener.local_addr()?, "order-service listening");
    let router = Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(&app));
    let mut shutdown = shutdown;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
    app.pool.clone().disconnect().await.ok();
    Ok(())
}

fn error(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let (Some(field), Some(obj)) = (field, body.as_object_mut()) {
        obj.insert("field".into(), JsonValue::String(field.to_owned()));
    }
    (status, Json(body)).into_response()
}

fn count(app: &App, route: &str, response: Response) -> Response {
    app.requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    response
}

async fn create_order(State(app): State<Arc<App>>, body: Body) -> Response {
    let response = create_order_inner(&app, body).await;
    count(&app, "POST /orders", response)
}

async fn create_order_inner(app: &App, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
    };
    let parsed: JsonValue = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                None,
                format!("the body is not valid JSON: {e}"),
            )
        }
    };
    let order = match validate(&parsed) {
        Ok(order) => order,
        Err(invalid) => {
            let field = (!invalid.field.is_empty()).then_some(invalid.field.as_str());
            return error(StatusCode::UNPROCESSABLE_ENTITY, field, invalid.problem);
        }
    };

    let mut conn = match tokio::time::timeout(app.timeout, app.pool.get_conn()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return unavailable(&e.to_string()),
        Err(_) => return unavailable("no connection within the timeout"),
    };
    let mut tx = match conn.start_transaction(TxOpts::default()).await {
        Ok(tx) => tx,
        Err(e) => return unavailable(&e.to_string()),
    };
    let insert = format!(
        "INSERT INTO `{}`.orders (customer_id, amount, currency, items) VALUES (?, ?, ?, ?)",
        app.database
    );
    if let Err(e) = tx
        .exec_drop(
            insert,
            (
                order.customer_id,
                &order.amount,
                &order.currency,
                &order.items,
            ),
        )
        .await
    {
        return db_error(&e);
    }
    let Some(id) = tx.last_insert_id() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the insert returned no id; nothing was committed",
        );
    };
    let stored = match read_order(&mut tx, &app.database, id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "the new order could not be read back; nothing was committed",
            )
        }
        Err(e) => return db_error(&e),
    };
    if let Err(e) = tx.commit().await {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!(
                "the database failed during the commit ({e}); order {id} may or may not be stored: \
                 check GET /orders/{id} before retrying"
            ),
        );
    }
    let mut response = (StatusCode::CREATED, Json(stored)).into_response();
    if let Ok(location) = format!("/orders/{id}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn unavailable(detail: &str) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        format!("the database is unavailable ({detail}); nothing was written, retry later"),
    )
}

fn db_error(e: &mysql_async::Error) -> Response {
    match e {
        mysql_async::Error::Server(s) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!(
                "the database refused the order (error {}: {}); nothing was written",
                s.code, s.message
            ),
        ),
        other => unavailable(&other.to_string()),
    }
}

/// The stored order in the same JSON form as the event's `data`.
async fn read_order<Q: Queryable>(
    conn: &mut Q,
    database: &str,
    id: u64,
) -> Result<Option<JsonValue>, mysql_async::Error> {
    type Row = (u64, u64, String, String, String, String, String);
    let row: Option<Row> = conn
        .exec_first(
            format!(
                "SELECT id, customer_id, CAST(amount AS CHAR), currency, CAST(status AS CHAR), items, \
                 DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f') FROM `{database}`.orders WHERE id = ?"
            ),
            (id,),
        )
        .await?;
    Ok(row.map(|(id, customer_id, amount, currency, status, items, created_at)| {
        json!({
            "id": id,
            "customer_id": customer_id,
            "amount": amount,
            "currency": currency,
            "status": status,
            "items": serde_json::from_str::<JsonValue>(&items).unwrap_or(JsonValue::String(items)),
            "created_at": created_at,
        })
    }))
}

async fn get_order(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let response = match id.parse::<u64>() {
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            Some("id"),
            format!("{id:?} is not an order id"),
        ),
        Ok(id) => match tokio::time::timeout(app.timeout, app.pool.get_conn()).await {
            Ok(Ok(mut conn)) => match read_order(&mut conn, &app.database, id).await {
                Ok(Some(order)) => (StatusCode::OK, Json(order)).into_response(),
                Ok(None) => error(StatusCode::NOT_FOUND, None, format!("no order {id}")),
                Err(e) => db_error(&e),
            },
            Ok(Err(e)) => unavailable(&e.to_string()),
            Err(_) => unavailable("no connection within the timeout"),
        },
    };
    count(&app, "GET /orders/{id}", response)
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let ping = async {
        let mut conn = app.pool.get_conn().await?;
        conn.ping().await
    };
    match tokio::time::timeout(app.timeout, ping).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: database: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database does not answer\n",
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&app.registry.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/order-service.example.toml");
        let config = OrderConfig::load(Some(&path), std::iter::empty(), &[]).unwrap();
        assert_eq!(config.database.name, "shop");
        assert_eq!(config.database.user, "orders_app");
    }
}
