//! "Test connection": one GET through one connector, reported as the people who manage it need to
//! see it: the status, the time, and when it failed, the upstream's words. The CLI (`connector test`)
//! and the API (`POST …/connectors/{name}/test`) both call this, and record the attempt like any other
//! use of the secret.

use std::time::Duration;

use serde::Serialize;
use url::Url;

use super::{Egress, FetchRecord, FetchRequest, RedirectMode, RequestLimits};
use crate::connector::Connector;

/// What a probe found. Holds no secret: the URL is shown without its query, and the error text and
/// excerpt pass through the connector's scrubber whatever its echo-scrubbing setting.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(example = json!({"connector": "stripe", "url": "https://api.stripe.com/v1/balance", "status": 401,
    "status_text": "Unauthorized", "duration_ms": 212.4, "redirects": 0, "ok": false, "error": null,
    "excerpt": "{\"error\":{\"message\":\"Invalid API Key provided: sk_test_****\"}}"}))]
pub struct ProbeReport {
    pub connector: String,
    /// The URL asked for, without its query.
    pub url: String,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
    pub status_text: Option<String>,
    pub duration_ms: f64,
    pub redirects: u32,
    /// True for an answer below 400.
    pub ok: bool,
    /// Why the request failed, when it got no answer.
    pub error: Option<String>,
    /// The start of the body of an error answer (status 400 or above), scrubbed and capped.
    pub excerpt: Option<String>,
}

/// The URL without its query, which may hold a secret placed as a parameter.
pub fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl Egress {
    /// Sends one GET to `url` through `connector` (the caller checked that it matches).
    pub async fn probe(
        &self,
        connector: &Connector,
        url: &Url,
        timeout: Duration,
    ) -> (ProbeReport, FetchRecord) {
        let connectors = std::slice::from_ref(connector);
        let request = FetchRequest {
            method: "GET".into(),
            url: url.to_string(),
            headers: vec![],
            body: None,
            redirect: RedirectMode::Follow,
        };
        let limits = RequestLimits {
            timeout,
            max_response_body: 1 << 20,
            ..Default::default()
        };
        let (result, record) = self.fetch(connectors, request, &limits).await;
        let mut report = ProbeReport {
            connector: connector.name.clone(),
            url: without_query(url),
            status: None,
            status_text: None,
            duration_ms: (record.duration_ms * 10.0).round() / 10.0,
            redirects: record.redirects,
            ok: false,
            error: None,
            excerpt: None,
        };
        match result {
            Ok(resp) => {
                report.ok = resp.status < 400;
                // Kept by the egress path as the body was read, always scrubbed (see `excerpt`).
                report.excerpt = record.error_excerpt.clone();
                report.status = Some(resp.status);
                report.status_text = Some(resp.status_text);
            }
            // Already scrubbed by `fetch`.
            Err(e) => report.error = Some(e.to_string()),
        }
        (report, record)
    }
}
