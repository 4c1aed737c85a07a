//! The engine: one fresh V8 isolate per step, made from the startup snapshot, on a pool of worker
//! threads, with the step's limits enforced and its console captured.
//!
//! ```no_run
//! # async fn demo() {
//! use codestep::engine::{Executor, ExecutorConfig, StepRequest};
//! let exec = Executor::new(ExecutorConfig::default()).unwrap();
//! let res = exec.run(StepRequest::new("export default (input) => input.n + 1", serde_json::json!({"n": 41}))).await;
//! assert_eq!(res.output, Some(serde_json::json!(42)));
//! # }
//! ```

mod audit;
mod console;
mod extension;
mod host;
mod limits;
pub mod ops;
mod pool;
mod runtime;
mod step;
mod watchdog;

use serde::Serialize;

pub use console::{Level, LogEntry};
pub use limits::{LimitOverrides, Limits};
pub use pool::{Executor, ExecutorError};

use crate::connector::Connector;
use crate::egress::{Egress, EgressConfig, FetchRecord};

/// How an executor is set up by its operator.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// Worker threads, each running one step at a time.
    pub workers: usize,
    /// The most any step may get; a step's own limits can only be lower.
    pub caps: Limits,
    pub egress: EgressConfig,
    /// Searches each step's heap for its connectors' secrets after it ends (costs a heap snapshot).
    pub audit_heap: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        ExecutorConfig {
            workers,
            caps: Limits::default(),
            egress: EgressConfig::default(),
            audit_heap: false,
        }
    }
}

/// One step to run.
#[derive(Clone, Debug)]
pub struct StepRequest {
    /// An ES module whose default export is `(input, ctx) => value`, possibly async.
    pub code: String,
    pub input: serde_json::Value,
    /// The step's connectors, in priority order: the first that matches a request wins.
    pub connectors: Vec<Connector>,
    pub limits: LimitOverrides,
    /// Given to the step as `ctx.stepId`; a random one is made when absent.
    pub step_id: Option<String>,
}

impl StepRequest {
    pub fn new(code: impl Into<String>, input: serde_json::Value) -> Self {
        StepRequest {
            code: code.into(),
            input,
            connectors: Vec::new(),
            limits: LimitOverrides::default(),
            step_id: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The step threw, or its module did not load.
    Error,
    /// Wall time ran out.
    Timeout,
    /// The heap or ArrayBuffer memory limit was hit.
    Memory,
    /// Another step limit (fetch count, body sizes) was hit.
    Limit,
    /// The returned value could not be turned into JSON.
    Output,
    /// The input could not be given to the step.
    Input,
    /// The engine failed; not the step's fault.
    Internal,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StepStats {
    pub duration_ms: f64,
    pub fetches: u32,
    /// Log entries dropped because the step's log was full.
    pub logs_dropped: usize,
    /// Set when the heap audit ran: whether any connector secret was found in the step's heap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_in_heap: Option<bool>,
}

/// What a step produced. Serialises to the JSON object `codestep run` prints.
#[derive(Clone, Debug, Serialize)]
pub struct StepResult {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    pub logs: Vec<LogEntry>,
    pub requests: Vec<FetchRecord>,
    pub stats: StepStats,
}

/// What every worker shares.
struct Shared {
    config: ExecutorConfig,
    egress: Egress,
    http: tokio::runtime::Handle,
}
