//! Running a step over HTTP: the orchestrator's endpoint. The result is the same object `codestep run`
//! prints, plus the run id; every fetch attempt of the run is recorded for monitoring.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiPath};
use super::state::{AppState, Metrics, FAILURE_KINDS};
use crate::engine::{ErrorKind, LimitOverrides, StepRequest, StepResult};
use crate::store::{self, new_id, FetchAttempt};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// The step: an ES module whose default export is `(input, ctx) => value`.
    pub code: String,
    /// Any JSON value (null when absent).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub input: serde_json::Value,
    /// Stored connectors of this workspace, in priority order.
    #[serde(default)]
    pub connectors: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub limits: LimitOverrides,
}

#[derive(Serialize, ToSchema)]
pub struct RunResponse {
    pub run_id: String,
    /// `ok`, `output`, `error`, `logs`, `requests` and `stats`, as `codestep run` prints them.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub result: StepResult,
}

/// How long a caller turned away with 429 should wait, in seconds.
const RETRY_AFTER_SECS: u64 = 1;

#[utoipa::path(post, path = "/v1/workspaces/{ws}/runs", tag = "runs", params(("ws" = String, Path)),
    request_body = RunBody,
    responses((status = 200, body = RunResponse, description = "the step ran (it may still have failed: see `ok`)"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "the pool and its queue are full; see Retry-After",
               headers(("Retry-After" = u64, description = "seconds to wait before trying again")))),
    security(("token" = [])))]
pub async fn run(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<RunBody>,
) -> Result<Json<RunResponse>, ApiError> {
    caller.allow(&ws)?;
    let Ok(_permit) = st.admission.clone().try_acquire_owned() else {
        Metrics::add(&st.metrics.runs_rejected_busy, 1);
        return Err(ApiError::busy(RETRY_AFTER_SECS));
    };
    // The workspace and its connectors in one read.
    let (workspace, connectors) =
        store::load_run(&*st.store, &st.vault, &ws, &body.connectors).await?;
    let run_id = new_id();
    let mut request = StepRequest::new(body.code, body.input);
    request.connectors = connectors;
    request.limits = body.limits;
    request.step_id = Some(run_id.clone());
    let result = st.executor.run(request).await;

    let attempts: Vec<FetchAttempt> = result
        .requests
        .iter()
        .map(|r| FetchAttempt::from_record(r, Some(&run_id)))
        .collect();
    record_metrics(&st, &result, &attempts);
    if !attempts.is_empty() {
        // A monitoring write that fails must not turn a finished run into an error for the caller.
        if let Err(e) = st
            .store
            .record_fetch_attempts(Some(&workspace.id), &attempts)
            .await
        {
            eprintln!("codestep serve: could not record the fetches of run {run_id}: {e}");
        }
    }
    Ok(Json(RunResponse { run_id, result }))
}

fn record_metrics(st: &AppState, result: &StepResult, attempts: &[FetchAttempt]) {
    let m = &st.metrics;
    match &result.error {
        None => Metrics::add(&m.runs_ok, 1),
        Some(e) => {
            let idx = match e.kind {
                ErrorKind::Error => 0,
                ErrorKind::Timeout => 1,
                ErrorKind::Memory => 2,
                ErrorKind::Limit => 3,
                ErrorKind::Output => 4,
                ErrorKind::Input => 5,
                ErrorKind::Internal => 6,
            };
            debug_assert!(idx < FAILURE_KINDS.len());
            Metrics::add(&m.runs_failed[idx], 1);
        }
    }
    m.run_seconds_total_micros.fetch_add(
        (result.stats.duration_ms * 1000.0) as u64,
        Ordering::Relaxed,
    );
    for a in attempts {
        Metrics::add(&m.fetches[a.outcome() as usize], 1);
    }
}
