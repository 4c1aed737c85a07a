//! Save-time validation: the only way from a `ConnectorSpec` to a `Connector`.
//!
//! Connector names are 1 to 64 characters of `[A-Za-z0-9_-]`: they appear in logs, metrics labels, CLI
//! arguments and error messages, so they must need no quoting or escaping anywhere.

use std::fmt;

use super::model::{Connector, ConnectorSpec, Placement};
use super::pattern::UrlPattern;
use super::secret::Secret;

pub const MAX_NAME_LEN: usize = 64;
pub const MAX_PATTERNS: usize = 20;
/// The placeholder a header template must contain.
pub const SECRET_PLACEHOLDER: &str = "{{secret}}";

/// A rule a connector broke. `Display` names the connector, the field and the rule, never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// The connector's name as given (possibly the invalid name itself).
    pub connector: String,
    /// Which field, like `patterns[2]` or `placement.template`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connector {:?}: {}: {}",
            self.connector, self.field, self.message
        )
    }
}

impl std::error::Error for ValidationError {}

/// Header names that already mean something to the transport; a secret placed there would either be
/// dropped or change how the request is framed or routed.
fn is_transport_header(lower: &str) -> bool {
    matches!(
        lower,
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "te"
            | "upgrade"
            | "trailer"
    ) || lower.starts_with("proxy-")
}

/// RFC 9110 `token`, which is what a header name must be.
pub(crate) fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

fn has_crlf_nul(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

/// Whether bytes may go into an HTTP header value as they are (visible chars, space, tab, obs-text).
fn is_header_value_safe(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

impl ConnectorSpec {
    fn error(&self, field: impl Into<String>, message: impl Into<String>) -> ValidationError {
        ValidationError {
            connector: self.name.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Checks everything but the secret, and returns the normalised patterns.
    fn checked_patterns(&self) -> Result<Vec<UrlPattern>, ValidationError> {
        let name = &self.name;
        if name.is_empty() {
            return Err(self.error("name", "must not be empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(self.error("name", format!("must be at most {MAX_NAME_LEN} characters")));
        }
        if !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            return Err(self.error("name", "may only contain letters, digits, `_` and `-`"));
        }

        if self.patterns.is_empty() {
            return Err(self.error("patterns", "must list at least one URL pattern"));
        }
        if self.patterns.len() > MAX_PATTERNS {
            return Err(self.error(
                "patterns",
                format!(
                    "has {} patterns; at most {MAX_PATTERNS} are allowed",
                    self.patterns.len()
                ),
            ));
        }
        let mut patterns = Vec::with_capacity(self.patterns.len());
        for (i, raw) in self.patterns.iter().enumerate() {
            let pattern = UrlPattern::parse(raw)
                .map_err(|e| self.error(format!("patterns[{i}]"), e.to_string()))?;
            patterns.push(pattern);
        }

        match &self.placement {
            Placement::Header { name, template } => {
                if !is_http_token(name) {
                    return Err(self.error(
                        "placement.name",
                        format!("{name:?} is not a valid HTTP header name"),
                    ));
                }
                if is_transport_header(&name.to_ascii_lowercase()) {
                    return Err(self.error(
                        "placement.name",
                        format!("{name:?} is a transport header and cannot carry a secret"),
                    ));
                }
                if has_crlf_nul(template) {
                    return Err(self.error("placement.template", "must not contain CR, LF or NUL"));
                }
                if !template.contains(SECRET_PLACEHOLDER) {
                    return Err(self.error(
                        "placement.template",
                        format!("must contain {SECRET_PLACEHOLDER}"),
                    ));
                }
                if !is_header_value_safe(template) {
                    return Err(self.error(
                        "placement.template",
                        "contains a control character not allowed in a header value",
                    ));
                }
            }
            Placement::Query { param } => {
                if param.is_empty() {
                    return Err(self.error("placement.param", "must not be empty"));
                }
                if has_crlf_nul(param) {
                    return Err(self.error("placement.param", "must not contain CR, LF or NUL"));
                }
            }
        }
        Ok(patterns)
    }

    /// Checks the public part of the connector (name, patterns, placement) without a secret, for
    /// interfaces that save the definition and the secret separately.
    pub fn check(&self) -> Result<(), ValidationError> {
        self.checked_patterns().map(|_| ())
    }

    /// Checks every rule and binds the secret. Patterns come out normalised.
    pub fn validate(&self, secret: Secret) -> Result<Connector, ValidationError> {
        let patterns = self.checked_patterns()?;
        let value = secret.expose();
        if value.is_empty() {
            return Err(self.error("secret", "must not be empty"));
        }
        if has_crlf_nul(value) {
            return Err(self.error("secret", "must not contain CR, LF or NUL"));
        }
        if matches!(self.placement, Placement::Header { .. }) && !is_header_value_safe(value) {
            return Err(self.error(
                "secret",
                "contains a control character not allowed in a header value",
            ));
        }
        Ok(Connector {
            name: self.name.clone(),
            patterns,
            placement: self.placement.clone(),
            scrub_echo: self.scrub_echo,
            secret,
        })
    }
}

impl Connector {
    /// The header value or query value this connector injects. Only the egress path calls this.
    pub fn rendered_secret(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(match &self.placement {
            Placement::Header { template, .. } => {
                template.replace(SECRET_PLACEHOLDER, self.secret.expose())
            }
            Placement::Query { .. } => self.secret.expose().to_string(),
        })
    }

    /// The first connector whose patterns match wins (security model, "URL patterns").
    pub fn matches(&self, url: &url::Url) -> bool {
        self.patterns.iter().any(|p| p.matches(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk_test_validate_51Hx";

    fn spec(name: &str, patterns: &[&str], placement: Placement) -> ConnectorSpec {
        ConnectorSpec {
            name: name.into(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            placement,
            scrub_echo: false,
        }
    }

    fn bearer() -> Placement {
        Placement::Header {
            name: "Authorization".into(),
            template: "Bearer {{secret}}".into(),
        }
    }

    fn err(s: &ConnectorSpec, secret: &str) -> String {
        let e = s
            .validate(Secret::new(secret.into()))
            .expect_err("should be refused")
            .to_string();
        assert!(
            secret.is_empty() || !e.contains(secret),
            "error leaks the secret"
        );
        e
    }

    #[test]
    fn valid_connector_is_normalised() {
        let c = spec(
            "stripe",
            &["https://API.stripe.com", "https://*.Stripe.com/v1/*"],
            bearer(),
        )
        .validate(Secret::new(SECRET.into()))
        .unwrap();
        assert_eq!(c.patterns[0].to_string(), "https://api.stripe.com/*");
        assert_eq!(c.patterns[1].to_string(), "https://*.stripe.com/v1/*");
        assert_eq!(c.rendered_secret().as_str(), format!("Bearer {SECRET}"));
        assert!(!format!("{c:?}").contains(SECRET));
    }

    #[test]
    fn message_names_connector_field_and_rule() {
        let s = spec(
            "stripe",
            &["https://a.example.com", "https://b.example.com", "http://x"],
            bearer(),
        );
        assert_eq!(
            err(&s, SECRET),
            r#"connector "stripe": patterns[2]: "http://x" must use https"#
        );
        assert_eq!(s.check().unwrap_err().field, "patterns[2]");
    }

    #[test]
    fn url_pattern_rules_name_the_field() {
        let e = err(
            &spec(
                "c",
                &["https://a.com", "https://api.example.com/\u{3000}"],
                bearer(),
            ),
            SECRET,
        );
        assert_eq!(
            e,
            r#"connector "c": patterns[1]: "https://api.example.com/\u{3000}" must not contain whitespace or control characters (found U+3000 at byte 24); patterns are never trimmed"#
        );
        let long = format!("https://a.com/{}", "x".repeat(2000));
        let e = err(&spec("c", &[&long], bearer()), SECRET);
        assert!(
            e.starts_with(r#"connector "c": patterns[0]: "https://a.com/xx"#)
                && e.ends_with("is 2014 bytes long; a pattern is at most 1024 bytes (1 KiB)"),
            "{e}"
        );
        let e = err(&spec("c", &["https://a..com/"], bearer()), SECRET);
        assert!(
            e.contains("patterns[0]") && e.contains("empty label"),
            "{e}"
        );
    }

    #[test]
    fn names() {
        assert!(err(&spec("", &["https://a.com"], bearer()), SECRET)
            .contains("name: must not be empty"));
        assert!(
            err(&spec(&"a".repeat(65), &["https://a.com"], bearer()), SECRET)
                .contains("at most 64")
        );
        assert!(err(&spec("a b", &["https://a.com"], bearer()), SECRET).contains("letters"));
        assert!(err(&spec("a.b", &["https://a.com"], bearer()), SECRET).contains("letters"));
        assert!(spec(&"a".repeat(64), &["https://a.com"], bearer())
            .check()
            .is_ok());
        assert!(spec("My_conn-2", &["https://a.com"], bearer())
            .check()
            .is_ok());
    }

    #[test]
    fn pattern_counts() {
        assert!(err(&spec("c", &[], bearer()), SECRET).contains("at least one"));
        let many: Vec<String> = (0..21)
            .map(|i| format!("https://h{i}.example.com"))
            .collect();
        let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert!(err(&spec("c", &refs, bearer()), SECRET).contains("at most 20"));
        assert!(spec("c", &refs[..20], bearer()).check().is_ok());
    }

    #[test]
    fn header_placement_rules() {
        let h = |name: &str, template: &str| Placement::Header {
            name: name.into(),
            template: template.into(),
        };
        let e = err(
            &spec("c", &["https://a.com"], h("Bad Name", "{{secret}}")),
            SECRET,
        );
        assert!(
            e.contains("placement.name") && e.contains("header name"),
            "{e}"
        );
        let e = err(&spec("c", &["https://a.com"], h("", "{{secret}}")), SECRET);
        assert!(e.contains("placement.name"), "{e}");
        let e = err(
            &spec("c", &["https://a.com"], h("Host", "{{secret}}")),
            SECRET,
        );
        assert!(e.contains("transport header"), "{e}");
        let e = err(
            &spec(
                "c",
                &["https://a.com"],
                h("Proxy-Authorization", "{{secret}}"),
            ),
            SECRET,
        );
        assert!(e.contains("transport header"), "{e}");
        let e = err(
            &spec("c", &["https://a.com"], h("X-Key", "Bearer {secret}")),
            SECRET,
        );
        assert!(
            e.contains("placement.template: must contain {{secret}}"),
            "{e}"
        );
        let e = err(
            &spec("c", &["https://a.com"], h("X-Key", "{{secret}}\r\nX: y")),
            SECRET,
        );
        assert!(e.contains("CR, LF or NUL"), "{e}");
        let e = err(
            &spec("c", &["https://a.com"], h("X-Key", "{{secret}}\0")),
            SECRET,
        );
        assert!(e.contains("CR, LF or NUL"), "{e}");
        let e = err(
            &spec("c", &["https://a.com"], h("X-Key", "{{secret}}\x07")),
            SECRET,
        );
        assert!(e.contains("control character"), "{e}");
        assert!(spec("c", &["https://a.com"], h("x-api-key", "{{secret}}"))
            .check()
            .is_ok());
    }

    #[test]
    fn query_placement_rules() {
        let q = |p: &str| Placement::Query { param: p.into() };
        assert!(err(&spec("c", &["https://a.com"], q("")), SECRET)
            .contains("placement.param: must not be empty"));
        assert!(err(&spec("c", &["https://a.com"], q("a\nb")), SECRET).contains("CR, LF or NUL"));
        // Query secrets are percent-encoded, so control characters other than CR/LF/NUL are fine there.
        assert!(spec("c", &["https://a.com"], q("api_key"))
            .validate(Secret::new("a\x07b".into()))
            .is_ok());
    }

    #[test]
    fn secret_rules_never_echo_the_secret() {
        let s = spec("c", &["https://a.com"], bearer());
        assert!(err(&s, "").contains("secret: must not be empty"));
        for bad in [
            "sk_live_1\r\nX-Evil: 1",
            "sk_live_2\n",
            "sk_live_3\0",
            "sk_live_4\r",
        ] {
            let e = err(&s, bad);
            assert!(
                e.contains("secret: must not contain CR, LF or NUL"),
                "{}",
                e
            );
            assert!(!e.contains("sk_live"));
        }
        let e = err(&s, "sk_live_5\x1b");
        assert!(e.contains("control character") && !e.contains("sk_live"));
    }

    #[test]
    fn tokens() {
        assert!(is_http_token("X-Api-Key"));
        assert!(is_http_token("a!#$%&'*+-.^_`|~9"));
        assert!(!is_http_token("a:b"));
        assert!(!is_http_token("a b"));
        assert!(!is_http_token("ä"));
        assert!(!is_http_token(""));
    }
}
