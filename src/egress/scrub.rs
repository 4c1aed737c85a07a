//! Replaces a secret's known spellings in text JS is about to see.
//!
//! Response headers, redirect URLs and error messages are always scrubbed: they must never carry a
//! secret, whatever upstream does. Bodies are scrubbed only for connectors with `scrub_echo` (security
//! model, "echo scrubbing"), and only best effort: an upstream that transforms the secret defeats it.

use std::collections::VecDeque;

use url::form_urlencoded;
use zeroize::Zeroizing;

use crate::connector::Connector;

pub const REDACTED: &str = "[redacted]";

/// Bodies are matched in slices of at most this many bytes, which bounds the bookkeeping for
/// occurrences found but not yet written out.
const SLICE: usize = 64 * 1024;

/// What a needle occurrence becomes, for bodies, headers and messages alike:
///
/// * Every occurrence of every needle (the secret, its rendered header template, its percent-encoded
///   spellings) in the *input* counts, overlapping ones included: no input byte that lies inside any
///   occurrence reaches the output.
/// * Occurrences that share at least one byte form one run, replaced by a single [`REDACTED`].
///   Occurrences that only touch (one ends where the next starts) are separate runs, each replaced.
///   A rendered template holds the secret, so its occurrence swallows the secret's inside it.
/// * Matching is done on the input only, never on the output: `REDACTED` next to input bytes is not
///   searched again, so the result does not depend on what the replacement text spells.
///
/// This is a pure function of the input bytes, so it can be computed in one left-to-right pass over a
/// body that arrives in chunks ([`StreamScrubber`]) with the same result as on the whole body
/// ([`Scrubber::bytes`]), whatever the chunking.
pub(crate) struct Scrubber {
    /// Longest first (only for a stable order; the result does not depend on it).
    needles: Vec<Needle>,
    /// The secrets, ASCII-lowercased, for `spelled_otherwise`.
    lowered: Vec<Needle>,
}

impl Scrubber {
    pub(crate) fn new<'a>(connectors: impl IntoIterator<Item = &'a Connector>) -> Scrubber {
        let mut needles: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut lowered: Vec<Needle> = Vec::new();
        for c in connectors {
            let mut add = |v: Vec<u8>| {
                let v = Zeroizing::new(v);
                if !v.is_empty() && !needles.iter().any(|n| **n == *v) {
                    needles.push(v);
                }
            };
            // Each rendered form holds secrets: header values, the Basic credential and its base64,
            // the query value, the placed path.
            for form in c.rendered_forms() {
                add(form.as_bytes().to_vec());
            }
            for secret in c.secrets.values() {
                let secret = secret.expose();
                if secret.is_empty() {
                    continue;
                }
                lowered.push(Needle::new(Zeroizing::new(
                    secret.to_ascii_lowercase().into_bytes(),
                )));
                add(secret.as_bytes().to_vec());
                // How the query injection spells it, and the all-escaped form servers use when
                // re-encoding.
                add(form_urlencoded::byte_serialize(secret.as_bytes())
                    .collect::<String>()
                    .into_bytes());
                add(percent_encode_all(secret.as_bytes()));
            }
        }
        Scrubber::from_needles(needles, lowered)
    }

    fn from_needles(mut needles: Vec<Zeroizing<Vec<u8>>>, lowered: Vec<Needle>) -> Scrubber {
        needles.retain(|n| !n.is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Scrubber {
            needles: needles.into_iter().map(Needle::new).collect(),
            lowered,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The longest needle's length: a stream holds back fewer bytes than this.
    pub(crate) fn longest(&self) -> usize {
        self.needles.iter().map(|n| n.text.len()).max().unwrap_or(0)
    }

    pub(crate) fn contains(&self, hay: &[u8]) -> bool {
        self.needles.iter().any(|n| n.occurs_in(hay))
    }

    /// `hay` with every run of overlapping needle occurrences replaced by [`REDACTED`] (see
    /// [`Scrubber`] for the exact rule). Linear in `hay.len()`. The input is zeroized.
    pub(crate) fn bytes(&self, hay: Vec<u8>) -> Vec<u8> {
        if self.needles.is_empty() {
            return hay;
        }
        let hay = Zeroizing::new(hay);
        let mut cover = Cover::new(self);
        let mut out = Vec::with_capacity(hay.len());
        for slice in hay.chunks(SLICE) {
            cover.feed(&self.needles, slice, &mut out);
        }
        cover.flush(&self.needles, &mut out);
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
            self.lowered.iter().any(|n| n.occurs_in(&decoded))
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

/// A needle with its Knuth-Morris-Pratt failure table, for linear-time matching that can stop and
/// resume at any byte.
struct Needle {
    text: Zeroizing<Vec<u8>>,
    /// `fail[i]`: the length of the longest proper prefix of `text[..=i]` that is also its suffix.
    fail: Zeroizing<Vec<usize>>,
}

impl Needle {
    /// `text` must not be empty.
    fn new(text: Zeroizing<Vec<u8>>) -> Needle {
        debug_assert!(!text.is_empty());
        let mut fail = Zeroizing::new(vec![0usize; text.len()]);
        let mut k = 0;
        for i in 1..text.len() {
            while k > 0 && text[i] != text[k] {
                k = fail[k - 1];
            }
            if text[i] == text[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Needle { text, fail }
    }

    /// Matches on from state `s` (how many of the needle's first bytes the input so far ends with)
    /// over `hay`, calling `hit(end)` for every occurrence, overlapping ones included, that ends at
    /// `hay[..end]`; stops early when `hit` returns false. Returns the state after `hay` (after an
    /// early stop, the state at that point). The state is always less than the needle's length.
    fn scan(&self, mut s: usize, hay: &[u8], mut hit: impl FnMut(usize) -> bool) -> usize {
        let (text, fail) = (&self.text[..], &self.fail[..]);
        let first = text[0];
        let mut k = 0;
        while k < hay.len() {
            if s == 0 {
                // Nothing under way: skip to the next byte that can start an occurrence.
                match hay[k..].iter().position(|&b| b == first) {
                    Some(off) => k += off + 1,
                    None => break,
                }
                s = 1;
            } else {
                let b = hay[k];
                while s > 0 && text[s] != b {
                    s = fail[s - 1];
                }
                if text[s] == b {
                    s += 1;
                }
                k += 1;
            }
            if s == text.len() {
                s = fail[s - 1];
                if !hit(k) {
                    return s;
                }
            }
        }
        s
    }

    fn occurs_in(&self, hay: &[u8]) -> bool {
        let mut found = false;
        self.scan(0, hay, |_| {
            found = true;
            false
        });
        found
    }
}

/// The matching state between two slices of one body. Offsets are absolute (from the body's start).
struct Cover {
    /// Per needle: how many of its first bytes the input read so far ends with. An occurrence not yet
    /// found starts at or after `read - max(states)`, so everything before that is decided.
    states: Vec<usize>,
    /// The undecided tail of the input: its last `max(states)` bytes, so always fewer than the longest
    /// needle. Allocated once at that capacity so it never moves (a move would leave a copy behind);
    /// zeroized on drop.
    held: Zeroizing<Vec<u8>>,
    /// Offset of `held[0]`.
    base: usize,
    /// Per needle: starts of occurrences found but not yet decided (all at or after `base`), ascending.
    found: Vec<VecDeque<usize>>,
    /// How many input bytes from `base` on are inside the current run of overlapping occurrences,
    /// whose `REDACTED` has been written already.
    covered: usize,
}

impl Cover {
    fn new(scrubber: &Scrubber) -> Cover {
        let n = scrubber.needles.len();
        Cover {
            states: vec![0; n],
            held: Zeroizing::new(Vec::with_capacity(scrubber.longest().saturating_sub(1))),
            base: 0,
            found: (0..n).map(|_| VecDeque::new()).collect(),
            covered: 0,
        }
    }

    /// Reads `slice` (the input after `held`) and writes to `out` what is now decided.
    fn feed(&mut self, needles: &[Needle], slice: &[u8], out: &mut Vec<u8>) {
        let start = self.base + self.held.len();
        for ((needle, state), found) in needles.iter().zip(&mut self.states).zip(&mut self.found) {
            let len = needle.text.len();
            *state = needle.scan(*state, slice, |end| {
                found.push_back(start + end - len);
                true
            });
        }
        let keep = self.states.iter().copied().max().unwrap_or(0);
        let decided = self.held.len() + slice.len() - keep;
        self.decide(needles, slice, decided, out);
        // The new `held`: the last `keep` bytes of `held` followed by `slice`, within capacity.
        if keep <= slice.len() {
            self.held.clear();
            self.held.extend_from_slice(&slice[slice.len() - keep..]);
        } else {
            self.held.drain(..decided);
            self.held.extend_from_slice(slice);
        }
        self.base += decided;
        debug_assert!(self.held.len() == keep && keep <= self.held.capacity());
    }

    /// End of input: no occurrence is under way any more, so everything is decided.
    fn flush(&mut self, needles: &[Needle], out: &mut Vec<u8>) {
        let all = self.held.len();
        self.decide(needles, &[], all, out);
        self.held.clear();
        self.base += all;
        self.states.iter_mut().for_each(|s| *s = 0);
    }

    /// Writes out the first `n` bytes of `held` followed by `slice`. Every occurrence starting among
    /// them has been found.
    fn decide(&mut self, needles: &[Needle], slice: &[u8], n: usize, out: &mut Vec<u8>) {
        let end = self.base + n;
        let mut at = self.base;
        loop {
            // The next occurrence start, and the longest occurrence there.
            let next = self.found.iter().filter_map(|f| f.front().copied()).min();
            let stop = next.filter(|&s| s < end).unwrap_or(end);
            let skip = self.covered.min(stop - at);
            self.covered -= skip;
            self.emit(slice, at + skip, stop, out);
            at = stop;
            if at == end {
                break;
            }
            let mut len = 0;
            for (needle, found) in needles.iter().zip(&mut self.found) {
                if found.front() == Some(&at) {
                    found.pop_front();
                    len = len.max(needle.text.len());
                }
            }
            if self.covered == 0 {
                out.extend_from_slice(REDACTED.as_bytes());
            }
            self.covered = self.covered.max(len);
        }
    }

    /// Copies input bytes `from..to` (absolute) out of `held` followed by `slice`.
    fn emit(&self, slice: &[u8], from: usize, to: usize, out: &mut Vec<u8>) {
        if from >= to {
            return;
        }
        let (from, to) = (from - self.base, to - self.base);
        let h = self.held.len();
        if from < h {
            out.extend_from_slice(&self.held[from..to.min(h)]);
        }
        if to > h {
            out.extend_from_slice(&slice[from.max(h) - h..to - h]);
        }
    }
}

/// Scrubs a body that arrives in chunks: the output is byte-for-byte what `Scrubber::bytes` gives on
/// the whole body, however it is chunked (the rule is on [`Scrubber`]).
///
/// It holds back fewer bytes than the longest needle: exactly the longest tail of the input read so
/// far that could still grow into an occurrence. Held-back bytes are zeroized on drop. Since the
/// length can change, a response streamed through this must not keep its `Content-Length`.
// Not yet used outside tests until the streaming body path is wired in.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct StreamScrubber {
    scrubber: Scrubber,
    cover: Cover,
}

#[cfg_attr(not(test), allow(dead_code))]
impl StreamScrubber {
    pub(crate) fn new(scrubber: Scrubber) -> Self {
        let cover = Cover::new(&scrubber);
        StreamScrubber { scrubber, cover }
    }

    /// Takes the next chunk, returns what can be released now (may be empty). It holds back at most
    /// (longest needle - 1) bytes: those that could still start an occurrence.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.scrubber.is_empty() {
            return chunk.to_vec();
        }
        let mut out = Vec::with_capacity(chunk.len() + self.cover.held.len());
        for slice in chunk.chunks(SLICE) {
            self.cover.feed(&self.scrubber.needles, slice, &mut out);
        }
        out
    }

    /// End of body: returns what was held back, scrubbed.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.cover.held.len());
        self.cover.flush(&self.scrubber.needles, &mut out);
        out
    }

    /// How many input bytes are held back now.
    pub(crate) fn held(&self) -> usize {
        self.cover.held.len()
    }
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
    use crate::connector::{ConnectorSpec, Placement, Secret};

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
            Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
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
            Placement::header("X-Key".into(), "{{secret}}".into()),
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
        let c = conn("abc", Placement::query("k".into()));
        let s = Scrubber::new([&c]);
        assert_eq!(
            s.bytes(b"abcabcxabc".to_vec()),
            b"[redacted][redacted]x[redacted]".to_vec()
        );
        assert_eq!(s.bytes(b"ab".to_vec()), b"ab".to_vec());
        assert!(Scrubber::new([]).is_empty());
    }

    /// splitmix64: small, deterministic, good enough to pick test cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in `lo..=hi`.
        fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + (self.next() % (hi - lo + 1) as u64) as usize
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.range(0, xs.len() - 1)]
        }
    }

    fn of_needles(needles: &[Vec<u8>]) -> Scrubber {
        Scrubber::from_needles(
            needles.iter().map(|n| Zeroizing::new(n.clone())).collect(),
            Vec::new(),
        )
    }

    fn needles_of(s: &Scrubber) -> Vec<Vec<u8>> {
        s.needles.iter().map(|n| n.text.to_vec()).collect()
    }

    /// The rule on `Scrubber`, spelled out naively: occurrences found by brute force on the input,
    /// runs of overlapping ones merged.
    fn reference(needles: &[Vec<u8>], hay: &[u8]) -> Vec<u8> {
        let mut reach = vec![0usize; hay.len()];
        for n in needles.iter().filter(|n| !n.is_empty()) {
            for (i, r) in reach.iter_mut().enumerate() {
                if hay[i..].starts_with(n) {
                    *r = (*r).max(i + n.len());
                }
            }
        }
        let mut out = Vec::new();
        let mut cover_end = 0;
        for (i, &b) in hay.iter().enumerate() {
            if reach[i] > 0 {
                if i >= cover_end {
                    out.extend_from_slice(REDACTED.as_bytes());
                }
                cover_end = cover_end.max(reach[i]);
            }
            if i >= cover_end {
                out.push(b);
            }
        }
        out
    }

    /// Streams `body` in chunks of the given sizes (cycled), checking the hold-back bound after
    /// every push.
    fn stream(s: Scrubber, body: &[u8], sizes: &[usize], case: usize) -> Vec<u8> {
        let bound = s.longest().saturating_sub(1);
        let mut st = StreamScrubber::new(s);
        let mut out = Vec::new();
        let mut rest = body;
        for &n in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, r) = rest.split_at(n.min(rest.len()));
            rest = r;
            out.extend(st.push(chunk));
            assert!(st.held() <= bound, "held back too much at case {case}");
            out.extend(st.push(&[]));
            assert!(st.held() <= bound, "held back too much at case {case}");
        }
        out.extend(st.finish());
        out
    }

    fn random_needles(rng: &mut Rng) -> Vec<Vec<u8>> {
        const ALPHA: &[u8] = b"ab%]d";
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for _ in 0..rng.range(1, 5) {
            let n: Vec<u8> = match rng.range(0, 4) {
                // Periodic, so occurrences overlap themselves.
                0 => {
                    let unit: Vec<u8> = (0..rng.range(1, 3)).map(|_| *rng.pick(ALPHA)).collect();
                    unit.repeat(rng.range(1, 5))
                }
                // Holding an earlier needle, as a rendered template holds the secret.
                1 if !needles.is_empty() => {
                    let inner = rng.pick(&needles).clone();
                    let mut v: Vec<u8> = (0..rng.range(0, 4)).map(|_| *rng.pick(ALPHA)).collect();
                    v.extend(inner);
                    v.extend((0..rng.range(0, 4)).map(|_| *rng.pick(ALPHA)));
                    v
                }
                // Could be spelled with part of the replacement text.
                2 => {
                    let r = REDACTED.as_bytes();
                    let from = rng.range(1, r.len() - 1);
                    let mut v = r[from..].to_vec();
                    v.extend((0..rng.range(1, 3)).map(|_| *rng.pick(ALPHA)));
                    v
                }
                _ => (0..rng.range(1, 12)).map(|_| *rng.pick(ALPHA)).collect(),
            };
            needles.push(n);
        }
        needles
    }

    fn random_body(rng: &mut Rng, needles: &[Vec<u8>], alpha: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for _ in 0..rng.range(0, 40) {
            let n = rng.pick(needles);
            match rng.range(0, 5) {
                0 | 1 => body.extend_from_slice(n),
                2 => body.extend_from_slice(&n[..rng.range(0, n.len())]),
                3 => body.extend_from_slice(&n[rng.range(0, n.len())..]),
                4 => body.extend_from_slice(&REDACTED.as_bytes()[rng.range(0, 9)..]),
                _ => body.extend((0..rng.range(1, 6)).map(|_| *rng.pick(alpha))),
            }
        }
        if rng.range(0, 2) == 0 {
            // A body ending in a needle's prefix.
            let n = rng.pick(needles);
            body.extend_from_slice(&n[..rng.range(0, n.len() - 1)]);
        }
        body
    }

    fn chunkings(rng: &mut Rng, body_len: usize, longest: usize) -> Vec<Vec<usize>> {
        let mut ways = vec![
            vec![1],
            vec![body_len.max(1)],
            vec![longest.max(1)],
            vec![longest.saturating_sub(1).max(1)],
        ];
        for _ in 0..3 {
            let hi = rng.pick(&[2, longest + 2, 64]).to_owned();
            ways.push((0..rng.range(1, 8)).map(|_| rng.range(1, hi)).collect());
        }
        ways
    }

    #[test]
    fn stream_equals_whole_body_for_random_needles() {
        let mut rng = Rng(0x5EED_0001);
        let mut case = 0;
        for _ in 0..3000 {
            let needles = random_needles(&mut rng);
            let s = of_needles(&needles);
            let needles = needles_of(&s);
            let body = random_body(&mut rng, &needles, b"ab%]dx[");
            let whole = s.bytes(body.clone());
            assert!(
                whole == reference(&needles, &body),
                "bytes mismatch at case {case}"
            );
            for sizes in chunkings(&mut rng, body.len(), s.longest()) {
                case += 1;
                let out = stream(of_needles(&needles), &body, &sizes, case);
                assert!(out == whole, "stream mismatch at case {case}");
            }
        }
    }

    #[test]
    fn stream_equals_whole_body_for_random_connectors() {
        let mut rng = Rng(0x5EED_0002);
        const SECRET_ALPHA: &[u8] = b"aB1 /+%=-~";
        let mut case = 0;
        for _ in 0..600 {
            let conns: Vec<Connector> = (0..rng.range(1, 3))
                .map(|_| {
                    let secret: String = (0..rng.range(1, 10))
                        .map(|_| *rng.pick(SECRET_ALPHA) as char)
                        .collect();
                    let placement = match rng.range(0, 2) {
                        0 => Placement::query("k".into()),
                        1 => Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
                        _ => Placement::header("X-Key".into(), "{{secret}}".into()),
                    };
                    conn(&secret, placement)
                })
                .collect();
            let s = Scrubber::new(&conns);
            let needles = needles_of(&s);
            let body = random_body(&mut rng, &needles, b"aB1 /+%=Bearx");
            let whole = s.bytes(body.clone());
            assert!(
                whole == reference(&needles, &body),
                "bytes mismatch at case {case}"
            );
            for sizes in chunkings(&mut rng, body.len(), s.longest()) {
                case += 1;
                let out = stream(Scrubber::new(&conns), &body, &sizes, case);
                assert!(out == whole, "stream mismatch at case {case}");
            }
        }
    }

    #[test]
    fn overlapping_occurrences_are_replaced_as_one_run() {
        let s = of_needles(&[b"aa".to_vec()]);
        assert!(s.bytes(b"aaa".to_vec()) == b"[redacted]", "case 1");
        assert!(
            s.bytes(b"aaaaxaa".to_vec()) == b"[redacted]x[redacted]",
            "case 2"
        );
        // Two secrets overlapping: neither leaves a fragment, whichever starts first.
        let s = of_needles(&[b"zzB".to_vec(), b"Bqqqq".to_vec()]);
        assert!(s.bytes(b"xzzBqqqqy".to_vec()) == b"x[redacted]y", "case 3");
        // Touching is not overlapping.
        assert!(
            s.bytes(b"zzBBqqqq".to_vec()) == b"[redacted][redacted]",
            "case 4"
        );
        // The replacement is not searched again.
        let s = of_needles(&[b"ed]q".to_vec(), b"hello123".to_vec()]);
        assert!(s.bytes(b"hello123q".to_vec()) == b"[redacted]q", "case 5");
        let mut st = StreamScrubber::new(of_needles(&[b"ed]q".to_vec(), b"hello123".to_vec()]));
        let mut out = st.push(b"hello1");
        out.extend(st.push(b"23q"));
        out.extend(st.finish());
        assert!(out == b"[redacted]q", "case 6");
        // A secret spelled inside the replacement does not damage it.
        let s = of_needles(&[b"d".to_vec()]);
        assert!(
            s.bytes(b"d[redacted]d".to_vec())
                == b"[redacted][re[redacted]acte[redacted]][redacted]",
            "case 6b"
        );
        // Self-overlapping occurrences leave no fragment.
        let s = of_needles(&[b"ab1ab".to_vec()]);
        assert!(s.bytes(b"ab1ab1ab!".to_vec()) == b"[redacted]!", "case 6c");
    }

    #[test]
    fn holds_back_only_a_possible_start() {
        let c = conn(
            "sk live/1",
            Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
        );
        let longest = Scrubber::new([&c]).longest();
        assert!(longest == "Bearer sk live/1".len(), "case 7");
        let mut st = StreamScrubber::new(Scrubber::new([&c]));
        assert!(st.push(b"hello ") == b"hello ", "case 8");
        assert!(st.held() == 0, "case 9");
        assert!(st.push(b"Bearer sk live/").is_empty());
        assert!(st.held() == longest - 1, "case 10");
        assert!(st.push(b"x") == b"Bearer sk live/x", "case 11");
        assert!(st.held() == 0, "case 12");
        assert!(st.push(b"sk live").is_empty());
        assert!(st.push(b"/1 ok") == b"[redacted] ok", "case 13");
        assert!(st.push(b"sk l").is_empty());
        assert!(st.finish() == b"sk l", "case 14");
        // Without needles everything passes straight through.
        let mut st = StreamScrubber::new(Scrubber::new([]));
        assert!(st.push(b"abc") == b"abc", "case 15");
        assert!(st.held() == 0, "case 16");
        assert!(st.finish().is_empty());
    }

    #[test]
    fn large_body_in_chunks_is_linear() {
        let mut rng = Rng(0x5EED_0003);
        let c = conn(
            "sk live/1",
            Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
        );
        // A long needle whose prefixes repeat: quadratic for a naive search on a body of `a`s.
        let long = {
            let mut v = vec![b'a'; 999];
            v.push(b'b');
            v
        };
        let mut needles = needles_of(&Scrubber::new([&c]));
        needles.push(long.clone());
        let mut body = Vec::with_capacity(10 << 20);
        let mut planted = 0;
        while body.len() < 10 << 20 {
            match rng.range(0, 9) {
                0 => {
                    let n = rng.pick(&needles).clone();
                    body.extend_from_slice(&n);
                    planted += 1;
                }
                1 => body.extend(std::iter::repeat_n(b'a', rng.range(1, 5000))),
                _ => body.extend((0..rng.range(1, 4000)).map(|_| rng.next() as u8)),
            }
        }
        let t = std::time::Instant::now();
        let whole = of_needles(&needles).bytes(body.clone());
        let t_whole = t.elapsed();
        let t = std::time::Instant::now();
        let out = stream(of_needles(&needles), &body, &[64 * 1024], 0);
        let t_stream = t.elapsed();
        assert!(out == whole, "stream mismatch on the large body");
        let redactions = whole
            .windows(REDACTED.len())
            .filter(|w| *w == REDACTED.as_bytes())
            .count();
        assert!(redactions >= planted / 2, "too few redactions");
        eprintln!(
            "10 MiB: whole {t_whole:?}, 64 KiB chunks {t_stream:?}, {planted} planted, {redactions} redactions"
        );
    }
}
