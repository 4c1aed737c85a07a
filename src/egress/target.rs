//! Which connector, if any, a request URL may use. The URL parsed here is the URL that is sent.

use url::{Host, Url};

use crate::connector::pattern::has_encoded_separator;
use crate::connector::Connector;

use super::FetchError;

/// `scheme://host[:port]/path`: safe to show JS and logs, since it has no query and no userinfo.
pub(crate) fn describe(url: &Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        s.push_str(&format!(":{port}"));
    }
    s.push_str(url.path());
    s
}

pub(crate) fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or("").to_string()
}

fn blocked(url: &Url, why: &str) -> FetchError {
    FetchError::Blocked(format!("fetch to {} blocked: {why}", host_of(url)))
}

/// The error for a URL no connector allows; the same for a direct request and for a redirect hop.
pub(crate) fn no_connector(url: &Url) -> FetchError {
    blocked(url, &format!("no connector allows {}", describe(url)))
}

/// Parses a URL as JS gave it.
pub(crate) fn parse_request_url(raw: &str) -> Result<Url, FetchError> {
    let url =
        Url::parse(raw).map_err(|e| FetchError::InvalidRequest(format!("invalid URL: {e}")))?;
    check_target(raw, url)
}

/// Refuses what no connector may be used for and normalises the host. `raw` is the text the URL came
/// from: the parser turns `%2e%2e` segments into `..` and resolves them, so the raw text is checked too.
pub(crate) fn check_target(raw: &str, mut url: Url) -> Result<Url, FetchError> {
    if url.scheme() != "https" {
        return Err(no_connector(&url));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Userinfo never reaches a message: it may be a credential.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(blocked(
            &url,
            "URLs with credentials (user:password@) are not allowed",
        ));
    }
    let before_query = raw.split(['?', '#']).next().unwrap_or("");
    if has_encoded_separator(before_query) || has_encoded_separator(url.path()) {
        return Err(blocked(
            &url,
            "an encoded `/`, `\\` or `.` (%2f, %5c, %2e) in the path is not allowed",
        ));
    }
    // Patterns store names without the trailing dot; the request is changed rather than only compared,
    // so that what is checked stays what is sent.
    let trimmed = match url.host() {
        Some(Host::Domain(d)) => d.strip_suffix('.').map(str::to_string),
        _ => None,
    };
    if let Some(t) = trimmed {
        if url.set_host(Some(&t)).is_err() {
            return Err(no_connector(&url));
        }
    }
    url.set_fragment(None);
    Ok(url)
}

/// The first of the step's connectors whose patterns match.
pub(crate) fn choose<'a>(
    connectors: &'a [Connector],
    url: &Url,
) -> Result<&'a Connector, FetchError> {
    connectors
        .iter()
        .find(|c| c.matches(url))
        .ok_or_else(|| no_connector(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(raw: &str) -> String {
        parse_request_url(raw).unwrap_err().to_string()
    }

    #[test]
    fn refusals_never_show_query_or_userinfo() {
        let m = msg("http://api.test/x?key=hunter2");
        assert_eq!(
            m,
            "fetch to api.test blocked: no connector allows http://api.test/x"
        );
        let m = msg("https://alice:hunter2@api.test/x");
        assert!(
            m.contains("credentials") && !m.contains("hunter2") && !m.contains("alice"),
            "{m}"
        );
        for raw in [
            "https://api.test/v1/%2e%2e/admin",
            "https://api.test/v1%2Fadmin",
            "https://api.test/v1%5cadmin",
            "https://api.test/a%2Eb",
        ] {
            assert!(msg(raw).contains("encoded"), "{raw}");
        }
        assert!(msg("not a url").contains("invalid URL"));
    }

    #[test]
    fn normalises_trailing_dot_and_fragment() {
        let u = parse_request_url("https://API.test./x/../y?q=%2f#frag").unwrap();
        assert_eq!(u.as_str(), "https://api.test/y?q=%2f");
    }
}
