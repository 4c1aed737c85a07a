//! Running a step over HTTP: the orchestrator's endpoint. The result is the same object `codestep run`
//! prints, plus the run id; every fetch attempt of the run is recorded for monitoring.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiPath};
use super::state::AppState;
use crate::engine::{LimitOverrides, StepRequest, StepResult};
use crate::store::{self, new_id, FetchAttempt, RunRecord};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "export default async (input) => (await fetch(\"https://api.stripe.com/v1/balance\")).status",
    "input": {"limit": 10}, "connectors": ["stripe"], "limits": {"timeout_ms": 5000}}))]
pub struct RunBody {
    /// The step: an ES module whose default export is `(input, ctx) => value`. Give this or `main`.
    #[serde(default)]
    pub code: Option<String>,
    /// The same as `code`, for a step given as several modules.
    #[serde(default)]
    pub main: Option<String>,
    /// The main module's name in errors and stacks, and where its relative imports start (`step.js`).
    #[serde(default)]
    pub name: Option<String>,
    /// The step's other modules by relative name (`"./lib.js": "export …"`), which its modules import
    /// by relative path. Packages come from the server's package directory, by name.
    #[serde(default)]
    pub modules: std::collections::BTreeMap<String, String>,
    /// Any JSON value (null when absent).
    #[serde(default)]
    #[schema(schema_with = crate::engine::any_json_schema)]
    pub input: serde_json::Value,
    /// Stored connectors of this workspace, in priority order.
    #[serde(default)]
    pub connectors: Vec<String>,
    #[serde(default)]
    pub limits: LimitOverrides,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"run_id": "3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50", "ok": true, "output": 200,
    "logs": [{"level": "log", "message": "got 200", "time": 1795615200120_u64}],
    "requests": [{"at_ms": 1795615200012_i64, "connector": "stripe", "method": "GET", "host": "api.stripe.com",
                  "path": "/v1/balance", "status": 200, "error": null, "duration_ms": 3.1, "blocked": false, "redirects": 0}],
    "stats": {"duration_ms": 14.2, "fetches": 1, "logs_dropped": 0}}))]
pub struct RunResponse {
    pub run_id: String,
    /// `ok`, `output`, `error`, `logs`, `requests` and `stats`, as `codestep run` prints them.
    #[serde(flatten)]
    pub result: StepResult,
}

/// Most modules in one run besides the main one.
const MAX_MODULES: usize = 256;

impl RunBody {
    /// Exactly one of `code` and `main`; module names relative, inside the step.
    fn check(&mut self) -> Result<(), ApiError> {
        match (&self.code, self.main.take()) {
            (Some(_), Some(_)) => {
                return Err(
                    ApiError::bad_request("give the step as `code` or as `main`, not both")
                        .in_body_field("main"),
                )
            }
            (None, None) => {
                return Err(
                    ApiError::bad_request("the step's `code` is missing").in_body_field("code")
                )
            }
            (None, Some(main)) => self.code = Some(main),
            _ => {}
        }
        if self.modules.len() > MAX_MODULES {
            return Err(
                ApiError::bad_request(format!("at most {MAX_MODULES} modules"))
                    .in_body_field("modules"),
            );
        }
        for name in self.modules.keys().chain(self.name.iter()) {
            crate::engine::modules::resolve::step_module_name(name)
                .map_err(|e| ApiError::bad_request(e).in_body_field("modules"))?;
        }
        Ok(())
    }

    /// The step's modules, hashed for the history: the main module, then each module's name and code.
    fn hash(&self) -> String {
        let mut all = self.code.clone().unwrap_or_default().into_bytes();
        for (name, code) in &self.modules {
            all.extend_from_slice(format!("\0{name}\0{}", code.len()).as_bytes());
            all.extend_from_slice(code.as_bytes());
        }
        store::sha256_hex(&all)
    }
}

/// How long a caller turned away with 429 should wait, in seconds.
const RETRY_AFTER_SECS: u64 = 1;

/// Run a step with some of the workspace's connectors and wait for its result.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/runs", tag = "runs", operation_id = "run_step", params(("ws" = String, Path)),
    request_body = RunBody,
    responses((status = 200, body = RunResponse, description = "the step ran (it may still have failed: see `ok`)",
               headers(("Server-Timing" = String, description = "`store;dur=MS`: the run's time in the store"))),
              (status = 503, body = ErrorBody, description = "the step ran but its fetch records could not be stored: not acknowledged"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "the pool and its queue are full; see Retry-After",
               headers(("Retry-After" = u64, description = "seconds to wait before trying again")))),
    security(("token" = [])))]
pub async fn run(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiJson(mut body): ApiJson<RunBody>,
) -> Result<impl IntoResponse, ApiError> {
    let token = caller.label().to_string();
    body.check()?;
    // The run and its records go on in their own task: a client that hangs up drops this handler,
    // but a step that already used a secret must still be recorded.
    tokio::spawn(execute(st, ws, token, body))
        .await
        .map_err(|_| ApiError::internal("the run's task failed"))?
}

type RunReply = ([(HeaderName, HeaderValue); 1], Json<RunResponse>);

async fn execute(
    st: AppState,
    ws: String,
    token: String,
    body: RunBody,
) -> Result<RunReply, ApiError> {
    let Ok(_permit) = st.admission.clone().try_acquire_owned() else {
        st.metrics.run_rejected();
        return Err(ApiError::busy(RETRY_AFTER_SECS));
    };
    // The workspace and its connectors in one read.
    let store_started = Instant::now();
    let (workspace, connectors) =
        store::load_run(&*st.store, &st.vault, &ws, &body.connectors).await?;
    let mut store_time = store_started.elapsed();
    let run_id = new_id();
    let step_hash = if body.modules.is_empty() {
        store::sha256_hex(body.code.as_deref().unwrap_or_default().as_bytes())
    } else {
        body.hash()
    };
    let started_at = store::now_millis();
    // Kept only when the workspace opts in; then sealed before the run, so its plaintext is never
    // held longer than the run needs it.
    let input_json = workspace
        .keep_run_io
        .then(|| serde_json::to_string(&body.input).unwrap_or_else(|_| "null".into()));
    let mut request = StepRequest::new(body.code.unwrap_or_default(), body.input);
    request.main_name = body.name;
    request.modules = body.modules.into_iter().collect();
    request.connectors = connectors;
    request.limits = body.limits;
    request.step_id = Some(run_id.clone());
    request.tenant = Some(workspace.id.clone());
    let submitted = Instant::now();
    let result = st.executor.run(request).await;
    // What the run took beyond its step: waiting for a worker, and reaching it.
    let waited = submitted
        .elapsed()
        .saturating_sub(Duration::from_secs_f64(result.stats.duration_ms / 1000.0));

    let attempts: Vec<FetchAttempt> = result
        .requests
        .iter()
        .map(|r| FetchAttempt::from_record(r, Some(&run_id)))
        .collect();
    st.metrics.run(&result, waited, &attempts);
    let logs = serde_json::to_string(&result.logs).unwrap_or_else(|_| "[]".into());
    let io = match &input_json {
        Some(input) => {
            let output = result.output.as_ref().map(|o| o.get());
            match store::seal_run_io(&*st.store, &st.vault, &workspace.id, &run_id, input, output)
                .await
            {
                Ok(io) => Some(io),
                // The run happened and may have used a secret: it is recorded without them.
                Err(e) => {
                    tracing::error!(run_id = %run_id, error = %e, "could not seal a run's input and output");
                    None
                }
            }
        }
        None => None,
    };
    let history = RunRecord {
        id: run_id.clone(),
        workspace_id: workspace.id.clone(),
        started_at,
        ended_at: store::now_millis(),
        step_hash,
        token,
        outcome: super::metrics::outcome_label(&result).to_string(),
        error_message: result.error.as_ref().map(|e| e.message.clone()),
        duration_ms: result.stats.duration_ms,
        fetches: result.stats.fetches,
        output_bytes: result.output.as_ref().map_or(0, |o| o.get().len() as u64),
        logs_dropped: result.stats.logs_dropped as u64,
        logs,
        io,
    };
    // A run is acknowledged only once it is in the history with every use of a secret it made: a
    // write that fails (a node losing its database for a moment) is tried again, then reported.
    let record_started = Instant::now();
    let mut tries = 0;
    while let Err(e) = st.store.record_run(&history, &attempts).await {
        tries += 1;
        if tries == RECORD_TRIES {
            tracing::error!(run_id = %run_id, error = %e, "could not record a run");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "records_not_stored",
                format!(
                    "run {run_id} finished, but its record could not be stored; it is not acknowledged"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50 << tries)).await;
    }
    store_time += record_started.elapsed();
    tracing::info!(
        target: "codestep::run",
        run_id = %run_id,
        workspace = %workspace.name,
        outcome = super::metrics::outcome_label(&result),
        duration_ms = result.stats.duration_ms,
        fetches = result.stats.fetches,
        "run"
    );
    // How long the run spent in the store (its one read and its one write; authentication apart), for
    // operators and for the nodes benchmark.
    let timing = format!("store;dur={:.3}", store_time.as_secs_f64() * 1000.0);
    Ok((
        [(
            HeaderName::from_static("server-timing"),
            HeaderValue::from_str(&timing).expect("ASCII"),
        )],
        Json(RunResponse { run_id, result }),
    ))
}

/// How often recording a run's fetches is tried before the run is reported as not acknowledged.
const RECORD_TRIES: u32 = 3;
