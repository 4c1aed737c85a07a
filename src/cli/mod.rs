//! The `codestep` command line. Exit codes: 0 success, 1 the step (or the operation) failed,
//! 2 usage or configuration error.

mod logging;
pub mod manage;
mod net;
mod run;
mod serve;
mod tokens;

use clap::{CommandFactory, Parser, Subcommand};

pub use net::NetArgs;

#[derive(Debug, Parser)]
#[command(
    name = "codestep",
    version,
    about = "Runs untrusted workflow code steps; egress only through connectors"
)]
pub struct Cli {
    /// The store: a SQLite file path or a postgres:// URL (default: the XDG data dir).
    #[arg(long, global = true, env = "CODESTEP_DB")]
    pub db: Option<String>,
    /// Make a new SQLite store at --db if there is none. Without it, a --db path that does not exist
    /// is an error, so a typo never starts an empty store. (The default location is made on first use.)
    #[arg(long, global = true)]
    pub create_store: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one step and print its result as JSON.
    Run(run::RunArgs),
    /// Serve the HTTP API and the dashboard.
    Serve(serve::ServeArgs),
    /// Manage workspaces.
    #[command(subcommand)]
    Workspace(manage::WorkspaceCmd),
    /// Manage a workspace's connectors (secrets are write-only).
    #[command(subcommand)]
    Connector(manage::ConnectorCmd),
    /// Manage a workspace's API tokens and their scopes (a token is shown once, when made).
    #[command(subcommand)]
    Token(tokens::TokenCmd),
    /// Show a workspace's audit trail: who changed what, when and from where.
    Audit(tokens::AuditArgs),
    /// Manage the vault's master keys.
    #[command(subcommand)]
    Key(manage::KeyCmd),
    /// Print a shell completion script on stdout.
    ///
    /// For example: `codestep completions bash > ~/.local/share/bash-completion/completions/codestep`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// What steps may import and read: the flags of `run` and `serve`.
#[derive(Debug, clap::Args)]
pub struct CodeArgs {
    /// A package directory (a node_modules tree the operator installed and vetted, e.g. with npm) that
    /// steps import packages from by name. Its files are read once; restart after changing it.
    #[arg(long, value_name = "DIR")]
    pub packages: Option<std::path::PathBuf>,
    /// Give steps this variable of codestep's own environment as process.env.NAME (repeatable). Steps
    /// see no other variable. Not for secrets: those belong in connectors.
    #[arg(long = "env", value_name = "NAME")]
    pub step_env: Vec<String>,
}

impl CodeArgs {
    pub fn packages(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::engine::modules::resolve::PackageDir>>, UsageError>
    {
        self.packages
            .as_deref()
            .map(|dir| {
                crate::engine::modules::resolve::PackageDir::open(dir)
                    .map(std::sync::Arc::new)
                    .map_err(|e| UsageError(format!("--packages: {e}")))
            })
            .transpose()
    }

    pub fn env(&self) -> Result<Vec<(String, String)>, UsageError> {
        self.step_env
            .iter()
            .map(|name| {
                if name.is_empty() || name.contains('=') {
                    return Err(UsageError(format!("--env {name}: give a variable's name")));
                }
                // codestep's own settings hold its master key, operator token and store URL: a step
                // (and the worker it runs in) must never get them, whatever the operator typed.
                if name.to_ascii_uppercase().starts_with("CODESTEP_") {
                    return Err(UsageError(format!(
                        "--env {name}: codestep's own variables hold its keys and are never given to steps"
                    )));
                }
                std::env::var(name).map(|v| (name.clone(), v)).map_err(|_| {
                    UsageError(format!(
                        "--env {name}: no such variable in codestep's environment"
                    ))
                })
            })
            .collect()
    }
}

/// Where steps run: the flags of `run` and `serve`.
#[derive(Debug, clap::Args)]
pub struct IsolationArgs {
    /// Run worker processes without their seccomp sandbox, for kernels that cannot confine them.
    /// Workers still hold no secret; codestep says at start that the sandbox is off.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Run steps in threads of this process instead of worker processes: the weaker mode, where
    /// untrusted JS shares the address space with the secrets. For debugging.
    #[arg(long, conflicts_with = "no_sandbox")]
    pub in_process: bool,
}

impl IsolationArgs {
    /// The executor mode, refusing to go on unconfined unless the operator said so.
    pub fn mode(&self) -> Result<crate::engine::Mode, UsageError> {
        use crate::engine::{sandbox, Mode, WorkerProgram};
        if self.in_process {
            return Ok(Mode::InProcess);
        }
        if !self.no_sandbox {
            sandbox::available().map_err(|e| {
                UsageError(format!(
                    "the worker sandbox cannot be set up on this system ({e}); \
                     pass --no-sandbox to run worker processes without it"
                ))
            })?;
        }
        Ok(Mode::Process {
            program: WorkerProgram::CurrentExe,
            sandbox: !self.no_sandbox,
        })
    }

    /// The sandbox state in one word: `seccomp`, `off` or `in-process`.
    pub fn sandbox_state(&self) -> &'static str {
        if self.in_process {
            "in-process"
        } else if self.no_sandbox {
            "off"
        } else {
            "seccomp"
        }
    }

    /// How steps run, in words for the operator.
    pub fn describe(&self, workers: usize) -> String {
        if self.in_process {
            format!(
                "steps run in {workers} threads of this process (in-process mode: no containment)"
            )
        } else if self.no_sandbox {
            format!("steps run in {workers} worker processes WITHOUT the seccomp sandbox (--no-sandbox)")
        } else {
            format!("steps run in {workers} worker processes, each confined by seccomp")
        }
    }
}

/// Which store a command uses, and whether it may make a new one.
#[derive(Clone, Debug)]
pub struct StoreArg {
    /// `--db`, when given (the environment is read by clap into it too).
    pub db: Option<String>,
    /// `--create-store`.
    pub create: bool,
}

impl StoreArg {
    pub fn location(&self) -> String {
        crate::store::resolve_location(self.db.as_deref())
    }

    /// Opens the store. The default location (nothing given) is made on first use, with its data
    /// directory; a given path only with `--create-store`, and never in a directory that is missing.
    pub async fn open(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::store::Store>, crate::store::StoreError> {
        use crate::store::{open_as, Create, StoreError};
        let given = self.db.as_deref().is_some_and(|d| !d.is_empty());
        if !given {
            let dir = crate::store::default_data_dir();
            std::fs::create_dir_all(&dir).map_err(|e| {
                StoreError::Config(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
            return open_as(&self.location(), Create::IfMissing).await;
        }
        let create = if self.create {
            Create::IfMissing
        } else {
            Create::Never
        };
        open_as(&self.location(), create).await
    }
}

/// A problem with how codestep was called or configured (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub enum Exit {
    Ok,
    StepFailed,
}

/// Loads stored connectors for `codestep run --workspace W --connector N...`, decrypted as the step starts.
fn stored_connectors(
    db: StoreArg,
    workspace: &str,
    names: &[String],
) -> Result<Vec<crate::connector::Connector>, UsageError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let store = db.open().await.map_err(|e| UsageError(e.to_string()))?;
        let vault = crate::vault::Vault::load(&crate::store::default_key_file(), false)
            .map_err(|e| UsageError(e.to_string()))?
            .vault;
        crate::store::load_step_connectors(&*store, &vault, workspace, names)
            .await
            .map_err(|e| UsageError(e.to_string()))
    })
}

/// Runs an async management command to its exit code.
fn block_on(fut: impl std::future::Future<Output = anyhow::Result<i32>>) -> i32 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("codestep: {e:#}");
            1
        }
    }
}

/// Parses the command line, runs it and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    logging::init();
    let db = StoreArg {
        db: cli.db,
        create: cli.create_store,
    };
    let outcome = match cli.command {
        Command::Run(args) => run::run(args, db),
        Command::Serve(args) => serve::run(args, db).map(|code| {
            if code == 0 {
                Exit::Ok
            } else {
                Exit::StepFailed
            }
        }),
        Command::Workspace(c) => return block_on(manage::run_workspace(c, db)),
        Command::Connector(c) => return block_on(manage::run_connector(c, db)),
        Command::Key(c) => return block_on(manage::run_key(c, db)),
        Command::Token(c) => return block_on(tokens::run_token(c, db)),
        Command::Audit(a) => return block_on(tokens::run_audit(a, db)),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "codestep", &mut script);
            // Written here rather than by clap_complete, which panics when the reader goes away
            // (`codestep completions bash | head`).
            use std::io::Write as _;
            return match std::io::stdout().write_all(&script) {
                Ok(()) => 0,
                Err(_) => 1,
            };
        }
    };
    match outcome {
        Ok(Exit::Ok) => 0,
        Ok(Exit::StepFailed) => 1,
        Err(UsageError(msg)) => {
            eprintln!("codestep: {msg}");
            2
        }
    }
}
