//! Where codestep's own logs go: standard error, as JSON lines when it is not a terminal (a service
//! manager, a container runtime, a log shipper) and as readable text when it is. `CODESTEP_LOG` sets
//! the levels (an `EnvFilter`: `info` by default, for example `warn,codestep::access=info`), and
//! `CODESTEP_LOG_FORMAT=json|text` overrides the format.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub const LEVEL_ENV: &str = "CODESTEP_LOG";
pub const FORMAT_ENV: &str = "CODESTEP_LOG_FORMAT";

pub fn init() {
    let filter = EnvFilter::try_from_env(LEVEL_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var(FORMAT_ENV).as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests calling `main` twice) keeps the first.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
