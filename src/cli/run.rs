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
    #[command(flatten)]
    pub code: super::CodeArgs,
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

/// Most modules read from beside the step.
const MAX_STEP_MODULES: usize = 256;

/// The step's own modules: the files its modules import by relative path, read from the step's
/// directory (and below it) before the step starts. A path that leaves the directory, through `..` or a
/// symlink, is not read; the import then fails in the step with the module named.
/// A step read from its files: the main module's name and code, and its other modules by name.
pub struct StepFiles {
    pub main: String,
    pub code: String,
    pub modules: Vec<(String, String)>,
}

pub fn read_step_modules(step: &std::path::Path) -> Result<StepFiles, UsageError> {
    use crate::engine::modules::{resolve::step_module_name, scan::scan};
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| UsageError(format!("{}: cannot read the step: {e}", p.display())))
    };
    let code = read(step)?;
    let real = step
        .canonicalize()
        .map_err(|e| UsageError(format!("{}: {e}", step.display())))?;
    let dir = real
        .parent()
        .unwrap_or(std::path::Path::new("/"))
        .to_path_buf();
    let main = real
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .and_then(|n| step_module_name(&n).ok())
        .unwrap_or_else(|| "step.js".to_string());
    let mut others: Vec<(String, String)> = Vec::new();
    let mut queue = vec![(main.clone(), code.clone())];
    let mut seen = std::collections::HashSet::from([main.clone()]);
    while let Some((name, source)) = queue.pop() {
        for spec in scan(&source).specifiers {
            if !(spec.starts_with("./") || spec.starts_with("../")) {
                continue;
            }
            let Ok(url) = url::Url::parse(&format!("file:///{name}")).and_then(|u| u.join(&spec))
            else {
                continue;
            };
            let rel = url.path().trim_start_matches('/').to_string();
            let Ok(rel) = step_module_name(&rel) else {
                continue;
            };
            for candidate in [rel.clone(), format!("{rel}.js"), format!("{rel}.mjs")] {
                if seen.contains(&candidate) {
                    break;
                }
                // Only files inside the step's directory, symlinks followed.
                let Ok(path) = dir.join(&candidate).canonicalize() else {
                    continue;
                };
                if !path.starts_with(&dir) || !path.is_file() {
                    continue;
                }
                let text = read(&path)?;
                seen.insert(candidate.clone());
                if others.len() >= MAX_STEP_MODULES {
                    return Err(UsageError(format!(
                        "{}: imports more than {MAX_STEP_MODULES} modules",
                        step.display()
                    )));
                }
                others.push((candidate.clone(), text.clone()));
                queue.push((candidate, text));
                break;
            }
        }
    }
    Ok(StepFiles {
        main,
        code,
        modules: others,
    })
}

pub fn run(args: RunArgs, db: StoreArg) -> Result<Exit, UsageError> {
    let StepFiles {
        main: main_name,
        code,
        modules,
    } = read_step_modules(&args.step)?;
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
        packages: args.code.packages()?,
        env: args.code.env()?,
        // One step per process: a snapshot would be made for one use.
        preload: Vec::new(),
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
        main_name: Some(main_name),
        modules,
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
