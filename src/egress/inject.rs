//! Puts a connector's secret into one request. Done afresh on every hop, from the headers JS set, so
//! nothing injected for one hop can reach another.

use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use url::form_urlencoded;
use url::Url;

use crate::connector::{
    Connector, PlacementKind, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, PATH_PLACEHOLDER,
};

use super::{sigv4, target, FetchError};

pub(crate) type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// Removes every query parameter whose decoded name is `name`. The other parameters keep their exact
/// bytes: re-serialising them could change what upstream sees.
pub(crate) fn remove_query_param(url: &mut Url, name: &str) {
    let Some(query) = url.query() else { return };
    let mut removed = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|seg| {
            let key = seg.split('=').next().unwrap_or("");
            let decoded: String = form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            let drop = !seg.is_empty() && decoded == name;
            removed |= drop;
            !drop
        })
        .collect();
    if removed {
        let joined = kept
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(if joined.is_empty() {
            None
        } else {
            Some(&joined)
        });
    }
}

/// Drops every header named `name` (case-insensitively: `HeaderName` is lowercase) and sets `value`.
pub(crate) fn replace_header(headers: &mut HeaderList, name: HeaderName, mut value: HeaderValue) {
    headers.retain(|(n, _)| *n != name);
    // Keeps the value out of HPACK's dynamic table, where it could be probed through compression.
    value.set_sensitive(true);
    headers.push((name, value));
}

/// One hop's request after injection.
pub(crate) struct Injected {
    /// The URL that goes on the wire.
    pub sent: Url,
    /// The URL the step asked for, without the injected parameter or path: the only form JS and
    /// records ever see.
    pub shown: Url,
}

/// The body a hop sends, as far as signing needs to know it.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    None,
    Buffered(&'a [u8]),
    Streamed,
}

fn bad_value(connector: &Connector) -> FetchError {
    FetchError::InvalidRequest(format!(
        "connector {}: a secret is not a valid header value",
        connector.name
    ))
}

/// The path a path placement sends for the logical path `logical`, or why the step may not ask for it.
fn placed_path(
    connector: &Connector,
    template: &str,
    url: &Url,
) -> Result<zeroize::Zeroizing<String>, FetchError> {
    let logical = url.path();
    if template.ends_with(PATH_PLACEHOLDER) {
        // `/` is the host root: the template's own path, without a trailing slash added to it.
        let step_part = if logical == "/" { "" } else { logical };
        return Ok(connector.render(template, step_part));
    }
    if logical != "/" {
        return Err(FetchError::Blocked(format!(
            "fetch to {} blocked: connector {} sends every request to its own path; call {}://{}/ instead",
            target::host_of(url),
            connector.name,
            url.scheme(),
            url.host_str().unwrap_or(""),
        )));
    }
    Ok(connector.render(template, ""))
}

/// Applies `connector` to a hop. `url` is the checked hop URL (what the step asked for); `headers`
/// are the headers JS set (already filtered) and are changed in place; `method` is the hop's. The
/// order is fixed: the method rule, `remove_headers`, the placement, and last the AWS signature, over
/// headers that no longer change.
pub(crate) fn inject(
    connector: &Connector,
    url: &Url,
    method: &str,
    headers: &mut HeaderList,
    payload: Payload<'_>,
) -> Result<Injected, FetchError> {
    let placement = &connector.placement;
    if !placement.allows_method(method) {
        return Err(FetchError::Blocked(format!(
            "fetch to {} blocked: connector {} does not allow the method {method} (it allows {})",
            target::host_of(url),
            connector.name,
            placement.methods.join(", ")
        )));
    }
    headers.retain(|(n, _)| {
        !placement
            .remove_headers
            .iter()
            .any(|r| n.as_str().eq_ignore_ascii_case(r))
    });
    let mut shown = url.clone();
    let mut sent = url.clone();
    match &placement.kind {
        PlacementKind::Header { headers: templates } => {
            for t in templates {
                let name = HeaderName::from_bytes(t.name.as_bytes()).map_err(|_| {
                    FetchError::InvalidRequest(format!(
                        "connector {}: invalid header name",
                        connector.name
                    ))
                })?;
                let rendered = connector.render(&t.template, "");
                let value = HeaderValue::from_bytes(rendered.as_bytes())
                    .map_err(|_| bad_value(connector))?;
                replace_header(headers, name, value);
            }
        }
        PlacementKind::Basic { username, password } => {
            use base64::Engine as _;
            let mut pair = connector.render(username, "");
            pair.push(':');
            pair.push_str(&connector.render(password, ""));
            let mut value = zeroize::Zeroizing::new(String::from("Basic "));
            base64::engine::general_purpose::STANDARD.encode_string(pair.as_bytes(), &mut value);
            let value = HeaderValue::from_str(&value).map_err(|_| bad_value(connector))?;
            replace_header(headers, AUTHORIZATION, value);
        }
        PlacementKind::Query { param, value } => {
            remove_query_param(&mut shown, param);
            sent = shown.clone();
            sent.query_pairs_mut()
                .append_pair(param, &connector.render(value, ""));
        }
        PlacementKind::Path { template } => {
            let path = placed_path(connector, template, url)?;
            sent.set_path(&path);
            if sent.path() != path.as_str() {
                // Validation keeps secrets to characters a path holds as they are; this is the net.
                return Err(FetchError::InvalidRequest(format!(
                    "connector {}: the secret does not fit in a URL path",
                    connector.name
                )));
            }
        }
        PlacementKind::AwsSigv4 { region, service } => {
            let key = |n: &str| connector.secret(n).map(|s| s.expose()).unwrap_or("");
            let payload = match payload {
                Payload::None => sigv4::payload_hash(b""),
                Payload::Buffered(b) => sigv4::payload_hash(b),
                Payload::Streamed => sigv4::UNSIGNED_PAYLOAD.to_string(),
            };
            let date = sigv4::amz_date_now();
            sigv4::Signer {
                access_key_id: key(AWS_ACCESS_KEY_ID),
                secret_access_key: key(AWS_SECRET_ACCESS_KEY),
                region,
                service,
                amz_date: &date,
            }
            .sign(method, &sent, headers, &payload);
        }
    }
    Ok(Injected { sent, shown })
}

/// A redirect target as the step may see it: `next` was resolved against the hop's logical URL, but an
/// upstream may put what was injected into it (our query parameter, or the placed path). That is
/// taken out again; what cannot be taken out stays for the caller's leak check to refuse.
pub(crate) fn to_logical(connector: &Connector, sent: &Url, next: &mut Url) {
    match &connector.placement.kind {
        PlacementKind::Query { param, .. } => remove_query_param(next, param),
        PlacementKind::Path { template } if next.origin() == sent.origin() => {
            if let Some(prefix) = template.strip_suffix(PATH_PLACEHOLDER) {
                let prefix = connector.render(prefix, "");
                let logical = next.path().strip_prefix(prefix.as_str()).and_then(|rest| {
                    if rest.is_empty() {
                        Some("/".to_string())
                    } else {
                        rest.starts_with('/').then(|| rest.to_string())
                    }
                });
                if let Some(logical) = logical {
                    next.set_path(&logical);
                }
            } else if next.path() == connector.render(template, "").as_str() {
                next.set_path("/");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{ConnectorSpec, Placement, Secret, Secrets};

    const SECRET: &str = "sk_inject_s3cr3t&=+ /";

    fn connector(placement: Placement) -> Connector {
        ConnectorSpec {
            name: "c".into(),
            patterns: vec!["https://api.test/*".into()],
            placement,
            scrub_echo: false,
        }
        .validate(Secret::new(SECRET.into()))
        .unwrap()
    }

    fn h(n: &str, v: &str) -> (HeaderName, HeaderValue) {
        (
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        )
    }

    #[test]
    fn header_placement_replaces_every_js_header_of_that_name() {
        let c = connector(Placement::header(
            "X-Api-Key".into(),
            "Token {{secret}}".into(),
        ));
        let mut headers = vec![
            h("x-api-key", "js-one"),
            h("accept", "*/*"),
            h("X-API-KEY", "js-two"),
        ];
        let url = Url::parse("https://api.test/a?b=1").unwrap();
        let out = inject(&c, &url, "GET", &mut headers, Payload::None).unwrap();
        assert_eq!(out.sent, url);
        assert_eq!(out.shown, url);
        let keys: Vec<_> = headers.iter().filter(|(n, _)| n == "x-api-key").collect();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].1.as_bytes(), format!("Token {SECRET}").as_bytes());
        assert!(keys[0].1.is_sensitive());
        assert!(headers.iter().any(|(n, _)| n == "accept"));
    }

    #[test]
    fn query_placement_replaces_js_params_and_hides_from_shown_url() {
        let c = connector(Placement::query("api key".into()));
        let url =
            Url::parse("https://api.test/a?x=1&api+key=js&y=%20z&api%20key=js2&flag").unwrap();
        let mut headers = vec![];
        let out = inject(&c, &url, "GET", &mut headers, Payload::None).unwrap();
        assert_eq!(out.shown.as_str(), "https://api.test/a?x=1&y=%20z&flag");
        assert!(!out.shown.as_str().contains("sk_inject"));
        let pairs: Vec<(String, String)> = out
            .sent
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(pairs.iter().filter(|(k, _)| k == "api key").count(), 1);
        assert_eq!(
            pairs.last().unwrap(),
            &("api key".to_string(), SECRET.to_string())
        );
        assert!(out
            .sent
            .as_str()
            .starts_with("https://api.test/a?x=1&y=%20z&flag&"));
        assert!(headers.is_empty());
    }

    fn with(placement: Placement, secrets: &[(&str, &str)]) -> Connector {
        let mut set = Secrets::new();
        for (n, v) in secrets {
            set.insert(n, Secret::new(v.to_string()));
        }
        ConnectorSpec {
            name: "c".into(),
            patterns: vec!["https://api.test/*".into()],
            placement,
            scrub_echo: false,
        }
        .validate(set)
        .unwrap()
    }

    fn kind(k: PlacementKind) -> Placement {
        Placement::new(k)
    }

    #[test]
    fn basic_placement_encodes_username_and_password() {
        let c = with(
            kind(PlacementKind::Basic {
                username: "{{secret.sid}}".into(),
                password: "{{secret.token}}".into(),
            }),
            &[("sid", "AC123"), ("token", "tok:en")],
        );
        let mut headers = vec![h("Authorization", "Bearer js-placeholder")];
        let url = Url::parse("https://api.test/x").unwrap();
        inject(&c, &url, "POST", &mut headers, Payload::None).unwrap();
        assert_eq!(headers.len(), 1);
        // base64("AC123:tok:en")
        assert_eq!(headers[0].1, "Basic QUMxMjM6dG9rOmVu");
    }

    #[test]
    fn path_placement_sends_the_rendered_path_and_shows_the_logical_one() {
        let c = with(
            kind(PlacementKind::Path {
                template: "/bot{{secret}}{{path}}".into(),
            }),
            &[("secret", "123:ABC")],
        );
        let url = Url::parse("https://api.test/sendMessage?x=1").unwrap();
        let out = inject(&c, &url, "GET", &mut vec![], Payload::None).unwrap();
        assert_eq!(
            out.sent.as_str(),
            "https://api.test/bot123:ABC/sendMessage?x=1"
        );
        assert_eq!(out.shown, url);
        let root = Url::parse("https://api.test/").unwrap();
        let out = inject(&c, &root, "GET", &mut vec![], Payload::None).unwrap();
        assert_eq!(out.sent.path(), "/bot123:ABC");

        // A Location back into the placed path is mapped to the logical path.
        let mut next = Url::parse("https://api.test/bot123:ABC/getMe").unwrap();
        to_logical(&c, &out.sent, &mut next);
        assert_eq!(next.as_str(), "https://api.test/getMe");
        let mut elsewhere = Url::parse("https://other.test/bot123:ABC/getMe").unwrap();
        to_logical(&c, &out.sent, &mut elsewhere);
        assert_eq!(
            elsewhere.path(),
            "/bot123:ABC/getMe",
            "left for the leak check"
        );

        let hook = with(
            kind(PlacementKind::Path {
                template: "{{secret}}".into(),
            }),
            &[("secret", "/services/T/B/X")],
        );
        let out = inject(&hook, &root, "POST", &mut vec![], Payload::None).unwrap();
        assert_eq!(out.sent.path(), "/services/T/B/X");
        assert_eq!(out.shown.path(), "/");
        let Err(e) = inject(&hook, &url, "POST", &mut vec![], Payload::None) else {
            panic!("a non-root path must be refused")
        };
        assert!(
            matches!(e, FetchError::Blocked(_)) && !e.to_string().contains("services"),
            "{e}"
        );
    }

    #[test]
    fn methods_and_removed_headers() {
        let c = with(
            Placement::header("x-api-key".into(), "{{secret}}".into())
                .with_remove_headers(&["Authorization"])
                .with_methods(&["GET"]),
            &[("secret", "k1")],
        );
        let url = Url::parse("https://api.test/x").unwrap();
        let Err(e) = inject(&c, &url, "DELETE", &mut vec![], Payload::None) else {
            panic!("DELETE must be refused")
        };
        assert!(matches!(e, FetchError::Blocked(_)));
        assert!(
            e.to_string().contains("DELETE") && e.to_string().contains("connector c"),
            "{e}"
        );
        let mut headers = vec![
            h("AUTHORIZATION", "Bearer sdk-placeholder"),
            h("accept", "x"),
        ];
        inject(&c, &url, "GET", &mut headers, Payload::None).unwrap();
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["accept", "x-api-key"]);
    }

    #[test]
    fn remove_param_edge_cases() {
        let mut u = Url::parse("https://a.test/?k=1").unwrap();
        remove_query_param(&mut u, "k");
        assert_eq!(u.as_str(), "https://a.test/");
        let mut u = Url::parse("https://a.test/?kk=1&k").unwrap();
        remove_query_param(&mut u, "k");
        assert_eq!(u.as_str(), "https://a.test/?kk=1");
        let mut u = Url::parse("https://a.test/?a=1&&b=2").unwrap();
        remove_query_param(&mut u, "k");
        assert_eq!(
            u.as_str(),
            "https://a.test/?a=1&&b=2",
            "untouched when nothing is removed"
        );
    }
}
