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
use crate::store::{self, format_time, FetchAttempt, Outcome, RunCursor, RunQuery, RunRecord};

/// How a run ended: `ok`, or the kind of its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Ok,
    Error,
    Timeout,
    Memory,
    Limit,
    Output,
    Input,
    Internal,
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 8] = [
        RunOutcome::Ok,
        RunOutcome::Error,
        RunOutcome::Timeout,
        RunOutcome::Memory,
        RunOutcome::Limit,
        RunOutcome::Output,
        RunOutcome::Input,
        RunOutcome::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Error => "error",
            RunOutcome::Timeout => "timeout",
            RunOutcome::Memory => "memory",
            RunOutcome::Limit => "limit",
            RunOutcome::Output => "output",
            RunOutcome::Input => "input",
            RunOutcome::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<RunOutcome> {
        RunOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!(run_summary_example()))]
pub struct RunSummary {
    #[schema(example = "3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50")]
    pub id: String,
    #[schema(format = DateTime, example = "2026-11-25T14:00:00Z")]
    pub started_at: String,
    #[schema(format = DateTime, example = "2026-11-25T14:00:01Z")]
    pub ended_at: String,
    pub outcome: RunOutcome,
    /// The error's message, when the run failed.
    #[schema(example = "step exceeded its wall time of 30000 ms")]
    pub error_message: Option<String>,
    #[schema(example = 14.2)]
    pub duration_ms: f64,
    /// How many fetches the run made.
    #[schema(example = 3)]
    pub fetches: u32,
    #[schema(example = 17)]
    pub output_bytes: u64,
    /// SHA-256 of the step's code, hex.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub step_hash: String,
    /// The label of the token that asked for the run.
    #[schema(example = "orchestrator")]
    pub token: String,
}

fn run_summary_example() -> serde_json::Value {
    serde_json::json!({
        "id": "3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50", "started_at": "2026-11-25T14:00:00Z",
        "ended_at": "2026-11-25T14:00:01Z", "outcome": "ok", "error_message": null, "duration_ms": 14.2,
        "fetches": 1, "output_bytes": 17,
        "step_hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "token": "orchestrator"
    })
}

impl From<&RunRecord> for RunSummary {
    fn from(r: &RunRecord) -> Self {
        RunSummary {
            id: r.id.clone(),
            started_at: format_time(r.started_at),
            ended_at: format_time(r.ended_at),
            outcome: RunOutcome::parse(&r.outcome).unwrap_or(RunOutcome::Internal),
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
#[schema(example = json!({"items": [run_summary_example()], "next": "1795615200000.3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50"}))]
pub struct RunList {
    pub items: Vec<RunSummary>,
    /// The `before` cursor of the next page; null on the last page.
    #[schema(example = "1795615200000.3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50")]
    pub next: Option<String>,
}

/// One fetch of a run: where it went (host and path, never the query) and how it ended.
#[derive(Serialize, ToSchema)]
pub struct RunRequest {
    /// When it started.
    #[schema(format = DateTime, example = "2026-11-25T14:00:00Z")]
    pub started_at: String,
    /// When it started, in Unix milliseconds (for timelines finer than a second).
    #[schema(example = 1795615200012_i64)]
    pub at_ms: i64,
    /// The connector that matched; null when none did.
    #[schema(example = "stripe")]
    pub connector: Option<String>,
    #[schema(example = "GET")]
    pub method: String,
    #[schema(example = "api.stripe.com")]
    pub host: String,
    #[schema(example = "/v1/charges")]
    pub path: String,
    #[schema(example = 200)]
    pub status: Option<u16>,
    /// For a status of 400 or more.
    #[schema(example = "Unauthorized")]
    pub status_text: Option<String>,
    /// For a status of 400 or more: the start of the body, at most 300 bytes, scrubbed of secrets.
    #[schema(example = "{\"error\":{\"message\":\"Invalid API Key provided\"}}")]
    pub error_excerpt: Option<String>,
    pub outcome: Outcome,
    /// How the fetch failed, when it did without a response.
    #[schema(example = "network_error")]
    pub error: Option<String>,
    #[schema(example = 3.1)]
    pub duration_ms: f64,
    pub blocked: bool,
    #[schema(example = 0)]
    pub redirects: u32,
}

impl From<FetchAttempt> for RunRequest {
    fn from(a: FetchAttempt) -> Self {
        RunRequest {
            started_at: format_time(a.at_ms),
            outcome: a.outcome(),
            at_ms: a.at_ms,
            connector: a.connector,
            method: a.method,
            host: a.host,
            path: a.path,
            status: a.status,
            status_text: a.status_text,
            error_excerpt: a.error_excerpt,
            error: a.error,
            duration_ms: a.duration_ms,
            blocked: a.blocked,
            redirects: a.redirects,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!(run_detail_example()))]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    /// The step's console log, capped as the step's log is.
    pub logs: Vec<LogEntry>,
    /// Console messages beyond the cap.
    #[schema(example = 0)]
    pub logs_dropped: u64,
    /// The run's fetches, in the order they started.
    pub requests: Vec<RunRequest>,
    /// Whether the run's input and output were kept (the workspace's `keep_run_io` when it ran).
    pub io_kept: bool,
    /// The run's input, when kept.
    #[schema(schema_with = crate::engine::any_json_schema)]
    pub input: Option<serde_json::Value>,
    /// The run's output, when kept and the run produced one.
    #[schema(schema_with = crate::engine::any_json_schema)]
    pub output: Option<serde_json::Value>,
}

fn run_detail_example() -> serde_json::Value {
    let mut v = run_summary_example();
    let extra = serde_json::json!({
        "logs": [{"level": "log", "message": "got 200", "time": 1795615200120_u64}],
        "logs_dropped": 0,
        "requests": [{"started_at": "2026-11-25T14:00:00Z", "at_ms": 1795615200012_i64, "connector": "stripe",
            "method": "GET", "host": "api.stripe.com", "path": "/v1/charges", "status": 200, "status_text": null,
            "error_excerpt": null, "outcome": "ok", "error": null, "duration_ms": 3.1, "blocked": false, "redirects": 0}],
        "io_kept": true, "input": {"limit": 10}, "output": {"charges": 7}
    });
    if let (Some(a), Some(b)) = (v.as_object_mut(), extra.as_object()) {
        a.extend(b.clone());
    }
    v
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
    /// Runs that started at or after this time (RFC 3339, or Unix milliseconds).
    #[param(format = DateTime, example = "2026-11-25T14:00:00Z")]
    pub since: Option<String>,
    /// Runs that started at or before this time (RFC 3339, or Unix milliseconds).
    #[param(format = DateTime, example = "2026-11-25T15:00:00Z")]
    pub until: Option<String>,
    /// Only runs that ended so.
    #[param(value_type = Option<RunOutcome>)]
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
        Some(o) => match RunOutcome::parse(o) {
            Some(o) => Some(o.as_str().to_string()),
            None => {
                let all: Vec<&str> = RunOutcome::ALL.iter().map(|o| o.as_str()).collect();
                return Err(ApiError::bad_request(format!(
                    "outcome: {o:?} is not one of {}",
                    all.join(", ")
                )));
            }
        },
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
    let (input, output) = match &run.io {
        Some(io) => {
            let (input, output) = store::open_run_io(&st.vault, &run, io)?;
            let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
            (parse(&input), output.as_deref().and_then(parse))
        }
        None => (None, None),
    };
    Ok(Json(RunDetail {
        run: RunSummary::from(&run),
        logs,
        logs_dropped: run.logs_dropped,
        requests: requests.into_iter().map(RunRequest::from).collect(),
        io_kept: run.io.is_some(),
        input,
        output,
    }))
}
