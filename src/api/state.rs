//! What every handler shares.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::engine::Executor;
use crate::store::Store;
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
    pub metrics: super::metrics::Metrics,
    pub retention_days: u32,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
