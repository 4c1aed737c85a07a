//! Redirect hops. Rust follows them itself (the client's own policy is "none") so that each hop is
//! matched and injected like a fresh request.

use reqwest::Method;
use url::Url;

use crate::connector::{Connector, PlacementKind};

use super::inject::HeaderList;
use super::{sigv4, FetchError};

pub const MAX_REDIRECTS: u32 = 10;

/// The statuses `fetch` follows. 300 and 304 are not redirects to follow.
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The next hop's method, and whether its body (and the headers describing it) must go.
pub(crate) fn next_method(status: u16, method: &Method) -> (Method, bool) {
    let to_get = (matches!(status, 301 | 302) && *method == Method::POST)
        || (status == 303 && *method != Method::GET && *method != Method::HEAD);
    if to_get {
        (Method::GET, true)
    } else {
        (method.clone(), false)
    }
}

/// The headers that describe a body, dropped with it (Fetch, "HTTP-redirect fetch").
pub(crate) fn drop_body_headers(headers: &mut HeaderList) {
    headers.retain(|(n, _)| {
        !matches!(
            n.as_str(),
            "content-type" | "content-encoding" | "content-language" | "content-location"
        )
    });
}

/// Drops the headers JS set that carry credentials: `Authorization`, the AWS signing headers, and any
/// header a connector of the step injects. Called once the chain leaves the first request's origin.
pub(crate) fn drop_credential_headers(headers: &mut HeaderList, connectors: &[Connector]) {
    headers.retain(|(n, _)| {
        let n = n.as_str();
        n != "authorization"
            && !sigv4::is_signing_header(n)
            && !connectors.iter().any(|c| match &c.placement.kind {
                PlacementKind::Header { headers } => {
                    headers.iter().any(|h| n.eq_ignore_ascii_case(&h.name))
                }
                PlacementKind::Basic { .. }
                | PlacementKind::Query { .. }
                | PlacementKind::Path { .. }
                | PlacementKind::AwsSigv4 { .. } => false,
            })
    });
}

/// Resolves a `Location` against the URL JS would see for the current hop (never the one carrying an
/// injected parameter, so a relative `Location` cannot inherit it).
pub(crate) fn resolve_location(shown: &Url, location: &[u8]) -> Result<Url, FetchError> {
    let text = std::str::from_utf8(location)
        .map_err(|_| FetchError::Network("redirect with an invalid Location header".into()))?;
    shown
        .join(text)
        .map_err(|_| FetchError::Network("redirect with an invalid Location header".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(next_method(301, &Method::POST), (Method::GET, true));
        assert_eq!(next_method(302, &Method::POST), (Method::GET, true));
        assert_eq!(next_method(301, &Method::PUT), (Method::PUT, false));
        assert_eq!(next_method(303, &Method::PUT), (Method::GET, true));
        assert_eq!(next_method(303, &Method::HEAD), (Method::HEAD, false));
        assert_eq!(next_method(307, &Method::POST), (Method::POST, false));
        assert_eq!(next_method(308, &Method::PATCH), (Method::PATCH, false));
        assert!(is_redirect(308) && !is_redirect(304) && !is_redirect(300));
    }

    #[test]
    fn relative_location_does_not_inherit_the_sent_query() {
        let shown = Url::parse("https://api.test/a/b?x=1").unwrap();
        assert_eq!(
            resolve_location(&shown, b"c").unwrap().as_str(),
            "https://api.test/a/c"
        );
        assert_eq!(
            resolve_location(&shown, b"/z?q").unwrap().as_str(),
            "https://api.test/z?q"
        );
        assert_eq!(
            resolve_location(&shown, b"//other.test/p")
                .unwrap()
                .as_str(),
            "https://other.test/p"
        );
        assert!(resolve_location(&shown, b"https://[bad").is_err());
    }
}
