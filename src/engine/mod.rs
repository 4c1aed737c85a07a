//! The engine: one fresh V8 isolate per step, made from the startup snapshot, with the step's limits
//! enforced and its console captured.
//!
//! Steps run in one of two modes (`Mode`). In process mode (what `codestep run` and `serve` use) each
//! step runs in a sandboxed worker process (`worker`, `sandbox`) that holds no secret, under a
//! supervisor (`supervisor`, `monitor`). In-process mode runs them on threads of this process
//! (`pool`). Both share one code path: the isolate side (`step`, `host`) talks to the step's gateway
//! (`gateway`), which holds the connectors and runs the egress path, through `protocol` messages;
//! `outcome` joins what both sides saw into the `StepResult`.
//!
//! ```no_run
//! # async fn demo() {
//! use codestep::engine::{Executor, ExecutorConfig, StepRequest};
//! let exec = Executor::new(ExecutorConfig::default()).unwrap();
//! let res = exec.run(StepRequest::new("export default (input) => input.n + 1", serde_json::json!({"n": 41}))).await;
//! assert_eq!(res.output_value(), Some(serde_json::json!(42)));
//! # }
//! ```

mod audit;
mod clone;
mod code_pages;
mod console;
mod extension;
mod forking;
mod gateway;
mod host;
pub mod ipc;
mod limits;
pub mod modules;
mod monitor;
pub(crate) mod node_ops;
pub mod ops;
mod outcome;
mod pool;
mod preload;
pub mod protocol;
mod runtime;
pub mod sandbox;
mod socket;
mod step;
mod supervisor;
mod warmup;
mod watchdog;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

pub use console::{Level, LogEntry};
pub use limits::{LimitOverrides, Limits};
pub use worker::run_if_worker;

use crate::connector::Connector;
use crate::egress::{Egress, EgressConfig, FetchRecord};

/// Where steps run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Threads of this process. Every rule of the security model holds except containment: the
    /// secrets share the address space with untrusted JS, and a V8 abort ends the process. For
    /// embedding and tests.
    InProcess,
    /// Worker processes that hold no secret, confined by seccomp unless `sandbox` is false (see
    /// `worker` for how a binary starts them).
    Process {
        program: WorkerProgram,
        sandbox: bool,
    },
}

/// The program a supervisor starts as its workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerProgram {
    /// This process's own executable. Its `main` must call `codestep::engine::run_if_worker()` first.
    CurrentExe,
    /// Another executable that does, such as an installed `codestep`.
    Path(PathBuf),
}

/// How an executor is set up by its operator.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// Workers (processes, or threads in-process), each running one step at a time.
    pub workers: usize,
    /// The most any step may get; a step's own limits can only be lower.
    pub caps: Limits,
    pub egress: EgressConfig,
    /// Searches each step's heap for its connectors' secrets after it ends (costs a heap snapshot).
    pub audit_heap: bool,
    pub mode: Mode,
    /// The operator's package directory, which steps import packages from (`--packages`).
    pub packages: Option<Arc<modules::resolve::PackageDir>>,
    /// Environment variables given to steps as `process.env` (`--env NAME`); nothing else of the
    /// environment reaches a step.
    pub env: Vec<(String, String)>,
    /// Packages of `packages` evaluated once into a startup snapshot that every worker's isolates
    /// start from (`--preload`): a step importing them starts with them evaluated (see `preload`).
    /// Process mode only.
    pub preload: Vec<String>,
}

impl Default for ExecutorConfig {
    /// In-process mode, as a library embedding starts; `codestep run` and `serve` use process mode.
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        ExecutorConfig {
            workers,
            caps: Limits::default(),
            egress: EgressConfig::default(),
            audit_heap: false,
            mode: Mode::InProcess,
            packages: None,
            env: Vec::new(),
            preload: Vec::new(),
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
    /// Who the step runs for (`serve` uses the workspace). In process mode a worker process only ever
    /// runs steps of one tenant: were it taken over through a V8 bug, it would see no other tenant's
    /// code, input or connectors. Switching costs a new worker process.
    pub tenant: Option<String>,
    /// The name `code` is known by in errors and stacks, and that relative imports start from
    /// (`step.js` when absent).
    pub main_name: Option<String>,
    /// The step's other modules, by relative name (`./lib.js`), which its modules import by relative path.
    pub modules: Vec<(String, String)>,
}

impl StepRequest {
    pub fn new(code: impl Into<String>, input: serde_json::Value) -> Self {
        StepRequest {
            code: code.into(),
            input,
            connectors: Vec::new(),
            limits: LimitOverrides::default(),
            step_id: None,
            tenant: None,
            main_name: None,
            modules: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = StepErrorKind)]
pub enum ErrorKind {
    /// The step threw, or its module did not load.
    Error,
    /// Wall time or CPU time ran out.
    Timeout,
    /// The memory limit was hit (heap, buffers, or the worker's resident memory).
    Memory,
    /// Another step limit (fetch count, body sizes) was hit.
    Limit,
    /// The returned value could not be turned into JSON, or its JSON was over the output limit.
    Output,
    /// The input could not be given to the step.
    Input,
    /// The engine failed; not the step's fault.
    Internal,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepError {
    pub kind: ErrorKind,
    #[schema(example = "step exceeded its wall time of 30000 ms")]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Where the error was thrown in the step's own code: `step.js:3:7` (the module name as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// A few lines of that module around the location, with a caret under the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StepResult {
    pub ok: bool,
    /// The output's JSON text, checked but not parsed (see `output_value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = any_json_schema)]
    pub output: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    pub logs: Vec<LogEntry>,
    pub requests: Vec<FetchRecord>,
    pub stats: StepStats,
    /// What the step did that worked but was probably not meant (it returned `undefined`, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl StepResult {
    /// The output parsed, for callers that want to look inside it.
    pub fn output_value(&self) -> Option<serde_json::Value> {
        self.output
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }
}

/// The schema of a value that may be any JSON (a step's input or output): every JSON type named, so
/// the OpenAPI document says so instead of leaving the property untyped.
pub fn any_json_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![
            Type::Object,
            Type::Array,
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Null,
        ]))
        .description(Some("any JSON value"))
        .build()
}

/// What every pool shares: the configuration, and the gateway's egress path and runtime.
struct Shared {
    config: ExecutorConfig,
    egress: Egress,
    http: tokio::runtime::Handle,
    /// What the package snapshot holds, resolved once (`ExecutorConfig::preload`).
    preload: Option<Arc<protocol::Preload>>,
    /// The package snapshot, made when the first worker starts (`supervisor`).
    package_snapshot: tokio::sync::OnceCell<Result<Arc<PackageSnapshot>, String>>,
}

/// The snapshot every worker starts from with `ExecutorConfig::preload`, and the package files in it.
struct PackageSnapshot {
    blob: Vec<u8>,
    modules: std::collections::HashSet<String>,
}

/// A step as both pools start it: the job its isolate gets (connector names, never connectors), and
/// its gateway, which keeps the connectors where the secrets are.
struct Started {
    job: protocol::Job,
    limits: Limits,
    gateway: gateway::Gateway,
    /// What the gateway has to say to the isolate.
    from_gateway: tokio::sync::mpsc::UnboundedReceiver<protocol::GatewayMsg>,
    /// The heap audit's search, when the operator asked for it.
    search: Option<audit::SecretSearch>,
    at: std::time::Instant,
}

impl Started {
    fn new(request: StepRequest, shared: &Shared) -> Started {
        let at = std::time::Instant::now();
        let config = &shared.config;
        let limits = config.caps.resolve(&request.limits);
        let names: Vec<&str> = request.connectors.iter().map(|c| c.name.as_str()).collect();
        let step_id = request.step_id.clone().unwrap_or_else(random_step_id);
        let ctx = serde_json::json!({ "stepId": step_id, "connectors": names }).to_string();
        let search = config
            .audit_heap
            .then(|| audit::SecretSearch::new(&request.connectors));
        let (to_isolate, from_gateway) = tokio::sync::mpsc::unbounded_channel();
        let gateway = gateway::Gateway::new(
            shared.egress.clone(),
            shared.http.clone(),
            request.connectors,
            limits.clone(),
            to_isolate,
        );
        let main_name = request
            .main_name
            .as_deref()
            .and_then(|n| modules::resolve::step_module_name(n).ok())
            .unwrap_or_else(|| "step.js".to_string());
        let others: Vec<(String, String)> = request
            .modules
            .iter()
            .filter_map(|(name, src)| {
                Some((modules::resolve::step_module_name(name).ok()?, src.clone()))
            })
            .collect();
        // Files evaluated into the package snapshot are in every isolate already: not sent again.
        // (Their links stay: a preloaded module may still import another file at run time.)
        let no_files = std::collections::HashSet::new();
        let omit = match shared.package_snapshot.get() {
            Some(Ok(snapshot)) => &snapshot.modules,
            _ => &no_files,
        };
        let module_set = modules::resolve::prepare_omitting(
            &main_name,
            &request.code,
            &others,
            config.packages.as_deref(),
            omit,
        );
        let job = protocol::Job {
            modules: module_set,
            env: config.env.clone(),
            code: request.code,
            input: request.input.to_string(),
            ctx,
            limits: limits.clone(),
            audit_heap: config.audit_heap,
        };
        Started {
            job,
            limits,
            gateway,
            from_gateway,
            search,
            at,
        }
    }
}

fn random_step_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

enum Backend {
    InProcess(pool::ThreadPool),
    Process(supervisor::ProcessPool),
}

/// Runs steps. Cheap to share behind an `Arc`; `run` may be called from many tasks at once, and up to
/// `workers` steps run at the same time while the rest wait in order.
pub struct Executor {
    backend: Option<Backend>,
    http: Option<tokio::runtime::Runtime>,
    /// The egress path and its runtime, for `probe`.
    egress: Egress,
    http_handle: tokio::runtime::Handle,
    worker_count: usize,
    sandboxed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("egress configuration: {0}")]
    Egress(String),
    #[error("could not start the executor: {0}")]
    Start(#[from] std::io::Error),
    #[error("--preload: {0}")]
    Preload(String),
}

/// Resolves `config.preload` into the module set the package snapshot is made from. Every name must be a
/// package of the package directory, in process mode.
fn preload_set(config: &ExecutorConfig) -> Result<Option<protocol::Preload>, ExecutorError> {
    if config.preload.is_empty() {
        return Ok(None);
    }
    let Some(packages) = config.packages.as_deref() else {
        return Err(ExecutorError::Preload(
            "preloading needs a package directory (--packages DIR)".into(),
        ));
    };
    if matches!(config.mode, Mode::InProcess) {
        return Err(ExecutorError::Preload(
            "preloading needs worker processes (it is not done in-process)".into(),
        ));
    }
    let main_code = preload::main_code(&config.preload);
    let set = modules::resolve::prepare(preload::MAIN_NAME, &main_code, &[], Some(packages));
    for name in &config.preload {
        let target = set
            .links
            .iter()
            .find(|(from, spec, _)| *from == set.main && spec == name)
            .map(|(_, _, t)| t);
        match target {
            Some(modules::Target::Module(_)) => {}
            Some(modules::Target::Builtin(_)) => {
                return Err(ExecutorError::Preload(format!(
                    "{name} is a Node built-in, not a package of the package directory"
                )))
            }
            Some(modules::Target::Error(e)) => return Err(ExecutorError::Preload(e.clone())),
            None => {
                return Err(ExecutorError::Preload(format!(
                    "{name} is not a package name"
                )))
            }
        }
    }
    Ok(Some(protocol::Preload { set, main_code }))
}

/// Threads of the runtime the supervisor's side of steps runs on (the worker sockets, the gateways
/// and their fetches): two, or one when the process may use one CPU, where a second thread only
/// takes work from the first, one context switch per handover.
fn http_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(2))
}

impl Executor {
    /// Builds the pool. Call it from the main thread before other threads make V8 isolates.
    pub fn new(config: ExecutorConfig) -> Result<Executor, ExecutorError> {
        let http = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(http_threads())
            .thread_name("codestep-http")
            .enable_all()
            .build()?;
        let egress = {
            let _enter = http.enter();
            Egress::new(config.egress.clone()).map_err(|e| ExecutorError::Egress(e.to_string()))?
        };
        let worker_count = config.workers.max(1);
        let mode = config.mode.clone();
        let preload = preload_set(&config)?.map(Arc::new);
        let shared = Arc::new(Shared {
            config,
            egress: egress.clone(),
            http: http.handle().clone(),
            preload,
            package_snapshot: tokio::sync::OnceCell::new(),
        });
        let (backend, sandboxed) = match &mode {
            Mode::InProcess => {
                runtime::init_platform();
                (Backend::InProcess(pool::ThreadPool::start(shared)?), false)
            }
            Mode::Process { program, sandbox } => {
                let _enter = http.enter();
                (
                    Backend::Process(supervisor::ProcessPool::start(shared, program, *sandbox)?),
                    *sandbox,
                )
            }
        };
        Ok(Executor {
            backend: Some(backend),
            http_handle: http.handle().clone(),
            http: Some(http),
            egress,
            worker_count,
            sandboxed,
        })
    }

    pub fn workers(&self) -> usize {
        self.worker_count
    }

    /// Whether steps run in confined worker processes.
    pub fn sandboxed(&self) -> bool {
        self.sandboxed
    }

    /// Workers able to take a step now: live worker processes, or every thread in-process.
    pub fn workers_alive(&self) -> usize {
        match &self.backend {
            Some(Backend::Process(p)) => p.pids().len(),
            Some(Backend::InProcess(_)) => self.worker_count,
            None => 0,
        }
    }

    /// The process ids of the live worker processes (none in-process).
    pub fn worker_pids(&self) -> Vec<u32> {
        match &self.backend {
            Some(Backend::Process(p)) => p.pids(),
            _ => Vec::new(),
        }
    }

    /// Sends one GET through `connector` on the egress path the steps use ("test connection"). It
    /// runs here, in the supervisor, where the secrets are; no isolate is involved.
    pub async fn probe(
        &self,
        connector: crate::connector::Connector,
        url: url::Url,
        timeout: std::time::Duration,
    ) -> (crate::egress::probe::ProbeReport, FetchRecord) {
        let egress = self.egress.clone();
        let task = self
            .http_handle
            .spawn(async move { egress.probe(&connector, &url, timeout).await });
        match task.await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Runs one step and waits for its result.
    pub async fn run(&self, request: StepRequest) -> StepResult {
        let (reply, rx) = oneshot::channel();
        let sent = match &self.backend {
            Some(Backend::InProcess(p)) => p.submit(request, reply),
            Some(Backend::Process(p)) => p
                .submit(supervisor::Task::Step {
                    request: Box::new(request),
                    reply,
                })
                .is_ok(),
            None => false,
        };
        if !sent {
            return outcome::internal("the executor has shut down");
        }
        rx.await
            .unwrap_or_else(|_| outcome::internal("the worker running this step died"))
    }

    /// `run` for callers without an async runtime (the CLI, benchmarks).
    pub fn run_blocking(&self, request: StepRequest) -> StepResult {
        futures::executor::block_on(self.run(request))
    }

    /// Test hook: has a worker process try every call its sandbox refuses. Each entry is a call and
    /// `None` when it was refused, or what happened instead.
    pub async fn probe_sandbox(&self) -> Result<Vec<(String, Option<String>)>, String> {
        let Some(Backend::Process(p)) = &self.backend else {
            return Err("the executor runs steps in-process".into());
        };
        let (reply, rx) = oneshot::channel();
        p.submit(supervisor::Task::Probe { reply })
            .map_err(|_| "the executor has shut down".to_string())?;
        rx.await.map_err(|_| "the worker died".to_string())?
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // In-process threads finish their steps; worker processes are told to exit.
        self.backend.take();
        if let Some(http) = self.http.take() {
            // Dropping a runtime from inside another runtime's task would panic; this never blocks.
            http.shutdown_background();
        }
    }
}
