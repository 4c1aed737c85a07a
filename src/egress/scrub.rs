//! Replaces a secret's known spellings in text JS is about to see.
//!
//! Response headers, redirect URLs and error messages are always scrubbed: they must never carry a
//! secret, whatever upstream does. Bodies are scrubbed only for connectors with `scrub_echo` (security
//! model, "echo scrubbing"), and only best effort: an upstream that transforms the secret defeats it.

use url::form_urlencoded;
use zeroize::Zeroizing;

use crate::connector::{Connector, Placement, SECRET_PLACEHOLDER};

pub const REDACTED: &str = "[redacted]";

pub(crate) struct Scrubber {
    /// Longest first, so a rendered template is replaced whole before the secret inside it.
    needles: Vec<Zeroizing<Vec<u8>>>,
    /// The secrets, ASCII-lowercased, for `spelled_otherwise`.
    lowered: Vec<Zeroizing<Vec<u8>>>,
}

impl Scrubber {
    pub(crate) fn new<'a>(connectors: impl IntoIterator<Item = &'a Connector>) -> Scrubber {
        let mut needles: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut lowered: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for c in connectors {
            let secret = c.secret.expose();
            if secret.is_empty() {
                continue;
            }
            lowered.push(Zeroizing::new(secret.to_ascii_lowercase().into_bytes()));
            let mut add = |v: Vec<u8>| {
                let v = Zeroizing::new(v);
                if !v.is_empty() && !needles.iter().any(|n| **n == *v) {
                    needles.push(v);
                }
            };
            if let Placement::Header { template, .. } = &c.placement {
                add(template.replace(SECRET_PLACEHOLDER, secret).into_bytes());
            }
            add(secret.as_bytes().to_vec());
            // How the query injection spells it, and the all-escaped form servers use when re-encoding.
            add(form_urlencoded::byte_serialize(secret.as_bytes())
                .collect::<String>()
                .into_bytes());
            add(percent_encode_all(secret.as_bytes()));
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Scrubber { needles, lowered }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub(crate) fn contains(&self, hay: &[u8]) -> bool {
        self.needles.iter().any(|n| find(hay, n).is_some())
    }

    pub(crate) fn bytes(&self, hay: Vec<u8>) -> Vec<u8> {
        let mut out = hay;
        for n in &self.needles {
            if find(&out, n).is_none() {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut rest: &[u8] = &out;
            while let Some(i) = find(rest, n) {
                next.extend_from_slice(&rest[..i]);
                next.extend_from_slice(REDACTED.as_bytes());
                rest = &rest[i + n.len()..];
            }
            next.extend_from_slice(rest);
            out = next;
        }
        out
    }

    /// Whether `hay` holds a secret in a spelling the exact needles miss: percent-encoded in any other
    /// way (lowercase hex, only some bytes escaped, `+` for space) or in another letter case (a URL
    /// parser lowercases hosts). For text that must never carry a secret at all.
    pub(crate) fn spelled_otherwise(&self, hay: &[u8]) -> bool {
        if self.lowered.is_empty() {
            return false;
        }
        [false, true].into_iter().any(|plus_is_space| {
            let decoded = Zeroizing::new(percent_decode_lower(hay, plus_is_space));
            self.lowered.iter().any(|n| find(&decoded, n).is_some())
        })
    }

    /// Exact or otherwise spelled (see `spelled_otherwise`).
    pub(crate) fn leaks(&self, hay: &[u8]) -> bool {
        self.contains(hay) || self.spelled_otherwise(hay)
    }

    /// Text that must never carry a secret (a header value, a message): exact occurrences are replaced,
    /// and text that still holds the secret in another spelling is replaced whole.
    pub(crate) fn string(&self, s: String) -> String {
        if self.is_empty() || !self.leaks(s.as_bytes()) {
            return s;
        }
        // Needles and REDACTED are whole UTF-8 sequences, so replacing them keeps the text valid.
        let out = String::from_utf8_lossy(&self.bytes(s.into_bytes())).into_owned();
        if self.spelled_otherwise(out.as_bytes()) {
            return REDACTED.to_string();
        }
        out
    }
}

/// `%XX` (either case) decoded, optionally `+` as space, then ASCII-lowercased.
fn percent_decode_lower(b: &[u8], plus_is_space: bool) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    i += 2;
                    h << 4 | l
                }
                _ => b'%',
            },
            b'+' if plus_is_space => b' ',
            c => c,
        };
        out.push(c.to_ascii_lowercase());
        i += 1;
    }
    out
}

/// `%XX` for every byte but the RFC 3986 unreserved ones.
fn percent_encode_all(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() * 3);
    for &c in b {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c);
        } else {
            out.extend_from_slice(format!("%{c:02X}").as_bytes());
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    (0..=hay.len() - needle.len()).find(|&i| hay[i] == first && &hay[i..i + needle.len()] == needle)
}

/// With echo scrubbing on, a step could ask for the echo in pieces (`Range`) so that no piece holds
/// the whole secret, and each passes the exact-match scrubber. Those headers are not sent to such a
/// connector's upstream.
pub(crate) fn drop_piecewise_headers(
    connector: &Connector,
    headers: &mut super::inject::HeaderList,
) {
    if connector.scrub_echo {
        headers.retain(|(name, _)| {
            name != reqwest::header::RANGE && name != reqwest::header::IF_RANGE
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{ConnectorSpec, Secret};

    fn conn(secret: &str, placement: Placement) -> Connector {
        ConnectorSpec {
            name: "c".into(),
            patterns: vec!["https://api.test/*".into()],
            placement,
            scrub_echo: true,
        }
        .validate(Secret::new(secret.into()))
        .unwrap()
    }

    #[test]
    fn replaces_template_secret_and_encodings() {
        let c = conn(
            "sk live/1",
            Placement::Header {
                name: "Authorization".into(),
                template: "Bearer {{secret}}".into(),
            },
        );
        let s = Scrubber::new([&c]);
        let body =
            b"auth=Bearer sk live/1; raw=sk live/1; q=sk+live%2F1; p=sk%20live%2F1; ok".to_vec();
        let out = String::from_utf8(s.bytes(body)).unwrap();
        assert_eq!(
            out,
            "auth=[redacted]; raw=[redacted]; q=[redacted]; p=[redacted]; ok"
        );
        assert_eq!(s.string("nothing here".into()), "nothing here");
        assert!(s.contains(b"xx sk live/1"));
    }

    #[test]
    fn other_spellings_blank_the_whole_text() {
        let c = conn(
            "AKIA+x/Yz==",
            Placement::Header {
                name: "X-Key".into(),
                template: "{{secret}}".into(),
            },
        );
        let s = Scrubber::new([&c]);
        for text in [
            "k=AKIA%2bx%2fYz%3d%3d",    // lowercase hex (.NET HttpUtility.UrlEncode)
            "k=AKIA%2Bx/Yz%3D%3D",      // Python's quote(), `/` kept
            "https://akia+x/yz==.evil", // lowercased
            "k=%41%4B%49%41%2B%78%2F%59%7A%3D%3D",
        ] {
            assert_eq!(s.string(text.into()), REDACTED, "{text}");
            assert!(s.leaks(text.as_bytes()), "{text}");
        }
        assert_eq!(s.string("k=AKIA+x/Yz== ok".into()), "k=[redacted] ok");
        assert_eq!(s.string("AKIA%2".into()), "AKIA%2");
        assert!(!s.leaks(b"AKIA+x/Yz=%"));
    }

    #[test]
    fn handles_many_and_adjacent_occurrences() {
        let c = conn("abc", Placement::Query { param: "k".into() });
        let s = Scrubber::new([&c]);
        assert_eq!(
            s.bytes(b"abcabcxabc".to_vec()),
            b"[redacted][redacted]x[redacted]".to_vec()
        );
        assert_eq!(s.bytes(b"ab".to_vec()), b"ab".to_vec());
        assert!(Scrubber::new([]).is_empty());
    }
}
