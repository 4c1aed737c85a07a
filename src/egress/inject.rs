//! Puts a connector's secret into one request. Done afresh on every hop, from the headers JS set, so
//! nothing injected for one hop can reach another.

use reqwest::header::{HeaderName, HeaderValue};
use url::form_urlencoded;
use url::Url;

use crate::connector::{Connector, Placement};

use super::FetchError;

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
    /// The same URL without the injected parameter: the only form JS and records ever see.
    pub shown: Url,
}

/// Applies `connector` to a hop. `url` is the checked hop URL; `headers` are the headers JS set
/// (already filtered) and are changed in place.
pub(crate) fn inject(
    connector: &Connector,
    url: &Url,
    headers: &mut HeaderList,
) -> Result<Injected, FetchError> {
    let mut shown = url.clone();
    match &connector.placement {
        Placement::Header { name, .. } => {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                FetchError::InvalidRequest(format!(
                    "connector {}: invalid header name",
                    connector.name
                ))
            })?;
            let rendered = connector.rendered_secret();
            let value = HeaderValue::from_bytes(rendered.as_bytes()).map_err(|_| {
                FetchError::InvalidRequest(format!(
                    "connector {}: secret is not a valid header value",
                    connector.name
                ))
            })?;
            replace_header(headers, name, value);
            Ok(Injected {
                sent: shown.clone(),
                shown,
            })
        }
        Placement::Query { param } => {
            remove_query_param(&mut shown, param);
            let mut sent = shown.clone();
            sent.query_pairs_mut()
                .append_pair(param, connector.secret.expose());
            Ok(Injected { sent, shown })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{ConnectorSpec, Secret};

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
        let c = connector(Placement::Header {
            name: "X-Api-Key".into(),
            template: "Token {{secret}}".into(),
        });
        let mut headers = vec![
            h("x-api-key", "js-one"),
            h("accept", "*/*"),
            h("X-API-KEY", "js-two"),
        ];
        let url = Url::parse("https://api.test/a?b=1").unwrap();
        let out = inject(&c, &url, &mut headers).unwrap();
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
        let c = connector(Placement::Query {
            param: "api key".into(),
        });
        let url =
            Url::parse("https://api.test/a?x=1&api+key=js&y=%20z&api%20key=js2&flag").unwrap();
        let mut headers = vec![];
        let out = inject(&c, &url, &mut headers).unwrap();
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
