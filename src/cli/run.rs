//! `codestep run`: one step from a file, printed as one JSON object (on one line unless `--pretty`).

use std::path::PathBuf;

use clap::Args;

use crate::connector::{load_connectors_file, Connector};
use crate::engine::{Executor, ExecutorConfig, LimitOverrides, Limits, StepRequest};

use super::{Exit, StoreArg, UsageError};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The step: an ES module whose default export is `(input, ctx) => value`.
    pub step: PathBuf,
    /// The step's input: JSON text, or @FILE to read it from a file.
    #[arg(long, default_value = "null")]
    pub input: String,
    /// A JSON file of connectors (with their secrets) for an ad-hoc run.
    #[arg(long)]
    pub connectors: Option<PathBuf>,
    /// Use stored connectors of this workspace (with --connector).
    #[arg(long, requires = "connector")]
    pub workspace: Option<String>,
    /// A stored connector to give the step, in priority order (repeatable).
    #[arg(long = "connector", requires = "workspace")]
    pub connector: Vec<String>,
    #[command(flatten)]
    pub net: super::NetArgs,
    /// Wall-time limit for the step, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// CPU-time limit for the step, in milliseconds.
    #[arg(long)]
    pub cpu_time_ms: Option<u64>,
    /// Memory limit for the step, in MiB: everything it makes codestep allocate.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    #[command(flatten)]
    pub isolation: super::IsolationArgs,
    /// Also search the step's heap for its connectors' secrets after it ends.
    #[arg(long)]
    pub audit_heap: bool,
    /// Print the result indented over several lines, for reading, instead of on one line.
    #[arg(long)]
    pub pretty: bool,
}

fn read_input(arg: &str) -> Result<serde_json::Value, UsageError> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("--input @{path}: {e}")))?,
            format!("--input @{path}"),
        ),
        None => (arg.to_string(), "--input".to_string()),
    };
    serde_json::from_str(&text).map_err(|e| UsageError(format!("{from}: not valid JSON: {e}")))
}

pub fn run(args: RunArgs, db: StoreArg) -> Result<Exit, UsageError> {
    let code = std::fs::read_to_string(&args.step).map_err(|e| {
        UsageError(format!(
            "{}: cannot read the step: {e}",
            args.step.display()
        ))
    })?;
    let input = read_input(&args.input)?;
    let mut connectors: Vec<Connector> = Vec::new();
    if let Some(path) = &args.connectors {
        connectors = load_connectors_file(path).map_err(|e| UsageError(e.to_string()))?;
    }
    if let Some(workspace) = &args.workspace {
        connectors.extend(super::stored_connectors(db, workspace, &args.connector)?);
    }
    let egress = args.net.egress_config()?;
    let config = ExecutorConfig {
        workers: 1,
        caps: Limits::default(),
        egress,
        audit_heap: args.audit_heap,
        mode: args.isolation.mode()?,
    };
    let executor = Executor::new(config).map_err(|e| UsageError(e.to_string()))?;
    let request = StepRequest {
        code,
        input,
        connectors,
        limits: LimitOverrides {
            timeout_ms: args.timeout_ms,
            cpu_time_ms: args.cpu_time_ms,
            memory_mb: args.memory_mb,
            ..Default::default()
        },
        step_id: None,
        tenant: None,
    };
    let result = executor.run_blocking(request);
    let json = if args.pretty {
        serde_json::to_string_pretty(&result)
    } else {
        serde_json::to_string(&result)
    };
    println!("{}", json.expect("a step result always serialises"));
    Ok(if result.ok {
        Exit::Ok
    } else {
        Exit::StepFailed
    })
}
