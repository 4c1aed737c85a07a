//! The heap audit: after a step, a heap snapshot of its isolate is searched for the bytes of each
//! connector secret. The security model's invariant is that the count is always zero. Operators can
//! turn this on (it costs a heap snapshot per step); the security tests always do.
//!
//! The isolate side only takes the snapshot (`snapshot_heap`); the search (`SecretSearch`) runs where
//! the secrets are. In process mode the snapshot streams from the worker to the supervisor, so the
//! worker never learns what is searched for.

use deno_core::v8;
use zeroize::Zeroizing;

use crate::connector::Connector;

/// Streams a heap snapshot of `isolate` to `sink`, chunk by chunk.
pub fn snapshot_heap(isolate: &mut v8::Isolate, sink: &mut dyn FnMut(&[u8])) {
    isolate.take_heap_snapshot(|chunk| {
        sink(chunk);
        true
    });
}

/// Searches a stream of bytes for any of the connectors' secrets, across chunk boundaries.
pub struct SecretSearch {
    needles: Vec<Zeroizing<Vec<u8>>>,
    /// The last bytes seen, so that a secret split over two chunks is found. It may hold part of a
    /// secret: zeroized like the needles.
    carry: Zeroizing<Vec<u8>>,
    found: bool,
}

impl SecretSearch {
    pub fn new(connectors: &[Connector]) -> SecretSearch {
        SecretSearch {
            needles: connectors
                .iter()
                .flat_map(|c| c.secrets.values())
                .map(|s| Zeroizing::new(s.expose().as_bytes().to_vec()))
                .filter(|n| !n.is_empty())
                .collect(),
            carry: Zeroizing::new(Vec::new()),
            found: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.found || self.needles.is_empty() {
            return;
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(self.carry.len() + chunk.len()));
        buf.extend_from_slice(&self.carry);
        buf.extend_from_slice(chunk);
        self.found = self
            .needles
            .iter()
            .any(|n| buf.windows(n.len()).any(|w| w == n.as_slice()));
        let keep = self.needles.iter().map(|n| n.len()).max().unwrap_or(1) - 1;
        let from = buf.len().saturating_sub(keep);
        self.carry.clear();
        self.carry.extend_from_slice(&buf[from..]);
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{ConnectorSpec, Placement, Secret};

    #[test]
    fn finds_a_secret_split_across_chunks() {
        let spec = ConnectorSpec {
            name: "c".into(),
            patterns: vec!["https://a.test/*".into()],
            placement: Placement::query("k".into()),
            scrub_echo: false,
        };
        let c = spec.validate(Secret::new("s3cr3t-value".into())).unwrap();
        for split in 1..12 {
            let hay = b"xxxx s3cr3t-value yyyy";
            let mut s = SecretSearch::new(std::slice::from_ref(&c));
            s.feed(&hay[..5 + split]);
            s.feed(&hay[5 + split..]);
            assert!(s.found(), "split at {split}");
        }
        let mut s = SecretSearch::new(std::slice::from_ref(&c));
        s.feed(b"s3cr3t-valu");
        s.feed(b"E");
        assert!(!s.found());
    }
}
