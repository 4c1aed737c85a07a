//! The first bytes of an error response (status 400 or more), kept for the error log so that an
//! operator sees what the upstream said ("invalid api key", "rate limited") without running the step
//! again.
//!
//! The excerpt is **always** scrubbed of the secrets of every connector the request used, whether
//! echo scrubbing is on or not: what JS may read is the upstream's business, what codestep stores and
//! shows in its dashboard is not. It is scrubbed as a stream ([`StreamScrubber`]), so a secret split
//! across chunks is caught, and bytes that could still be the start of a secret are never kept; the
//! result then goes through the same check as error messages (a secret in another spelling, such as
//! percent-encoded in lowercase, turns the whole excerpt into `[redacted]`). At most
//! [`EXCERPT_MAX_BYTES`], cut at a character boundary.

use super::scrub::{Scrubber, StreamScrubber};
use crate::connector::Connector;

/// The most bytes of an error body kept.
pub const EXCERPT_MAX_BYTES: usize = 300;
/// Input is fed to the scrubber in pieces of this size, so a large first chunk costs no more than
/// what the excerpt needs.
const FEED: usize = 512;

/// The scrubber every excerpt goes through: the secrets of the connectors the request used. The one
/// place an excerpt meets the scrubber.
fn excerpt_scrubber(used: &[&Connector]) -> Scrubber {
    Scrubber::new(used.iter().copied())
}

/// Collects the excerpt of one error response as its body is read.
pub(crate) struct Excerpt {
    stream: Option<StreamScrubber>,
    check: Scrubber,
    kept: Vec<u8>,
    changed: bool,
}

impl Excerpt {
    pub(crate) fn new(used: &[&Connector]) -> Excerpt {
        Excerpt {
            stream: Some(StreamScrubber::new(excerpt_scrubber(used))),
            check: excerpt_scrubber(used),
            kept: Vec::new(),
            changed: false,
        }
    }

    fn full(&self) -> bool {
        self.kept.len() >= EXCERPT_MAX_BYTES
    }

    fn keep(&mut self, out: &[u8]) {
        let room = EXCERPT_MAX_BYTES.saturating_sub(self.kept.len());
        let take = out.len().min(room);
        if take > 0 {
            self.kept.extend_from_slice(&out[..take]);
            self.changed = true;
        }
        if self.full() {
            // What the scrubber still holds back is never released.
            self.stream = None;
        }
    }

    /// Takes the next raw chunk of the body (before any echo scrubbing).
    pub(crate) fn push(&mut self, raw: &[u8]) {
        for piece in raw.chunks(FEED) {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let out = stream.push(piece);
            self.keep(&out);
        }
    }

    /// The body ended: what the scrubber held back is released, scrubbed.
    pub(crate) fn finish(&mut self) {
        if let Some(stream) = self.stream.take() {
            let out = stream.finish();
            self.keep(&out);
        }
    }

    /// The excerpt as text, if it changed since the last call.
    pub(crate) fn take_update(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some(self.text())
    }

    /// The excerpt as text: at most [`EXCERPT_MAX_BYTES`], cut at a character boundary, checked once
    /// more for the secret in any spelling.
    pub(crate) fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.kept);
        let mut end = text.len().min(EXCERPT_MAX_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.check.string(text[..end].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{ConnectorSpec, Placement, Secret};

    const SECRET: &str = "sk_excerpt_unit_5ecret_Zq81";

    fn connector() -> Connector {
        ConnectorSpec {
            name: "svc".into(),
            patterns: vec!["https://api.example.com/*".into()],
            placement: Placement::query("key".into()),
            scrub_echo: false,
        }
        .validate(Secret::new(SECRET.into()))
        .unwrap()
    }

    #[test]
    fn secret_split_across_chunks_is_scrubbed_and_the_excerpt_is_capped() {
        let c = connector();
        let body = format!(
            "{{\"error\":\"bad key {SECRET}\",\"pad\":\"{}\"}}",
            "x".repeat(1000)
        );
        for split in [1, 7, 20, 25, 300] {
            let mut e = Excerpt::new(&[&c]);
            for chunk in body.as_bytes().chunks(split) {
                e.push(chunk);
            }
            e.finish();
            let text = e.text();
            assert!(!text.contains(SECRET), "split {split}");
            assert!(text.contains("[redacted]"), "split {split}");
            assert!(text.len() <= EXCERPT_MAX_BYTES);
            assert!(text.starts_with("{\"error\":\"bad key"));
        }
    }

    #[test]
    fn a_secret_cut_by_the_cap_leaves_no_prefix_and_other_spellings_are_caught() {
        let c = connector();
        // The secret starts just before the cap: no byte of it may be kept.
        let body = format!("{}{SECRET}", "y".repeat(EXCERPT_MAX_BYTES - 3));
        let mut e = Excerpt::new(&[&c]);
        e.push(body.as_bytes());
        let text = e.text();
        assert!(!text.contains("sk_"), "a prefix of the secret was kept");
        // Lowercase percent-encoding is not an exact needle; the final check catches it.
        let encoded: String = SECRET.bytes().map(|b| format!("%{b:02x}")).collect();
        let mut e = Excerpt::new(&[&c]);
        e.push(format!("echo: {encoded}").as_bytes());
        e.finish();
        assert_eq!(e.text(), "[redacted]");
    }
}
