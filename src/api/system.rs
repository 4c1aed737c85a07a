//! Health, Prometheus metrics, the OpenAPI document and the dashboard's static files.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::state::{AppState, FAILURE_KINDS, FETCH_OUTCOMES};

#[derive(Serialize, ToSchema)]
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
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, body = Health),
              (status = 503, body = Health, description = "the store does not answer, or no worker is up")))]
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

#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let m = &st.metrics;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP codestep_runs_total Steps run, by result.\n# TYPE codestep_runs_total counter"
    );
    let _ = writeln!(
        out,
        "codestep_runs_total{{result=\"ok\"}} {}",
        m.runs_ok.load(Ordering::Relaxed)
    );
    for (kind, c) in FAILURE_KINDS.iter().zip(&m.runs_failed) {
        let _ = writeln!(
            out,
            "codestep_runs_total{{result=\"{kind}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(out, "# HELP codestep_runs_rejected_total Runs turned away with 429 because the pool and its queue were full.\n# TYPE codestep_runs_rejected_total counter");
    let _ = writeln!(
        out,
        "codestep_runs_rejected_total {}",
        m.runs_rejected_busy.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# HELP codestep_run_seconds_total Wall time spent in steps.\n# TYPE codestep_run_seconds_total counter");
    let _ = writeln!(
        out,
        "codestep_run_seconds_total {:.6}",
        m.run_seconds_total_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "# HELP codestep_fetches_total Fetch attempts made by steps, by outcome.\n# TYPE codestep_fetches_total counter");
    for (outcome, c) in FETCH_OUTCOMES.iter().map(|o| o.as_str()).zip(&m.fetches) {
        let _ = writeln!(
            out,
            "codestep_fetches_total{{outcome=\"{outcome}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    let in_use = st.admission_size - st.admission.available_permits();
    let _ = writeln!(out, "# HELP codestep_runs_admitted Runs running or queued now.\n# TYPE codestep_runs_admitted gauge");
    let _ = writeln!(out, "codestep_runs_admitted {in_use}");
    let _ = writeln!(
        out,
        "# HELP codestep_workers Worker threads (one isolate each).\n# TYPE codestep_workers gauge"
    );
    let _ = writeln!(out, "codestep_workers {}", st.executor.workers());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

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
