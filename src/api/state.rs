//! What every handler shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::engine::Executor;
use crate::store::{Outcome, Store};
use crate::vault::Vault;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub executor: Arc<Executor>,
    /// Runs admitted: running on a worker or waiting for one. Its size bounds the queue; past it,
    /// requests get 429 instead of piling up.
    pub admission: Arc<Semaphore>,
    pub admission_size: usize,
    /// SHA-256 of the operator token.
    pub operator_token_hash: Vec<u8>,
    pub metrics: Metrics,
    pub retention_days: u32,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Counters for `/metrics`. Labels are fixed words, never user data.
#[derive(Default)]
pub struct Metrics {
    pub runs_ok: AtomicU64,
    pub runs_failed: [AtomicU64; 7],
    pub runs_rejected_busy: AtomicU64,
    pub run_seconds_total_micros: AtomicU64,
    pub fetches: [AtomicU64; 5],
    pub http_requests: AtomicU64,
}

/// The order of `Metrics::fetches`.
pub const FETCH_OUTCOMES: [Outcome; 5] = Outcome::ALL;
/// The order of `Metrics::runs_failed`.
pub const FAILURE_KINDS: [&str; 7] = [
    "error", "timeout", "memory", "limit", "output", "input", "internal",
];

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
