//! Step limits: the defaults of the security model, per-step overrides that may only lower them, and
//! operator caps that bound both.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits a step actually runs under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub timeout_ms: u64,
    /// CPU time of the step's process (worker mode) or thread (in-process), in milliseconds.
    pub cpu_time_ms: u64,
    pub memory_mb: u64,
    pub max_fetches: u32,
    pub max_concurrent_fetches: u32,
    pub max_request_body_bytes: u64,
    pub max_response_body_bytes: u64,
    pub request_timeout_ms: u64,
    /// The step's JSON output, in bytes.
    pub max_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 30_000,
            cpu_time_ms: 30_000,
            memory_mb: 128,
            max_fetches: 100,
            max_concurrent_fetches: 6,
            max_request_body_bytes: 10 * 1024 * 1024,
            max_response_body_bytes: 10 * 1024 * 1024,
            request_timeout_ms: 30_000,
            max_output_bytes: 10 * 1024 * 1024,
        }
    }
}

/// What a caller may ask for on one step. Each field, when set, is still capped by the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"timeout_ms": 5000, "max_fetches": 10}))]
pub struct LimitOverrides {
    pub timeout_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_fetches: Option<u32>,
    pub max_concurrent_fetches: Option<u32>,
    pub max_request_body_bytes: Option<u64>,
    pub max_response_body_bytes: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_output_bytes: Option<u64>,
}

/// The smallest heap V8 can bootstrap a step in. Lower requests are raised to it, so a typo such as
/// `--memory-mb 1` gives a step that runs out of memory early rather than one that cannot start.
pub const MIN_MEMORY_MB: u64 = 16;

impl Limits {
    /// Applies `overrides` under `self` as the operator's caps.
    pub fn resolve(&self, overrides: &LimitOverrides) -> Limits {
        fn pick<T: Ord + Copy>(cap: T, wanted: Option<T>) -> T {
            wanted.map_or(cap, |w| w.min(cap))
        }
        Limits {
            timeout_ms: pick(self.timeout_ms, overrides.timeout_ms).max(1),
            cpu_time_ms: pick(self.cpu_time_ms, overrides.cpu_time_ms).max(1),
            memory_mb: pick(self.memory_mb, overrides.memory_mb).max(MIN_MEMORY_MB),
            max_fetches: pick(self.max_fetches, overrides.max_fetches),
            max_concurrent_fetches: pick(
                self.max_concurrent_fetches,
                overrides.max_concurrent_fetches,
            )
            .max(1),
            max_request_body_bytes: pick(
                self.max_request_body_bytes,
                overrides.max_request_body_bytes,
            ),
            max_response_body_bytes: pick(
                self.max_response_body_bytes,
                overrides.max_response_body_bytes,
            ),
            request_timeout_ms: pick(self.request_timeout_ms, overrides.request_timeout_ms).max(1),
            max_output_bytes: pick(self.max_output_bytes, overrides.max_output_bytes),
        }
    }

    pub fn wall_time(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn cpu_time(&self) -> Duration {
        Duration::from_millis(self.cpu_time_ms)
    }

    /// Everything a step may make its host allocate (heap, buffers, bodies, logs, output).
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mb.saturating_mul(1024 * 1024)
    }

    /// The message of a step ended for a request body over its limit, wherever that is seen first.
    pub fn request_body_over(&self) -> String {
        format!(
            "step limit: request body over {} bytes",
            self.max_request_body_bytes
        )
    }

    pub fn heap_bytes(&self) -> usize {
        (self.memory_mb as usize).saturating_mul(1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_only_lower_and_caps_bound_them() {
        let caps = Limits::default();
        let got = caps.resolve(&LimitOverrides {
            timeout_ms: Some(1_000),
            memory_mb: Some(4096),
            max_fetches: Some(5),
            ..Default::default()
        });
        assert_eq!(got.timeout_ms, 1_000);
        assert_eq!(
            got.memory_mb, 128,
            "a step cannot raise its heap over the operator cap"
        );
        assert_eq!(got.max_fetches, 5);
        assert_eq!(got.max_concurrent_fetches, 6);
    }

    #[test]
    fn tiny_heaps_are_raised_to_the_minimum() {
        let got = Limits::default().resolve(&LimitOverrides {
            memory_mb: Some(1),
            ..Default::default()
        });
        assert_eq!(got.memory_mb, MIN_MEMORY_MB);
    }
}
