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
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use service_kit::ops_http::Ops;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    store: Store,
}

/// The routes.
pub fn router(metrics: Arc<Metrics>, store: Store) -> Router {
    let ops = Ops::new(metrics.registry.clone())
        .on_scrape({
            let metrics = Arc::clone(&metrics);
            move || metrics.refresh()
        })
        .readiness({
            let metrics = Arc::clone(&metrics);
            move || {
                let reasons = metrics.not_ready_reasons();
                metrics.ready.set(i64::from(reasons.is_empty()));
                std::future::ready(reasons)
            }
        });
    Router::new()
        .route("/payments/{order_id}", get(payment))
        .with_state(AppState { metrics, store })
        .merge(ops.router())
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
