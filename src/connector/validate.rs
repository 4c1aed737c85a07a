//! Save-time validation: the only way from a `ConnectorSpec` to a `Connector`.
//!
//! Connector names are 1 to 64 characters of `[A-Za-z0-9_-]`: they appear in logs, metrics labels, CLI
//! arguments and error messages, so they must need no quoting or escaping anywhere.

use std::fmt;

use zeroize::Zeroizing;

use super::model::{Connector, ConnectorSpec, Placement, PlacementKind};
use super::pattern::UrlPattern;
use super::secret::{Secret, Secrets, DEFAULT_SECRET_NAME};
use super::template::{self, is_secret_name, Part};

pub const MAX_NAME_LEN: usize = 64;
pub const MAX_PATTERNS: usize = 20;
/// Most headers one header placement sets.
pub const MAX_HEADERS: usize = 8;
/// Most names in `remove_headers`, and most `methods`.
pub const MAX_LISTED: usize = 32;
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

        self.check_placement()?;
        Ok(patterns)
    }

    /// The rules every secret template keeps: no CR, LF or NUL, known placeholders only, at least one
    /// secret, and `{{path}}` only where allowed.
    fn template_rules<'t>(
        &self,
        field: &str,
        template: &'t str,
        path_allowed: bool,
    ) -> Result<Vec<Part<'t>>, ValidationError> {
        if has_crlf_nul(template) {
            return Err(self.error(field, "must not contain CR, LF or NUL"));
        }
        let parts = template::parse(template).map_err(|m| self.error(field, m))?;
        if !parts.iter().any(|p| matches!(p, Part::Secret(_))) {
            return Err(self.error(
                field,
                format!("must contain {SECRET_PLACEHOLDER} or {{{{secret.NAME}}}}"),
            ));
        }
        if !path_allowed && parts.contains(&Part::Path) {
            return Err(self.error(field, "{{path}} is only for path placements"));
        }
        Ok(parts)
    }

    fn check_placement(&self) -> Result<(), ValidationError> {
        let p = &self.placement;
        let template_rules = |f: &str, t, path_allowed| self.template_rules(f, t, path_allowed);
        match &p.kind {
            PlacementKind::Header { headers } => {
                if headers.is_empty() || headers.len() > MAX_HEADERS {
                    return Err(self.error(
                        "placement.headers",
                        format!("must list 1 to {MAX_HEADERS} headers"),
                    ));
                }
                let single = headers.len() == 1;
                for (i, h) in headers.iter().enumerate() {
                    let at = |f: &str| {
                        if single {
                            format!("placement.{f}")
                        } else {
                            format!("placement.headers[{i}].{f}")
                        }
                    };
                    let name = &h.name;
                    if !is_http_token(name) {
                        return Err(self.error(
                            at("name"),
                            format!("{name:?} is not a valid HTTP header name"),
                        ));
                    }
                    if is_transport_header(&name.to_ascii_lowercase()) {
                        return Err(self.error(
                            at("name"),
                            format!("{name:?} is a transport header and cannot carry a secret"),
                        ));
                    }
                    if headers[..i]
                        .iter()
                        .any(|o| o.name.eq_ignore_ascii_case(name))
                    {
                        return Err(self.error(at("name"), format!("{name:?} is listed twice")));
                    }
                    template_rules(&at("template"), &h.template, false)?;
                    if !is_header_value_safe(&h.template) {
                        return Err(self.error(
                            at("template"),
                            "contains a control character not allowed in a header value",
                        ));
                    }
                }
            }
            PlacementKind::Basic { username, password } => {
                if has_crlf_nul(username) {
                    return Err(self.error("placement.username", "must not contain CR, LF or NUL"));
                }
                let parts =
                    template::parse(username).map_err(|m| self.error("placement.username", m))?;
                if parts.contains(&Part::Path) {
                    return Err(
                        self.error("placement.username", "{{path}} is only for path placements")
                    );
                }
                if parts
                    .iter()
                    .any(|p| matches!(p, Part::Text(t) if t.contains(':')))
                {
                    return Err(self.error(
                        "placement.username",
                        "must not contain `:` (Basic authentication separates the username from the password with it)",
                    ));
                }
                if username.is_empty() {
                    return Err(self.error("placement.username", "must not be empty"));
                }
                template_rules("placement.password", password, false)?;
            }
            PlacementKind::Query { param, value } => {
                if param.is_empty() {
                    return Err(self.error("placement.param", "must not be empty"));
                }
                if has_crlf_nul(param) {
                    return Err(self.error("placement.param", "must not contain CR, LF or NUL"));
                }
                template_rules("placement.value", value, false)?;
            }
            PlacementKind::Path { template } => {
                let parts = template_rules("placement.template", template, true)?;
                let paths = parts.iter().filter(|p| **p == Part::Path).count();
                if paths > 1 || (paths == 1 && parts.last() != Some(&Part::Path)) {
                    return Err(
                        self.error("placement.template", "may hold {{path}} once, at its end")
                    );
                }
                match parts.first() {
                    Some(Part::Text(t)) if t.starts_with('/') => {}
                    Some(Part::Secret(_)) => {}
                    _ => {
                        return Err(self.error(
                            "placement.template",
                            "must start with `/` or with a secret that is a path",
                        ))
                    }
                }
                for part in &parts {
                    if let Part::Text(t) = part {
                        if let Some(why) = path_piece_problem(t) {
                            return Err(self.error("placement.template", why));
                        }
                    }
                }
            }
            PlacementKind::AwsSigv4 { region, service } => {
                for (field, v) in [("placement.region", region), ("placement.service", service)] {
                    let ok = !v.is_empty()
                        && v.len() <= 64
                        && v.bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
                    if !ok {
                        return Err(self.error(
                            field,
                            format!(
                                "{v:?} must be 1 to 64 of a-z, 0-9 and `-` (like us-east-1 or s3)"
                            ),
                        ));
                    }
                }
            }
        }
        if p.remove_headers.len() > MAX_LISTED {
            return Err(self.error(
                "placement.remove_headers",
                format!("at most {MAX_LISTED} names"),
            ));
        }
        for (i, name) in p.remove_headers.iter().enumerate() {
            if !is_http_token(name) {
                return Err(self.error(
                    format!("placement.remove_headers[{i}]"),
                    format!("{name:?} is not a valid HTTP header name"),
                ));
            }
        }
        if p.methods.len() > MAX_LISTED {
            return Err(self.error("placement.methods", format!("at most {MAX_LISTED} methods")));
        }
        for (i, m) in p.methods.iter().enumerate() {
            if !is_http_token(m) {
                return Err(self.error(
                    format!("placement.methods[{i}]"),
                    format!("{m:?} is not an HTTP method"),
                ));
            }
        }
        Ok(())
    }

    /// Checks the public part of the connector (name, patterns, placement) without a secret, for
    /// interfaces that save the definition and the secret separately.
    pub fn check(&self) -> Result<(), ValidationError> {
        self.checked_patterns().map(|_| ())
    }

    /// Checks every rule and binds the secrets (one [`Secret`] is the secret named `secret`). Patterns
    /// come out normalised.
    pub fn validate(&self, secrets: impl Into<Secrets>) -> Result<Connector, ValidationError> {
        let secrets: Secrets = secrets.into();
        let patterns = self.checked_patterns()?;
        let needed = self.placement.secret_names();
        let field = |name: &str| {
            if name == DEFAULT_SECRET_NAME {
                "secret".to_string()
            } else {
                format!("secrets.{name}")
            }
        };
        for name in &needed {
            if secrets.get(name).is_none() {
                return Err(self.error(
                    field(name),
                    format!(
                        "missing: this {} placement needs the secrets {}",
                        self.placement.type_name(),
                        needed.join(", ")
                    ),
                ));
            }
        }
        for name in secrets.names() {
            if !is_secret_name(name) {
                return Err(self.error(
                    field(name),
                    "a secret name is 1 to 32 of a-z, 0-9 and `_`, starting with a letter",
                ));
            }
            if !needed.iter().any(|n| n == name) {
                return Err(self.error(
                    field(name),
                    format!(
                        "not used: this {} placement uses the secrets {}",
                        self.placement.type_name(),
                        needed.join(", ")
                    ),
                ));
            }
        }
        let in_header = |name: &str| match &self.placement.kind {
            PlacementKind::Header { headers } => headers
                .iter()
                .any(|h| template::secret_names(&h.template).contains(&name)),
            PlacementKind::Basic { username, .. } => {
                template::secret_names(username).contains(&name)
            }
            _ => false,
        };
        for (name, secret) in secrets.iter() {
            let value = secret.expose();
            if value.is_empty() {
                return Err(self.error(field(name), "must not be empty"));
            }
            if has_crlf_nul(value) {
                return Err(self.error(field(name), "must not contain CR, LF or NUL"));
            }
            if in_header(name) && !is_header_value_safe(value) {
                return Err(self.error(
                    field(name),
                    "contains a control character not allowed in a header value",
                ));
            }
        }
        match &self.placement.kind {
            PlacementKind::Basic { username, .. }
                if template::render(username, &secrets, "").contains(':') =>
            {
                return Err(self.error(
                    field(
                        template::secret_names(username)
                            .first()
                            .copied()
                            .unwrap_or("secret"),
                    ),
                    "the username must not contain `:`",
                ));
            }
            PlacementKind::Path { template } => {
                for name in template::secret_names(template) {
                    let value = secrets.get(name).map(|s| s.expose()).unwrap_or("");
                    if let Some(why) = path_piece_problem(value) {
                        return Err(self.error(field(name), format!("as a path, it {why}")));
                    }
                }
                let rendered = template::render(template, &secrets, "");
                if !rendered.starts_with('/') {
                    return Err(self.error(
                        field(template::secret_names(template)[0]),
                        "as a path, it must start with `/`",
                    ));
                }
                if let Some(why) = path_problem(&rendered) {
                    return Err(
                        self.error("placement.template", format!("the rendered path {why}"))
                    );
                }
            }
            _ => {}
        }
        Ok(Connector {
            name: self.name.clone(),
            patterns,
            placement: self.placement.clone(),
            scrub_echo: self.scrub_echo,
            secrets,
        })
    }
}

/// Why a piece of a path (template text or a secret) is refused: what a URL parser would re-read,
/// re-encode or resolve. `None` when it is fine. Never quotes the piece.
fn path_piece_problem(s: &str) -> Option<&'static str> {
    if s.contains(['?', '#']) {
        return Some("must not contain `?` or `#`");
    }
    if s.contains('%') {
        return Some("must not contain `%` (give it unencoded)");
    }
    if s.contains('\\') {
        return Some("must not contain `\\`");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain whitespace or control characters");
    }
    if !s.is_ascii() {
        return Some("must be ASCII");
    }
    None
}

/// Why a whole rendered path is refused: dot segments (a parser would resolve them) or empty segments.
fn path_problem(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Some("must not hold `.` or `..` segments");
    }
    if path.contains("//") {
        return Some("must not hold `//`");
    }
    None
}

impl Placement {
    /// The secret names this placement uses, sorted, each once.
    pub fn secret_names(&self) -> Vec<String> {
        let mut out: Vec<String> = match &self.kind {
            PlacementKind::Header { headers } => headers
                .iter()
                .flat_map(|h| template::secret_names(&h.template))
                .map(String::from)
                .collect(),
            PlacementKind::Basic { username, password } => template::secret_names(username)
                .into_iter()
                .chain(template::secret_names(password))
                .map(String::from)
                .collect(),
            PlacementKind::Query { value, .. } => template::secret_names(value)
                .into_iter()
                .map(String::from)
                .collect(),
            PlacementKind::Path { template } => template::secret_names(template)
                .into_iter()
                .map(String::from)
                .collect(),
            PlacementKind::AwsSigv4 { .. } => {
                vec![AWS_ACCESS_KEY_ID.into(), AWS_SECRET_ACCESS_KEY.into()]
            }
        };
        out.sort();
        out.dedup();
        out
    }

    /// Whether this placement lets `method` (as the egress path normalised it: the six standard
    /// methods upper-cased, any other as given, as Fetch does) through. Listed methods are normalised
    /// the same way, then compared exactly: `patch` is not `PATCH`.
    pub fn allows_method(&self, method: &str) -> bool {
        const STANDARD: [&str; 6] = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
        let normal = |m: &str| -> String {
            match STANDARD.iter().find(|s| s.eq_ignore_ascii_case(m)) {
                Some(s) => s.to_string(),
                None => m.to_string(),
            }
        };
        self.methods.is_empty() || self.methods.iter().any(|m| normal(m) == method)
    }
}

/// The secret names of an `aws_sigv4` placement.
pub const AWS_ACCESS_KEY_ID: &str = "access_key_id";
pub const AWS_SECRET_ACCESS_KEY: &str = "secret_access_key";

impl Connector {
    /// Renders one of this connector's templates. Only the egress path calls this.
    pub fn render(&self, template: &str, path: &str) -> Zeroizing<String> {
        template::render(template, &self.secrets, path)
    }

    /// A secret by name. Only the egress path calls this.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// Every form in which this connector's secrets leave the host, besides the secrets themselves:
    /// rendered header values, the Basic credential and its base64, the rendered query value, the
    /// rendered path (without the step's part). Echo scrubbing looks for these too.
    pub fn rendered_forms(&self) -> Vec<Zeroizing<String>> {
        use base64::Engine as _;
        let mut out = Vec::new();
        match &self.placement.kind {
            PlacementKind::Header { headers } => {
                for h in headers {
                    out.push(self.render(&h.template, ""));
                }
            }
            PlacementKind::Basic { username, password } => {
                let mut pair = self.render(username, "");
                pair.push(':');
                pair.push_str(&self.render(password, ""));
                out.push(Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()),
                ));
                out.push(Zeroizing::new(format!("Basic {}", out[0].as_str())));
                out.push(pair);
            }
            PlacementKind::Query { value, .. } => out.push(self.render(value, "")),
            PlacementKind::Path { template } => out.push(self.render(template, "")),
            PlacementKind::AwsSigv4 { .. } => {}
        }
        out
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
        Placement::header("Authorization".into(), "Bearer {{secret}}".into())
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
        assert_eq!(c.rendered_forms()[0].as_str(), format!("Bearer {SECRET}"));
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
        let h = |name: &str, template: &str| Placement::header(name.into(), template.into());
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
        let q = |p: &str| Placement::query(p.into());
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
    fn methods_compare_as_fetch_normalises_them() {
        let p = Placement::query("k".into()).with_methods(&["get", "PATCH"]);
        assert!(p.allows_method("GET") && p.allows_method("PATCH"));
        assert!(!p.allows_method("patch") && !p.allows_method("POST"));
        assert!(Placement::query("k".into()).allows_method("DELETE"));
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
