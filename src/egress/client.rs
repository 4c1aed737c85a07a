//! The one HTTP client, one hop at a time, and the size caps.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Response};
use url::Url;

use super::headers::to_header_map;
use super::inject::HeaderList;
use super::ssrf::{ForbiddenAddress, GuardedResolver};
use super::{EgressConfig, EgressError, FetchError};

/// Builds the client every fetch goes through. Each setting closes a way around the security model:
/// no environment proxy, no cookie store (the feature is off), no automatic redirects (we check each
/// hop), the guarded resolver, and only the trust roots we name.
pub(crate) fn build_client(cfg: &EgressConfig) -> Result<reqwest::Client, EgressError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(true)
        .https_only(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .dns_resolver(Arc::new(GuardedResolver::new(
            cfg.allow_private.clone(),
            &cfg.resolve,
        )))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30));
    for (i, pem) in cfg.extra_ca_pem.iter().enumerate() {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| EgressError::Certificate(format!("extra CA {i}: {}", e.without_url())))?;
        if certs.is_empty() {
            return Err(EgressError::Certificate(format!(
                "extra CA {i}: no PEM certificate found"
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| EgressError::Client(e.without_url().to_string()))
}

/// Sends one hop. Nothing here follows redirects.
pub(crate) async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &Url,
    headers: &HeaderList,
    body: Option<reqwest::Body>,
) -> Result<Response, FetchError> {
    let mut request = reqwest::Request::new(method, url.clone());
    *request.headers_mut() = to_header_map(headers);
    *request.body_mut() = body;
    client
        .execute(request)
        .await
        .map_err(|e| map_error(e, &super::target::host_of(url)))
}

/// A `reqwest` error as JS may see it. `reqwest` puts the URL (with its query, so possibly a secret)
/// into `Display`; this names the host and the causes instead.
pub(crate) fn map_error(err: reqwest::Error, host: &str) -> FetchError {
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<ForbiddenAddress>() {
            return FetchError::Blocked(format!(
                "fetch to {host} blocked: {} resolves to a non-public address ({})",
                f.host, f.reason
            ));
        }
        source = s.source();
    }
    if err.is_timeout() {
        return FetchError::Timeout;
    }
    let mut msg = format!("error sending request to {host}");
    let err = err.without_url();
    let mut source = std::error::Error::source(&err);
    let mut last = String::new();
    while let Some(s) = source {
        let text = s.to_string();
        // Wrapping errors often repeat their cause's text; print each distinct cause once.
        if !text.is_empty() && !last.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    FetchError::Network(msg)
}
