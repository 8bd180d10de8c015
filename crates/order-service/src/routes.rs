//! The order routes: `POST /orders` and `GET /orders/{id}`, their error
//! answers, and the request counter.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mysql_async::prelude::Queryable;
use mysql_async::{Pool, TxOpts};
use prometheus::IntCounterVec;
use serde_json::{json, Value as JsonValue};

use crate::validate::{validate, MAX_BODY_BYTES};

pub(crate) struct App {
    pub(crate) pool: Pool,
    pub(crate) database: String,
    pub(crate) timeout: Duration,
    /// `order_service_requests_total{route, status}`.
    pub(crate) requests: IntCounterVec,
}

/// `POST /orders` and `GET /orders/{id}`.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .with_state(app)
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
    // One statement writes the order and returns it as stored (defaults
    // included), in the JSON form of the event's `data`.
    let insert = format!(
        "INSERT INTO `{}`.orders (customer_id, amount, currency, items) VALUES (?, ?, ?, ?) \
         RETURNING {STORED_COLUMNS}",
        app.database
    );
    let stored: Option<StoredRow> = match tx
        .exec_first(
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
        Ok(row) => row,
        Err(e) => return db_error(&e),
    };
    let Some(row) = stored else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the insert returned no row; nothing was committed",
        );
    };
    let id = row.0;
    let stored = stored_json(row);
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

/// The columns of an order as the routes answer them.
const STORED_COLUMNS: &str =
    "id, customer_id, CAST(amount AS CHAR), currency, CAST(status AS CHAR), \
     items, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f')";

/// A row of [`STORED_COLUMNS`].
type StoredRow = (u64, u64, String, String, String, String, String);

/// The stored order in the same JSON form as the event's `data`.
fn stored_json(row: StoredRow) -> JsonValue {
    let (id, customer_id, amount, currency, status, items, created_at) = row;
    json!({
        "id": id,
        "customer_id": customer_id,
        "amount": amount,
        "currency": currency,
        "status": status,
        "items": serde_json::from_str::<JsonValue>(&items).unwrap_or(JsonValue::String(items)),
        "created_at": created_at,
    })
}

/// Order `id` as stored, if there is one.
async fn read_order<Q: Queryable>(
    conn: &mut Q,
    database: &str,
    id: u64,
) -> Result<Option<JsonValue>, mysql_async::Error> {
    let row: Option<StoredRow> = conn
        .exec_first(
            format!("SELECT {STORED_COLUMNS} FROM `{database}`.orders WHERE id = ?"),
            (id,),
        )
        .await?;
    Ok(row.map(stored_json))
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

/// Why the service is not ready: the database does not answer a ping
/// within the timeout. Empty when ready.
pub(crate) async fn not_ready_reasons(app: &App) -> Vec<String> {
    let ping = async {
        let mut conn = app.pool.get_conn().await?;
        conn.ping().await
    };
    match tokio::time::timeout(app.timeout, ping).await {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(e)) => vec![format!("database: {e}")],
        Err(_) => vec!["database does not answer".to_owned()],
    }
}
