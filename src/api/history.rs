//! Run history: the runs of a workspace, newest first, and one run with its log and its requests. A
//! run id from the error log leads here.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiPath, ApiQuery};
use super::monitoring::{parse_limit, parse_time};
use super::state::AppState;
use crate::engine::LogEntry;
use crate::store::{format_time, FetchAttempt, RunCursor, RunQuery, RunRecord};

/// The outcomes a run can have: `ok`, or the kind of its error.
const OUTCOMES: [&str; 8] = [
    "ok", "error", "timeout", "memory", "limit", "output", "input", "internal",
];

#[derive(Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: String,
    /// `ok`, or the error kind.
    pub outcome: String,
    pub error_message: Option<String>,
    pub duration_ms: f64,
    pub fetches: u32,
    pub output_bytes: u64,
    /// SHA-256 of the step's code.
    pub step_hash: String,
    /// The label of the token that asked for the run.
    pub token: String,
}

impl From<&RunRecord> for RunSummary {
    fn from(r: &RunRecord) -> Self {
        RunSummary {
            id: r.id.clone(),
            started_at: format_time(r.started_at),
            ended_at: format_time(r.ended_at),
            outcome: r.outcome.clone(),
            error_message: r.error_message.clone(),
            duration_ms: r.duration_ms,
            fetches: r.fetches,
            output_bytes: r.output_bytes,
            step_hash: r.step_hash.clone(),
            token: r.token.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub items: Vec<RunSummary>,
    /// The `before` cursor of the next page; null on the last page.
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    /// The step's console log, capped as the step's log is.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<LogEntry>,
    pub logs_dropped: u64,
    /// The run's fetches, in the order they started.
    #[schema(value_type = Vec<Object>)]
    pub requests: Vec<FetchAttempt>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
    /// Runs that started at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Runs that started at or before this time (RFC 3339).
    pub until: Option<String>,
    /// `ok`, `error`, `timeout`, `memory`, `limit`, `output`, `input` or `internal`.
    pub outcome: Option<String>,
    /// Runs that made a fetch through this connector.
    pub connector: Option<String>,
}

/// List a workspace's runs, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/runs", tag = "runs", operation_id = "list_runs",
    params(("ws" = String, Path), RunParams),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(p): ApiQuery<RunParams>,
) -> Result<Json<RunList>, ApiError> {
    let outcome = match p.outcome.as_deref() {
        None | Some("") => None,
        Some(o) if OUTCOMES.contains(&o) => Some(o.to_string()),
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "outcome: {o:?} is not one of {}",
                OUTCOMES.join(", ")
            )))
        }
    };
    let before = p
        .before
        .as_deref()
        .map(|c| {
            RunCursor::decode(c).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "before: {c:?} is not a cursor from a previous page"
                ))
            })
        })
        .transpose()?;
    let q = RunQuery {
        outcome,
        since: p
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until: p
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
        connector: p.connector.filter(|c| !c.is_empty()),
        before,
        limit: parse_limit(p.limit)?,
    };
    let page = st.store.runs(&ws, &q).await?;
    Ok(Json(RunList {
        items: page.items.iter().map(RunSummary::from).collect(),
        next: page.next.map(|c| c.encode()),
    }))
}

/// Get one run with its console log and its requests.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/runs/{id}", tag = "runs", operation_id = "get_run",
    params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn get(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<RunDetail>, ApiError> {
    let (run, requests) = st.store.run(&ws, &id).await?;
    let logs: Vec<LogEntry> = serde_json::from_str(&run.logs).unwrap_or_default();
    Ok(Json(RunDetail {
        run: RunSummary::from(&run),
        logs,
        logs_dropped: run.logs_dropped,
        requests,
    }))
}
