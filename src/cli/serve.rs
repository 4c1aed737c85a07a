//! `codestep serve`: the HTTP API and dashboard, on the store given by `--db`.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use super::{StoreArg, UsageError};
use crate::api::{self, ServeOptions, DEFAULT_MAX_BODY};
use crate::engine::{Executor, ExecutorConfig, Limits};

/// The environment `serve` reads, shown under `serve --help`: clap only lists variables bound to a
/// flag, and most of these are read deeper down (store, vault, worker start).
const ENV_HELP: &str = "\
Environment:
  CODESTEP_DB              The store when --db is not given: a SQLite file path or a postgres:// URL
  CODESTEP_DB_POOL_SIZE    PostgreSQL connections per node when the URL has no pool_size (default 16)
  CODESTEP_OPERATOR_TOKEN  The operator token, 16 characters or more (default: operator.token beside
                           the default store, made 0600 on first start)
  CODESTEP_MASTER_KEY      Master keys: base64 of 32 bytes, or VERSION:BASE64,... (default: the key file)
  CODESTEP_KEY_FILE        The master key file (default: master.key beside the default store, made 0600
                           on first start)
  XDG_DATA_HOME, HOME      Where the default store, key file and token file live:
                           $XDG_DATA_HOME/codestep, else ~/.local/share/codestep
  TZ                       The time zone steps see, the one variable workers get (default UTC)";

#[derive(Debug, Args)]
#[command(after_help = ENV_HELP)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Workers (processes, or threads with --in-process), each running one step at a time (default: one per CPU core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Runs that may wait for a free worker; past that, new runs get 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Days fetch records are kept for monitoring.
    #[arg(long, default_value_t = 30)]
    pub retention_days: u32,
    /// Seconds between two prunings of fetch records older than the retention.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_every_secs: u64,
    /// Largest request body the API accepts, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY)]
    pub max_body_bytes: usize,
    #[command(flatten)]
    pub net: super::NetArgs,
    #[command(flatten)]
    pub caps: CapArgs,
    #[command(flatten)]
    pub isolation: super::IsolationArgs,
    #[command(flatten)]
    pub code: super::CodeArgs,
    /// A package of --packages to evaluate once, at start, into the snapshot every worker's isolates
    /// start from (repeatable): steps that import it find it loaded, in a fresh isolate as always.
    /// Every step of the server pays about a millisecond for the bigger snapshot.
    #[arg(long, value_name = "PACKAGE", requires = "packages")]
    pub preload: Vec<String>,
}

/// The operator's caps: the most any step may get. A run's own `limits` can only go lower.
#[derive(Debug, Args)]
pub struct CapArgs {
    /// Wall time, in milliseconds.
    #[arg(long, default_value_t = Limits::default().timeout_ms)]
    pub max_timeout_ms: u64,
    /// CPU time, in milliseconds.
    #[arg(long, default_value_t = Limits::default().cpu_time_ms)]
    pub max_cpu_time_ms: u64,
    /// Memory, in MiB: everything a step makes codestep allocate (heap, buffers, bodies, logs,
    /// output), with the worker's resident memory as the backstop.
    #[arg(long, default_value_t = Limits::default().memory_mb)]
    pub max_memory_mb: u64,
    /// Fetches per step.
    #[arg(long, default_value_t = Limits::default().max_fetches)]
    pub max_fetches: u32,
    /// Fetches in flight at once per step.
    #[arg(long, default_value_t = Limits::default().max_concurrent_fetches)]
    pub max_concurrent_fetches: u32,
    /// Request body size, in bytes.
    #[arg(long, default_value_t = Limits::default().max_request_body_bytes)]
    pub max_request_body_bytes: u64,
    /// Response body size, in bytes.
    #[arg(long, default_value_t = Limits::default().max_response_body_bytes)]
    pub max_response_body_bytes: u64,
    /// One request (all its hops and its body), in milliseconds.
    #[arg(long, default_value_t = Limits::default().request_timeout_ms)]
    pub max_request_timeout_ms: u64,
    /// A step's JSON output, in bytes.
    #[arg(long, default_value_t = Limits::default().max_output_bytes)]
    pub max_output_bytes: u64,
}

impl CapArgs {
    fn limits(&self) -> Limits {
        Limits {
            timeout_ms: self.max_timeout_ms,
            cpu_time_ms: self.max_cpu_time_ms,
            memory_mb: self.max_memory_mb,
            max_fetches: self.max_fetches,
            max_concurrent_fetches: self.max_concurrent_fetches,
            max_request_body_bytes: self.max_request_body_bytes,
            max_response_body_bytes: self.max_response_body_bytes,
            request_timeout_ms: self.max_request_timeout_ms,
            max_output_bytes: self.max_output_bytes,
        }
    }
}

/// The operator token: `CODESTEP_OPERATOR_TOKEN`, or a token file beside the default store, made with
/// mode 0600 on first start (its path is printed, never the token).
fn operator_token() -> Result<String, UsageError> {
    if let Ok(t) = std::env::var("CODESTEP_OPERATOR_TOKEN") {
        if t.trim().len() < 16 {
            return Err(UsageError(
                "CODESTEP_OPERATOR_TOKEN: must be at least 16 characters".into(),
            ));
        }
        return Ok(t.trim().to_string());
    }
    let path = crate::store::default_data_dir().join("operator.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_string());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| UsageError(format!("cannot make a token: {e}")))?;
    use base64::Engine as _;
    let token = format!(
        "cso_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| UsageError(format!("{}: {e}", dir.display())))?;
    }
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    writeln!(f, "{token}").map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    tracing::warn!(path = %path.display(), "created the operator token file");
    Ok(token)
}

pub fn run(args: ServeArgs, db: StoreArg) -> Result<i32, UsageError> {
    let egress = args.net.egress_config()?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if workers == 0 {
        return Err(UsageError("--workers: must be at least 1".into()));
    }
    let token = operator_token()?;
    // The executor first, on the main thread: V8's platform must exist before other threads make isolates.
    let executor = Executor::new(ExecutorConfig {
        workers,
        caps: args.caps.limits(),
        egress,
        audit_heap: false,
        mode: args.isolation.mode()?,
        packages: args.code.packages()?,
        env: args.code.env()?,
        preload: args.preload.clone(),
    })
    .map_err(|e| UsageError(e.to_string()))?;

    let executor = Arc::new(executor);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("codestep-api")
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))?;
    let opts = ServeOptions {
        listen: args.listen,
        queue: args.queue,
        retention_days: args.retention_days.max(1),
        retention_every: std::time::Duration::from_secs(args.retention_every_secs),
        max_body_bytes: args.max_body_bytes,
    };
    let result = rt.block_on(async {
        let location = db.location();
        let store = db.open().await.map_err(|e| UsageError(e.to_string()))?;
        // Before the key: a start that cannot listen must not leave a new key file behind.
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| UsageError(format!("serve: cannot listen on {}: {e}", opts.listen)))?;
        let loaded = crate::vault::Vault::load(&crate::store::default_key_file(), true)
            .map_err(|e| UsageError(e.to_string()))?;
        // The wrong key would fail every run that needs a secret: refuse to start instead, and leave
        // no key file behind that this start made.
        if let Err(e) = crate::store::check_master_keys(&*store, &loaded.vault).await {
            if let Some(created) = &loaded.created_key_file {
                let _ = std::fs::remove_file(created);
            }
            return Err(UsageError(format!("serve: {e}")));
        }
        if let Some(created) = &loaded.created_key_file {
            tracing::warn!(path = %created.display(), "created the master key file; back it up");
        }
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen = %opts.listen,
            store = if location.starts_with("postgres") { "postgres" } else { "sqlite" },
            workers,
            sandbox = args.isolation.sandbox_state(),
            "codestep serve starting: {}",
            args.isolation.describe(workers)
        );
        let state = api::state(store, loaded.vault, executor, &token, &opts);
        api::serve(listener, state, opts)
            .await
            .map_err(|e| UsageError(format!("serve: {e}")))
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result.map(|()| 0)
}
