//! Which connector, if any, a request URL may use. The URL parsed here is the URL that is sent.

use url::{Host, Url};

use crate::connector::pattern::{has_empty_label, has_encoded_separator};
use crate::connector::Connector;

use super::FetchError;

/// The longest request URL, in bytes, measured on the text JS gave before it is parsed (security model,
/// "URL patterns"). With patterns bounded too, matching a request stays cheap.
pub(crate) const MAX_URL_LEN: usize = 16 * 1024;

/// Names the rule, never the URL: it may hold a query or userinfo.
fn too_long(len: usize) -> String {
    format!("the URL is {len} bytes long; a request URL is at most {MAX_URL_LEN} bytes (16 KiB)")
}

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
    // Before parsing, so an oversized URL costs nothing more than its length.
    if raw.len() > MAX_URL_LEN {
        return Err(FetchError::InvalidRequest(format!(
            "invalid URL: {}",
            too_long(raw.len())
        )));
    }
    let url =
        Url::parse(raw).map_err(|e| FetchError::InvalidRequest(format!("invalid URL: {e}")))?;
    check_target(raw, url)
}

/// Refuses what no connector may be used for and normalises the host. `raw` is the text the URL came
/// from: the parser turns `%2e%2e` segments into `..` and resolves them, so the raw text is checked too.
pub(crate) fn check_target(raw: &str, mut url: Url) -> Result<Url, FetchError> {
    // `parse_request_url` already refused this for JS's URL; here it covers a redirect's `Location`.
    if raw.len() > MAX_URL_LEN {
        return Err(blocked(&url, &too_long(raw.len())));
    }
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
    // so that what is checked stays what is sent. Exactly one dot is removed: any other empty label
    // (`host..`, `a..b`, `.host`) is refused, or `host..` would be sent as `host.` yet match `host`.
    let trimmed = match url.host() {
        Some(Host::Domain(d)) => {
            let name = d.strip_suffix('.').unwrap_or(d);
            if has_empty_label(name) {
                return Err(blocked(
                    &url,
                    "a host with an empty label (`..`, a leading dot or more than one trailing dot) is not allowed",
                ));
            }
            (name.len() != d.len()).then(|| name.to_string())
        }
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

    fn connector(pattern: &str) -> Connector {
        crate::connector::ConnectorSpec {
            name: "c".into(),
            patterns: vec![pattern.into()],
            placement: crate::connector::Placement::query("key".into()),
            scrub_echo: false,
        }
        .validate(crate::connector::Secret::new("sk_target_test".into()))
        .unwrap()
    }

    #[test]
    fn refuses_hosts_with_empty_labels() {
        let c = connector("https://host/*");
        for raw in [
            "https://host..:443/x",
            "https://host../x",
            "https://ho..st/x",
            "https://.host/x",
            "https://host...:443/x?key=hunter2",
        ] {
            let e = parse_request_url(raw).unwrap_err();
            assert!(matches!(e, FetchError::Blocked(_)), "{raw}: {e:?}");
            let m = e.to_string();
            assert!(
                m.contains("empty label") && !m.contains("hunter2"),
                "{raw}: {m}"
            );
            // Even a URL that skipped these checks does not match.
            let url = Url::parse(raw).unwrap();
            assert!(!c.matches(&url), "{raw}");
            assert!(choose(std::slice::from_ref(&c), &url).is_err(), "{raw}");
        }
        assert_eq!(
            msg("https://host..:443/x"),
            "fetch to host.. blocked: a host with an empty label (`..`, a leading dot or more than one trailing dot) is not allowed"
        );
        // One trailing dot is removed, and then the host matches.
        let u = parse_request_url("https://host.:443/x").unwrap();
        assert_eq!(u.as_str(), "https://host/x");
        assert!(choose(std::slice::from_ref(&c), &u).is_ok());
    }

    #[test]
    fn refuses_long_urls_without_showing_them() {
        let base = "https://api.test/x?key=hunter2&pad=";
        let at_limit = format!("{base}{}", "p".repeat(MAX_URL_LEN - base.len()));
        assert_eq!(at_limit.len(), MAX_URL_LEN);
        assert!(parse_request_url(&at_limit).is_ok());

        let over = format!("{at_limit}p");
        let e = parse_request_url(&over).unwrap_err();
        assert!(matches!(e, FetchError::InvalidRequest(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "invalid URL: the URL is 16385 bytes long; a request URL is at most 16384 bytes (16 KiB)"
        );
        // Long in the path, or with userinfo: the message is the same, never the URL.
        for raw in [
            format!("https://alice:hunter2@api.test/{}", "a".repeat(MAX_URL_LEN)),
            format!("https://api.test/{}", "a*".repeat(100_000)),
        ] {
            let m = msg(&raw);
            assert!(
                m.contains("at most 16384 bytes")
                    && !m.contains("hunter2")
                    && !m.contains("api.test"),
                "{m}"
            );
        }

        // A redirect's Location goes through `check_target` only; it is held to the same bound.
        let location = format!("/next?key=hunter2&pad={}", "p".repeat(MAX_URL_LEN));
        let next = Url::parse("https://api.test/")
            .unwrap()
            .join(&location)
            .unwrap();
        let e = check_target(&location, next).unwrap_err();
        assert!(matches!(e, FetchError::Blocked(_)), "{e:?}");
        let m = e.to_string();
        assert!(
            m.starts_with("fetch to api.test blocked: the URL is")
                && m.contains("at most 16384 bytes")
                && !m.contains("hunter2"),
            "{m}"
        );
    }

    #[test]
    fn normalises_trailing_dot_and_fragment() {
        let u = parse_request_url("https://API.test./x/../y?q=%2f#frag").unwrap();
        assert_eq!(u.as_str(), "https://api.test/y?q=%2f");
    }
}
