//! Health, Prometheus metrics, the OpenAPI document and the dashboard's static files.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "workers": 2, "workers_alive": 2}))]
pub struct Health {
    /// `ok`; `store_unavailable` when the store does not answer; `no_workers` while no worker process
    /// is up (at start, or while they are being replaced).
    pub status: String,
    /// Workers configured.
    pub workers: usize,
    /// Workers up and able to take a step.
    pub workers_alive: usize,
}

/// For load balancers: 200 when this node can run steps (its store answers and a worker is up), 503
/// otherwise.
#[utoipa::path(get, path = "/health", tag = "system", operation_id = "get_health",
    responses((status = 200, body = Health),
              (status = 503, body = Health, description = "the store does not answer, or no worker is up")),
    security(()))]
pub async fn health(State(st): State<AppState>) -> (StatusCode, Json<Health>) {
    let alive = st.executor.workers_alive();
    let (status, word) = match st.store.schema_version().await {
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        Ok(_) if alive == 0 => (StatusCode::SERVICE_UNAVAILABLE, "no_workers"),
        Ok(_) => (StatusCode::OK, "ok"),
    };
    (
        status,
        Json(Health {
            status: word.into(),
            workers: st.executor.workers(),
            workers_alive: alive,
        }),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system", operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")),
    security(()))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let in_flight = st.admission_size - st.admission.available_permits();
    let text = st.metrics.render(in_flight, st.executor.workers_alive());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");
const FAVICON_SVG: &str = include_str!("dashboard/favicon.svg");

/// The dashboard has no inline script or style and loads nothing from elsewhere, so it can be locked
/// down: no framing, no other origins, no MIME sniffing, no referrer.
fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

pub async fn dashboard_index() -> Response {
    static_file("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn dashboard_js() -> Response {
    static_file("text/javascript; charset=utf-8", APP_JS)
}

pub async fn dashboard_css() -> Response {
    static_file("text/css; charset=utf-8", STYLE_CSS)
}

pub async fn dashboard_favicon() -> Response {
    static_file("image/svg+xml", FAVICON_SVG)
}
