//! The one type that holds a connector secret in memory.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value: zeroed when dropped, and `Debug`/`Display` never show it.
/// It has no `Serialize` on purpose, so it cannot slip into JSON output.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The plaintext. Only the egress path (injection, scrubbing) and the vault call this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
