//! Placement templates: literal text with `{{secret}}`, `{{secret.NAME}}` and (in a path template)
//! `{{path}}`. `{{secret}}` is the secret named `secret`, which a connector with one secret holds.

use zeroize::Zeroizing;

use super::secret::{Secrets, DEFAULT_SECRET_NAME};

/// A part of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part<'a> {
    Text(&'a str),
    Secret(&'a str),
    Path,
}

/// Whether `name` may name a secret: 1 to 32 of `[a-z0-9_]`, starting with a letter.
pub(crate) fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Splits a template into its parts. The error names the placeholder that is wrong (templates are not
/// secret).
pub(crate) fn parse(template: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "has `{{` without a closing `}}`".to_string())?;
        let inner = &after[..close];
        let part = match inner {
            "secret" => Part::Secret(DEFAULT_SECRET_NAME),
            "path" => Part::Path,
            _ => match inner.strip_prefix("secret.") {
                Some(name) if is_secret_name(name) => Part::Secret(name),
                _ => {
                    return Err(format!(
                        "has an unknown placeholder {{{{{inner}}}}}; use {{{{secret}}}}, {{{{secret.NAME}}}} (NAME of a-z, 0-9, _) or, in a path, {{{{path}}}}"
                    ))
                }
            },
        };
        parts.push(part);
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err("has `}}` without an opening `{{`".into());
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    Ok(parts)
}

/// The secret names a template uses.
pub(crate) fn secret_names(template: &str) -> Vec<&str> {
    parse(template)
        .map(|parts| {
            parts
                .into_iter()
                .filter_map(|p| match p {
                    Part::Secret(n) => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Renders a template that validation accepted. A secret missing from `secrets` (impossible after
/// validation) renders empty; `path` is what `{{path}}` becomes.
pub(crate) fn render(template: &str, secrets: &Secrets, path: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(template.len() + 64));
    for part in parse(template).unwrap_or_default() {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Secret(n) => out.push_str(secrets.get(n).map(|s| s.expose()).unwrap_or("")),
            Part::Path => out.push_str(path),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Secret;

    #[test]
    fn parses_and_renders() {
        assert_eq!(
            parse("Bearer {{secret}}").unwrap(),
            vec![Part::Text("Bearer "), Part::Secret("secret")]
        );
        assert_eq!(
            parse("/bot{{secret.token}}{{path}}").unwrap(),
            vec![Part::Text("/bot"), Part::Secret("token"), Part::Path]
        );
        assert!(parse("{secret}").unwrap() == vec![Part::Text("{secret}")]);
        for bad in [
            "{{secrets}}",
            "{{secret.}}",
            "{{secret.A}}",
            "{{ secret }}",
            "{{secret",
            "a}}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let mut s = Secrets::new();
        s.insert("a", Secret::new("1".into()));
        s.insert("b", Secret::new("2".into()));
        assert_eq!(
            render("{{secret.a}}:{{secret.b}}{{path}}", &s, "/x").as_str(),
            "1:2/x"
        );
        assert_eq!(secret_names("{{secret.a}}{{secret}}"), vec!["a", "secret"]);
    }
}
