//! URL patterns: which requests a connector may be injected into.
//!
//! A pattern is parsed with the same WHATWG parser (`url` crate) that later parses requests, so a pattern
//! and a request can never disagree about what a host or a path is. The rules are those of
//! `shared/docs/security-model.md`, "URL patterns".

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::{Host, Url};

/// Stands in for the `*` label while parsing: the `url` crate would take `*` as a literal host character.
/// It only means "wildcard" when we put it there ourselves (`wildcard` below records that).
const WILDCARD_PLACEHOLDER: &str = "codestep-wildcard-label";

/// A parsed, normalised URL pattern. Always `https`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UrlPattern {
    /// Lowercase punycode DNS name, no trailing dot. For a wildcard pattern, the part after `*.`.
    host: String,
    /// `*.host`: matches one or more labels in front of `host`, never `host` itself.
    wildcard: bool,
    port: u16,
    /// The normalised path, `*` meaning any run of characters. `/` alone was widened to `/*`.
    path: String,
}

/// Why a pattern was refused. The message names the pattern and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?} {rule}")]
pub struct PatternError {
    /// The pattern as given, with any userinfo hidden (it may be a pasted credential).
    pub pattern: String,
    pub rule: String,
}

impl UrlPattern {
    /// Parses and normalises a pattern, refusing anything the security model does not allow.
    pub fn parse(input: &str) -> Result<UrlPattern, PatternError> {
        let err = |rule: &str| PatternError {
            pattern: hide_userinfo(input),
            rule: rule.to_string(),
        };
        let input = input.trim();
        if input.is_empty() {
            return Err(err("is empty"));
        }

        let (scheme, rest) = input
            .split_once(':')
            .ok_or_else(|| err("is not an absolute URL (expected https://host/path)"))?;
        if !scheme.eq_ignore_ascii_case("https") {
            return Err(err("must use https"));
        }
        // The WHATWG parser accepts `\` as `/` and any number of slashes for special schemes; mirror that so the
        // authority we inspect here is the one the parser will see.
        let after_slashes = rest.trim_start_matches(['/', '\\']);
        let authority_end = after_slashes
            .find(['/', '\\', '?', '#'])
            .unwrap_or(after_slashes.len());
        let authority = &after_slashes[..authority_end];
        if authority.contains('@') {
            return Err(err("must not contain userinfo (user:password@)"));
        }

        let wildcard = authority.contains('*');
        let to_parse = if wildcard {
            let stripped = authority.strip_prefix("*.").ok_or_else(|| {
                err("may only use `*` as the whole leftmost label of the host, as in https://*.example.com/")
            })?;
            if stripped.contains('*') {
                return Err(err(
                    "may only use `*` once, as the whole leftmost label of the host",
                ));
            }
            format!(
                "https://{WILDCARD_PLACEHOLDER}.{stripped}{}",
                &after_slashes[authority_end..]
            )
        } else {
            input.to_string()
        };

        let url = Url::parse(&to_parse).map_err(|e| err(&format!("is not a valid URL ({e})")))?;
        if url.scheme() != "https" {
            return Err(err("must use https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("must not contain userinfo (user:password@)"));
        }
        if url.query().is_some() {
            return Err(err(
                "must not have a query (`?...`); the query is ignored when matching",
            ));
        }
        if url.fragment().is_some() {
            return Err(err("must not have a fragment (`#...`)"));
        }

        let host = match url.host() {
            Some(Host::Domain(d)) => d,
            Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)) => {
                return Err(err(
                    "must name a DNS host, not an IP address (in any notation)",
                ))
            }
            None => return Err(err("has no host")),
        };
        let mut host = host.strip_suffix('.').unwrap_or(host).to_string();
        if wildcard {
            host = host
                .strip_prefix(WILDCARD_PLACEHOLDER)
                .and_then(|h| h.strip_prefix('.'))
                .ok_or_else(|| err("has a wildcard host that could not be normalised"))?
                .to_string();
            if !host.contains('.') {
                return Err(err(
                    "must have at least two labels after `*.` (a wildcard over a top-level domain is refused)",
                ));
            }
        }
        check_dns_name(&host).map_err(|rule| err(&rule))?;

        let port = url
            .port_or_known_default()
            .ok_or_else(|| err("has no port"))?;

        let path = url.path();
        if has_encoded_separator(path) {
            return Err(err(
                "must not contain an encoded `/`, `\\` or `.` (%2f, %5c, %2e) in its path",
            ));
        }
        let path = if path == "/" {
            "/*".to_string()
        } else {
            path.to_string()
        };

        Ok(UrlPattern {
            host,
            wildcard,
            port,
            path,
        })
    }

    /// Whether a parsed request URL falls under this pattern. The query is ignored.
    ///
    /// The caller still has to refuse encoded separators in the raw request (see the egress path); this
    /// function only sees the parsed URL.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d,
            _ => return false,
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        host_ok
            && url.port_or_known_default() == Some(self.port)
            && glob_match(self.path.as_bytes(), url.path().as_bytes())
    }

    /// The host part without the wildcard, lowercase punycode.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("https://")?;
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if self.port != 443 {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

impl fmt::Debug for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlPattern({self})")
    }
}

impl std::str::FromStr for UrlPattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UrlPattern::parse(s)
    }
}

impl Serialize for UrlPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UrlPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UrlPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// True when a path (or any URL text) holds `%2f`, `%5c` or `%2e` in any case. Upstreams disagree about
/// decoding these, so a path using them could mean something else upstream than what the pattern checked.
pub(crate) fn has_encoded_separator(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f') | (b'5', b'c') | (b'2', b'e')
            )
    })
}

/// The WHATWG parser lets through host characters DNS never uses (`*`, `!`, `$`, ...). Patterns are
/// stricter so that what they name is unambiguous: LDH labels, plus `_`, which real service names use.
fn check_dns_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("has an empty host".into());
    }
    if host.len() > 253 {
        return Err("has a host longer than 253 characters".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(
                "has an empty label in its host (`..` or more than one trailing dot)".into(),
            );
        }
        if label.len() > 63 {
            return Err("has a host label longer than 63 characters".into());
        }
        if !label
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        {
            return Err(format!(
                "has a host label {label:?} with characters a DNS name cannot have (only a-z, 0-9, `-`, `_`; `*` only as the whole leftmost label)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has a host label {label:?} that starts or ends with `-`"
            ));
        }
    }
    Ok(())
}

/// `*` matches any run of bytes, `/` included; everything else is literal.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and how much text it has swallowed so far, to backtrack into.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn hide_userinfo(input: &str) -> String {
    let Some(scheme_end) = input.find(':') else {
        return input.to_string();
    };
    let rest = &input[scheme_end + 1..];
    let after = rest.trim_start_matches(['/', '\\']);
    let prefix_len = input.len() - after.len();
    let authority_end = after.find(['/', '\\', '?', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => format!("{}[redacted]{}", &input[..prefix_len], &after[at..]),
        None => input.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> UrlPattern {
        UrlPattern::parse(s).unwrap_or_else(|e| panic!("{s} should parse: {e}"))
    }

    fn refused(s: &str) -> String {
        match UrlPattern::parse(s) {
            Ok(p) => panic!("{s} should be refused, got {p}"),
            Err(e) => e.to_string(),
        }
    }

    fn m(pattern: &str, url: &str) -> bool {
        p(pattern).matches(&Url::parse(url).unwrap())
    }

    #[test]
    fn normalises() {
        assert_eq!(
            p("https://API.Example.COM").to_string(),
            "https://api.example.com/*"
        );
        assert_eq!(
            p("https://api.example.com/").to_string(),
            "https://api.example.com/*"
        );
        assert_eq!(
            p("https://api.example.com.").to_string(),
            "https://api.example.com/*"
        );
        assert_eq!(
            p("https://api.example.com:443/v1").to_string(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            p("https://api.example.com:8443/v1/*").to_string(),
            "https://api.example.com:8443/v1/*"
        );
        assert_eq!(
            p("HTTPS://bücher.example/x").to_string(),
            "https://xn--bcher-kva.example/x"
        );
        assert_eq!(
            p("https://*.Example.com").to_string(),
            "https://*.example.com/*"
        );
        assert_eq!(
            p("https://*.bücher.example/").to_string(),
            "https://*.xn--bcher-kva.example/*"
        );
        // Dot segments are resolved by the parser, exactly as they will be in requests.
        assert_eq!(
            p("https://api.example.com/a/../b/./c").to_string(),
            "https://api.example.com/b/c"
        );
        assert_eq!(
            p("  https://a.example/x ").to_string(),
            "https://a.example/x"
        );
    }

    #[test]
    fn serde_is_a_string() {
        let pat = p("https://*.Example.com/v1/*");
        let json = serde_json::to_string(&pat).unwrap();
        assert_eq!(json, "\"https://*.example.com/v1/*\"");
        let back: UrlPattern = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pat);
        assert!(serde_json::from_str::<UrlPattern>("\"http://x.com\"").is_err());
    }

    #[test]
    fn refuses_non_https() {
        for s in [
            "http://api.example.com/",
            "ftp://api.example.com/",
            "wss://api.example.com/",
            "api.example.com/x",
            "//api.example.com/x",
        ] {
            let e = refused(s);
            assert!(e.contains("https") || e.contains("absolute"), "{s}: {e}");
            assert!(
                e.contains(&format!("{s:?}")),
                "message names the pattern: {e}"
            );
        }
        assert_eq!(
            refused("http://x"),
            "\"http://x\" must use https",
            "message shape"
        );
    }

    #[test]
    fn refuses_ip_literals_in_every_form() {
        for s in [
            "https://127.0.0.1/",
            "https://0x7f000001/",
            "https://2130706433/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://0x7f.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fe80::1]/",
            "https://169.254.169.254/latest",
            "https://8.8.8.8/",
        ] {
            let e = refused(s);
            assert!(e.contains("IP address"), "{s}: {e}");
        }
        // A last label that looks numeric but is not a valid IPv4 is refused by the parser itself.
        refused("https://example.0x1/");
        refused("https://example.123/");
    }

    #[test]
    fn refuses_userinfo_without_echoing_it() {
        for s in [
            "https://alice@api.example.com/",
            "https://alice:sk_live_pw@api.example.com/",
            "https://:sk_live_pw@api.example.com/",
            "https://alice:sk_live_pw@*.example.com/",
        ] {
            let e = refused(s);
            assert!(e.contains("userinfo"), "{s}: {e}");
            assert!(!e.contains("sk_live_pw") && !e.contains("alice"), "{e}");
        }
    }

    #[test]
    fn refuses_bad_wildcards() {
        for s in [
            "https://api*.x.com/",
            "https://x.*/",
            "https://*/",
            "https://*.*.x.com/",
            "https://a.*.x.com/",
            "https://*x.com/",
            "https://**.x.com/",
            "https://*.com/",
        ] {
            let e = refused(s);
            assert!(e.contains('*') || e.contains("wildcard"), "{s}: {e}");
        }
    }

    #[test]
    fn refuses_query_fragment_and_odd_hosts() {
        assert!(refused("https://a.example.com/?x=1").contains("query"));
        assert!(refused("https://a.example.com/?").contains("query"));
        assert!(refused("https://a.example.com/#f").contains("fragment"));
        assert!(refused("https://a.example.com../").contains("empty label"));
        refused("https://a..example.com/");
        assert!(refused("https://a!b.example.com/").contains("characters"));
        assert!(refused("https://-a.example.com/").contains("`-`"));
        assert!(refused("").contains("empty"));
        // The WHATWG parser skips extra slashes: this names the host `path`, which is what is shown.
        assert_eq!(p("https:///path").to_string(), "https://path/*");
        refused("https://a.example.com:99999/");
    }

    #[test]
    fn refuses_encoded_separators_in_path() {
        for s in [
            "https://a.example.com/v1%2fadmin",
            "https://a.example.com/v1%2Fadmin",
            "https://a.example.com/v1%5cadmin",
            "https://a.example.com/v1%2eadmin",
            "https://a.example.com/v1/%2E%2Ex",
        ] {
            assert!(refused(s).contains("encoded"), "{s}");
        }
    }

    #[test]
    fn wildcard_host_matching() {
        let pat = "https://*.example.com/";
        assert!(m(pat, "https://a.example.com/x"));
        assert!(m(pat, "https://a.b.example.com/x"));
        assert!(m(pat, "https://A.EXAMPLE.com./x"));
        assert!(!m(pat, "https://example.com/x"));
        assert!(!m(pat, "https://aexample.com/x"));
        assert!(!m(pat, "https://a.example.com.evil.com/x"));
        assert!(!m(pat, "https://.example.com/x"));
    }

    #[test]
    fn exact_host_matching() {
        let pat = "https://api.example.com/";
        assert!(m(pat, "https://api.example.com/"));
        assert!(m(pat, "https://API.example.com/anything/at/all?q=1"));
        assert!(m(pat, "https://api.example.com./x"));
        assert!(!m(pat, "https://a.api.example.com/"));
        assert!(!m(pat, "https://api.example.com.evil.com/"));
        assert!(!m(pat, "http://api.example.com/"));
        assert!(!m(pat, "https://user:pw@api.example.com/"));
        assert!(m(
            "https://bücher.example/",
            "https://xn--bcher-kva.example/"
        ));
        assert!(m(
            "https://xn--bcher-kva.example/",
            "https://BÜCHER.example/"
        ));
    }

    #[test]
    fn port_matching() {
        assert!(m("https://a.example.com/", "https://a.example.com:443/"));
        assert!(!m("https://a.example.com/", "https://a.example.com:8443/"));
        assert!(m(
            "https://a.example.com:8443/",
            "https://a.example.com:8443/"
        ));
        assert!(!m("https://a.example.com:8443/", "https://a.example.com/"));
    }

    #[test]
    fn path_matching() {
        let pat = "https://api.example.com/v1/*";
        assert!(m(pat, "https://api.example.com/v1/"));
        assert!(m(pat, "https://api.example.com/v1/a/b"));
        assert!(m(pat, "https://api.example.com/v1/a?x=/v2"));
        assert!(!m(pat, "https://api.example.com/v1"));
        assert!(!m(pat, "https://api.example.com/v1evil"));
        assert!(!m(pat, "https://api.example.com/v2/"));
        // Dot segments are resolved before matching.
        assert!(!m(pat, "https://api.example.com/v1/../admin"));
        assert!(m(pat, "https://api.example.com/v2/../v1/x"));
        assert!(!m(pat, "https://api.example.com/v1/%2e%2e/admin"));

        let exact = "https://api.example.com/v1";
        assert!(m(exact, "https://api.example.com/v1"));
        assert!(m(exact, "https://api.example.com/v1?x=1"));
        assert!(!m(exact, "https://api.example.com/v1/"));
        assert!(!m(exact, "https://api.example.com/v1x"));

        let mid = "https://api.example.com/a/*/c";
        assert!(m(mid, "https://api.example.com/a/b/c"));
        assert!(m(mid, "https://api.example.com/a/b/x/c"));
        assert!(!m(mid, "https://api.example.com/a/b/c/d"));
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"/a*b*c", b"/aXbYbZc"));
        assert!(!glob_match(b"/a*b*c", b"/aXbYbZ"));
        assert!(glob_match(b"/**", b"/x"));
        assert!(!glob_match(b"/x", b"/xy"));
    }
}
