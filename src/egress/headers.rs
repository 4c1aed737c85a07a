//! Which headers JS may send and see.
//!
//! Forbidden request headers are all **stripped**, never refused: browsers drop them silently too, so
//! code written for `fetch` elsewhere keeps working, and one consistent rule is easier to reason about.
//! `Content-Length` is computed from the body; the transport headers belong to the HTTP client.
//! `Accept-Encoding` belongs to the egress path too: every request asks for `identity`. A step that could
//! ask for gzip would get echoes compressed, which body scrubbing cannot see and JS can inflate itself.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING};

use super::inject::HeaderList;
use super::FetchError;

/// Whether JS may not set this request header (`name` is lowercase, as `HeaderName` always is).
pub(crate) fn is_forbidden_request_header(name: &str) -> bool {
    matches!(
        name,
        "cookie"
            | "cookie2"
            | "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "content-length"
            | "accept-encoding"
    ) || name.starts_with("proxy-")
}

/// Most request headers one fetch may set. Servers commonly accept a hundred or so; the cap keeps a
/// step from making the supervisor hold (or the HTTP client choke on) a huge header list.
pub const MAX_REQUEST_HEADERS: usize = 256;
/// Most bytes of request header names and values, together.
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;

/// Refuses a header list over `MAX_REQUEST_HEADERS` or `MAX_REQUEST_HEADER_BYTES`.
pub fn check_request_header_sizes(raw: &[(String, String)]) -> Result<(), FetchError> {
    if raw.len() > MAX_REQUEST_HEADERS {
        return Err(FetchError::InvalidRequest(format!(
            "fetch: {} request headers; at most {MAX_REQUEST_HEADERS} may be sent",
            raw.len()
        )));
    }
    let bytes: usize = raw.iter().map(|(n, v)| n.len() + v.len()).sum();
    if bytes > MAX_REQUEST_HEADER_BYTES {
        return Err(FetchError::InvalidRequest(format!(
            "fetch: the request headers are {bytes} bytes; at most {MAX_REQUEST_HEADER_BYTES} may be sent"
        )));
    }
    Ok(())
}

/// Validates the headers JS set, drops the forbidden ones and asks for an unencoded body.
pub(crate) fn request_headers(raw: &[(String, String)]) -> Result<HeaderList, FetchError> {
    check_request_header_sizes(raw)?;
    let mut out = Vec::with_capacity(raw.len() + 1);
    for (name, value) in raw {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::InvalidRequest(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| FetchError::InvalidRequest(format!("invalid value for header {name}")))?;
        if !is_forbidden_request_header(name.as_str()) {
            out.push((name, value));
        }
    }
    out.push((ACCEPT_ENCODING, HeaderValue::from_static("identity")));
    Ok(out)
}

/// There is no cookie jar, and JS must not learn cookies either.
pub(crate) fn is_hidden_response_header(name: &str) -> bool {
    matches!(name, "set-cookie" | "set-cookie2")
}

/// Response headers as JS sees them, in order, repeated headers kept apart.
pub(crate) fn response_headers(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .filter(|(n, _)| !is_hidden_response_header(n.as_str()))
        // Header bytes outside ASCII are rare and Latin-1 in theory; lossy UTF-8 keeps them readable.
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

pub(crate) fn to_header_map(list: &HeaderList) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(list.len());
    for (n, v) in list {
        map.append(n.clone(), v.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn strips_forbidden_request_headers() {
        let out = request_headers(&hs(&[
            ("Cookie", "a=1"),
            ("cookie2", "b"),
            ("Host", "evil.test"),
            ("Proxy-Authorization", "x"),
            ("proxy-foo", "x"),
            ("Connection", "close"),
            ("Keep-Alive", "1"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Content-Length", "5"),
            ("Accept-Encoding", "gzip, br"),
            ("Content-Type", "text/plain"),
            ("X-Custom", "yes"),
            ("Authorization", "Bearer js"),
        ]))
        .unwrap();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "content-type",
                "x-custom",
                "authorization",
                "accept-encoding"
            ]
        );
        assert_eq!(out[3].1, "identity", "the one Accept-Encoding is ours");
    }

    #[test]
    fn invalid_headers_are_refused() {
        for (n, v) in [
            ("bad name", "v"),
            ("", "v"),
            ("x:y", "v"),
            ("x", "a\r\nb: c"),
            ("x", "a\nb"),
            ("x", "a\0"),
        ] {
            let e = request_headers(&hs(&[(n, v)])).unwrap_err();
            assert!(matches!(e, FetchError::InvalidRequest(_)), "{n:?}");
        }
        // Non-ASCII values are bytes on the wire (obs-text), not an error.
        assert!(request_headers(&hs(&[("x", "café")])).is_ok());
    }

    #[test]
    fn hides_set_cookie() {
        let mut map = HeaderMap::new();
        map.append("set-cookie", HeaderValue::from_static("a=1"));
        map.append("set-cookie2", HeaderValue::from_static("b=1"));
        map.append("x-a", HeaderValue::from_static("1"));
        map.append("x-a", HeaderValue::from_static("2"));
        assert_eq!(
            response_headers(&map),
            vec![
                ("x-a".to_string(), "1".to_string()),
                ("x-a".to_string(), "2".to_string())
            ]
        );
    }
}
