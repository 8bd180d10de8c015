//! The operational endpoints every service serves, written once:
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` | the registry in Prometheus text format (refreshed first, when the service asks for it) |
//! | `GET /healthz` | `200 ok` while the process runs |
//! | `GET /readyz` | `200 ready`, or `503` with `not ready:` and one line per reason |
//!
//! A service builds an [`Ops`] from its registry and readiness check and
//! merges [`Ops::router`] into its own routes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};

type ReasonsFuture = Pin<Box<dyn Future<Output = Vec<String>> + Send>>;
type Readiness = Arc<dyn Fn() -> ReasonsFuture + Send + Sync>;
type Refresh = Arc<dyn Fn() + Send + Sync>;

/// What the operational endpoints answer from.
#[derive(Clone)]
pub struct Ops {
    registry: Registry,
    refresh: Refresh,
    readiness: Readiness,
}

impl Ops {
    /// Endpoints over `registry`; ready until [`Ops::readiness`] says
    /// otherwise.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            refresh: Arc::new(|| {}),
            readiness: Arc::new(|| Box::pin(async { Vec::new() })),
        }
    }

    /// Runs `refresh` before each `/metrics` answer (gauges derived on
    /// demand).
    #[must_use]
    pub fn on_scrape(mut self, refresh: impl Fn() + Send + Sync + 'static) -> Self {
        self.refresh = Arc::new(refresh);
        self
    }

    /// `/readyz` asks `reasons` why the service is not ready; an empty list
    /// means ready.
    #[must_use]
    pub fn readiness<F, Fut>(mut self, reasons: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<String>> + Send + 'static,
    {
        self.readiness = Arc::new(move || Box::pin(reasons()));
        self
    }

    /// `/metrics`, `/healthz` and `/readyz`, to merge into a service's router.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(self)
    }
}

async fn metrics_text(State(ops): State<Ops>) -> Response {
    (ops.refresh)();
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&ops.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_owned())],
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(ops): State<Ops>) -> Response {
    let reasons = (ops.readiness)().await;
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", reasons.join("\n")),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    async fn get_text(router: &Router, path: &str) -> (StatusCode, String) {
        let response = tower_call(router.clone(), path).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn tower_call(router: Router, path: &str) -> Response {
        use tower::ServiceExt;
        router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn metrics_are_refreshed_then_encoded_and_readiness_lists_reasons() {
        let registry = Registry::new();
        let gauge = prometheus::IntGauge::new("demo_value", "A demo gauge.").unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        let scrapes = Arc::new(AtomicU32::new(0));
        let down = Arc::new(AtomicBool::new(true));
        let router: Router = Ops::new(registry)
            .on_scrape({
                let scrapes = Arc::clone(&scrapes);
                move || {
                    let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
                    gauge.set(i64::from(n) * 10);
                }
            })
            .readiness({
                let down = Arc::clone(&down);
                move || {
                    let down = down.load(Ordering::SeqCst);
                    async move {
                        if down {
                            vec!["database: gone".to_owned(), "broker: gone".to_owned()]
                        } else {
                            Vec::new()
                        }
                    }
                }
            })
            .router();

        let (status, body) = get_text(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("demo_value 10"), "{body}");
        assert_eq!(
            get_text(&router, "/healthz").await,
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(
            get_text(&router, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready:\ndatabase: gone\nbroker: gone\n".into()
            )
        );
        down.store(false, Ordering::SeqCst);
        assert_eq!(
            get_text(&router, "/readyz").await,
            (StatusCode::OK, "ready\n".into())
        );
    }
}
