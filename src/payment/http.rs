//! The payment service's HTTP endpoint:
//!
//! | route | answer |
//! |---|---|
//! | `GET /payments/{order_id}` | `200` and `{"order_id", "event_id", "amount", "currency", "charged_at"}`; `404` when the order has no payment; `400` when `order_id` is not a number; `503` when the database cannot answer |
//! | `GET /metrics` | Prometheus text format ([`super::METRIC_NAMES`]) |
//! | `GET /healthz` | `200 ok` while the process runs (also while the database is down) |
//! | `GET /readyz` | `200 ready`, or `503` and one line per reason: database unreachable, processing stuck retrying, no broker connection |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, TextEncoder};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::store::Store;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    store: Store,
}

/// The routes.
pub fn router(metrics: Arc<Metrics>, store: Store) -> Router {
    Router::new()
        .route("/payments/{order_id}", get(payment))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, store })
}

/// Serves until `shutdown` turns true.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: Store,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, store))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

async fn payment(State(state): State<AppState>, Path(order_id): Path<String>) -> Response {
    let Ok(id) = order_id.parse::<u64>() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("order id {order_id:?} is not an unsigned integer")})),
        )
            .into_response();
    };
    match state.store.find(id).await {
        Ok(Some(p)) => (StatusCode::OK, Json(p)).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no payment for order {id}")})),
        )
            .into_response(),
        Err(e) => {
            state.metrics.db_errors.inc();
            tracing::warn!(order_id = id, "payment lookup failed: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.refresh();
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&state.metrics.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_owned())],
            format!("encoding metrics: {e}\n").into_bytes(),
        ),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let reasons = state.metrics.not_ready_reasons();
    state.metrics.ready.set(i64::from(reasons.is_empty()));
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", reasons.join("\n")),
        )
    }
}
