//! The `codestep` command line. Exit codes: 0 success, 1 the step (or the operation) failed,
//! 2 usage or configuration error.

mod run;

use clap::{Parser, Subcommand};

pub use run::egress_config;

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one step and print its result as JSON.
    Run(run::RunArgs),
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

/// Loads stored connectors for `codestep run --workspace W --connector N...`.
fn stored_connectors(
    _db: Option<String>,
    _workspace: &str,
    _names: &[String],
) -> Result<Vec<crate::connector::Connector>, UsageError> {
    Err(UsageError(
        "stored connectors are not available in this build yet".into(),
    ))
}

/// Parses the command line, runs it and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(args, cli.db),
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
