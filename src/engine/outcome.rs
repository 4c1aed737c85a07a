//! A step's result, joined from what its isolate reported (`Outcome`) and what its gateway saw
//! (`Summary`). This runs where the secrets are, so nothing the isolate says is trusted: the output is
//! checked to be JSON within its cap, the log caps are applied again, and a limit the gateway hit wins
//! over the isolate's account.

use std::time::Instant;

use serde_json::value::RawValue;

use super::console::{truncate_text, LogBuffer};
use super::gateway::Summary;
use super::protocol::Outcome;
use super::{ErrorKind, StepError, StepResult, StepStats};

pub fn assemble(
    outcome: Outcome,
    summary: Summary,
    started: Instant,
    max_output: u64,
    secret_in_heap: Option<bool>,
) -> StepResult {
    let (logs, logs_dropped) = LogBuffer::recap(outcome.logs, outcome.logs_dropped);
    let stats = StepStats {
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        fetches: summary.fetches,
        logs_dropped,
        secret_in_heap,
    };
    let result = match (summary.halted, outcome.result) {
        (Some(message), _) => Err(StepError {
            kind: ErrorKind::Limit,
            message,
            stack: None,
            location: None,
            frame: None,
        }),
        (None, Ok(json)) => output(json, max_output),
        (None, Err(e)) => Err(capped(e)),
    };
    let (output, error) = match result {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e)),
    };
    StepResult {
        ok: error.is_none(),
        output,
        error,
        logs,
        requests: summary.records,
        stats,
        warnings: outcome.warnings,
    }
}

/// Most bytes kept of an error's message, and of its stack.
pub const MAX_ERROR_TEXT: usize = 64 * 1024;

/// An error with its message and stack cut to `MAX_ERROR_TEXT`: a step can throw a string of any size.
pub fn capped(mut e: StepError) -> StepError {
    truncate_text(&mut e.message, MAX_ERROR_TEXT);
    if let Some(stack) = e.stack.as_mut() {
        truncate_text(stack, MAX_ERROR_TEXT);
    }
    e
}

/// The output as JSON text, checked but never parsed into a tree: a 10 MiB array of small numbers
/// would be hundreds of MiB as `serde_json::Value`s.
fn output(json: String, max: u64) -> Result<Box<RawValue>, StepError> {
    if json.len() as u64 > max {
        return Err(StepError {
            kind: ErrorKind::Output,
            message: format!(
                "step output is {} bytes of JSON, over the limit of {max} bytes",
                json.len()
            ),
            stack: None,
            location: None,
            frame: None,
        });
    }
    RawValue::from_string(json).map_err(|e| StepError {
        kind: ErrorKind::Output,
        message: format!("step output is not JSON: {e}"),
        stack: None,
        location: None,
        frame: None,
    })
}

/// An engine failure that is not the step's fault, with nothing else to report.
pub fn internal(message: impl Into<String>) -> StepResult {
    assemble(
        Outcome::failed(ErrorKind::Internal, message),
        Summary::default(),
        Instant::now(),
        0,
        None,
    )
}
