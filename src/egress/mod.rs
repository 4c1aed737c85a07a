//! The egress path: the only way a step reaches the network.
//!
//! `Egress::fetch` takes a request as JS described it and the step's connectors, and enforces
//! `shared/docs/security-model.md`: matching (`target`), injection (`inject`), forbidden headers
//! (`headers`), redirects (`redirect`), the SSRF guard (`ssrf`), the client and size caps (`client`)
//! and echo scrubbing (`scrub`). One concern per file, so each rule can be read and tested alone.
//!
//! Every outcome comes with a `FetchRecord` for logs and metrics; neither it nor any error message
//! ever holds a query string or a secret.

mod client;
mod excerpt;
mod headers;
mod inject;
pub mod probe;
mod redirect;
mod scrub;
mod sigv4;
pub mod ssrf;
mod target;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::Serialize;

use crate::connector::Connector;

pub use excerpt::EXCERPT_MAX_BYTES;
pub use headers::{check_request_header_sizes, MAX_REQUEST_HEADERS, MAX_REQUEST_HEADER_BYTES};
pub use redirect::MAX_REDIRECTS;
pub use scrub::REDACTED;

/// Operator settings for the network side.
#[derive(Clone, Debug, Default)]
pub struct EgressConfig {
    /// CIDRs the SSRF guard lets through although they are not public (tests use 127.0.0.1/32).
    pub allow_private: Vec<ipnet::IpNet>,
    /// Extra trusted CA certificates, PEM (a file may hold several), on top of the webpki roots.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Host name to addresses, like curl's `--resolve`; the port comes from the URL. The SSRF guard
    /// still checks these addresses.
    pub resolve: HashMap<String, Vec<IpAddr>>,
}

/// The configuration could not be turned into a client.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("invalid CA certificate: {0}")]
    Certificate(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// How a fetch treats 3xx responses (the `redirect` option of `fetch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RedirectMode {
    #[default]
    Follow,
    Manual,
    Error,
}

/// A request body that arrives while the request is sent (a `ReadableStream` in JS). It is only
/// polled once the request passed the policy check. It cannot be sent twice, so a 307/308 redirect
/// of such a request fails, as the Fetch standard says.
pub type BodyStream = Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send>>;

/// A request as JS described it. Nothing in it is trusted.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub redirect: RedirectMode,
}

#[derive(Clone, Debug)]
pub struct RequestLimits {
    /// For the whole fetch: every hop, and reading the body.
    pub timeout: Duration,
    pub max_request_body: usize,
    pub max_response_body: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            timeout: Duration::from_secs(30),
            max_request_body: 10 << 20,
            max_response_body: 10 << 20,
        }
    }
}

/// What JS gets back. `Debug` shows the body's length only: without echo scrubbing a body may repeat
/// a secret, and debug output ends up in logs and test failures.
#[derive(Clone)]
pub struct FetchResponse {
    pub status: u16,
    pub status_text: String,
    /// Lowercase names, without `Set-Cookie`/`Set-Cookie2`, scrubbed of the secrets used.
    pub headers: Vec<(String, String)>,
    /// The final URL, without any injected parameter.
    pub url: String,
    pub redirected: bool,
    pub body: Vec<u8>,
}

impl fmt::Debug for FetchResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchResponse")
            .field("status", &self.status)
            .field("status_text", &self.status_text)
            .field("headers", &self.headers)
            .field("url", &self.url)
            .field("redirected", &self.redirected)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// A response whose body is still to be read: what `Egress::open` gives.
pub struct Opened {
    pub status: u16,
    pub status_text: String,
    /// Lowercase names, without `Set-Cookie`/`Set-Cookie2`, scrubbed of the secrets used.
    pub headers: Vec<(String, String)>,
    /// The final URL, without any injected parameter.
    pub url: String,
    pub redirected: bool,
    pub body: ResponseBody,
}

/// A response body read chunk by chunk: its size is counted against the limit as it flows, and echo
/// scrubbing (when on) works across chunk boundaries.
pub struct ResponseBody {
    response: Option<reqwest::Response>,
    echo: Option<scrub::StreamScrubber>,
    read: usize,
    max: usize,
    host: String,
    /// For an error status: the start of the body, always scrubbed (see `excerpt`).
    excerpt: Option<excerpt::Excerpt>,
}

impl ResponseBody {
    /// The next non-empty chunk, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, FetchError> {
        loop {
            let Some(response) = self.response.as_mut() else {
                return Ok(None);
            };
            match response
                .chunk()
                .await
                .map_err(|e| client::map_error(e, &self.host))?
            {
                Some(chunk) => {
                    self.read += chunk.len();
                    if self.read > self.max {
                        self.response = None;
                        return Err(FetchError::ResponseBodyTooLarge);
                    }
                    if let Some(e) = self.excerpt.as_mut() {
                        e.push(&chunk);
                    }
                    let out = match self.echo.as_mut() {
                        Some(s) => s.push(&chunk),
                        None => chunk.to_vec(),
                    };
                    if !out.is_empty() {
                        return Ok(Some(out));
                    }
                }
                None => {
                    self.response = None;
                    if let Some(e) = self.excerpt.as_mut() {
                        e.finish();
                    }
                    let rest = self.echo.take().map(|s| s.finish()).unwrap_or_default();
                    return Ok((!rest.is_empty()).then_some(rest));
                }
            }
        }
    }
}

impl ResponseBody {
    /// For an error response: the excerpt of its body read so far (scrubbed, capped), when it changed
    /// since the last call. `None` for other responses.
    pub fn excerpt_update(&mut self) -> Option<String> {
        self.excerpt
            .as_mut()
            .and_then(excerpt::Excerpt::take_update)
    }
}

/// Why a fetch failed. `Display` is the message JS sees: it never holds a query string or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    Blocked(String),
    Network(String),
    Timeout,
    RequestBodyTooLarge,
    ResponseBodyTooLarge,
    RedirectRefused(String),
    InvalidRequest(String),
    /// The step aborted it, or ended while it was in flight.
    Aborted,
}

impl FetchError {
    /// A stable, low-cardinality name for records and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Blocked(_) => "blocked",
            FetchError::Network(_) => "network_error",
            FetchError::Timeout => "timeout",
            FetchError::RequestBodyTooLarge | FetchError::ResponseBodyTooLarge => "limit",
            FetchError::RedirectRefused(_) => "redirect_refused",
            FetchError::InvalidRequest(_) => "invalid_request",
            FetchError::Aborted => "aborted",
        }
    }

    fn map_message(self, f: impl Fn(String) -> String) -> FetchError {
        match self {
            FetchError::Blocked(m) => FetchError::Blocked(f(m)),
            FetchError::Network(m) => FetchError::Network(f(m)),
            FetchError::RedirectRefused(m) => FetchError::RedirectRefused(f(m)),
            FetchError::InvalidRequest(m) => FetchError::InvalidRequest(f(m)),
            other => other,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Blocked(m)
            | FetchError::Network(m)
            | FetchError::RedirectRefused(m)
            | FetchError::InvalidRequest(m) => f.write_str(m),
            FetchError::Timeout => f.write_str("fetch timed out"),
            FetchError::Aborted => f.write_str("fetch was aborted"),
            FetchError::RequestBodyTooLarge => f.write_str("request body is larger than the limit"),
            FetchError::ResponseBodyTooLarge => {
                f.write_str("response body is larger than the limit")
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// One line per `fetch()` call, for logs and metrics. Describes the last hop attempted. The store
/// keeps these as they are (`store::FetchAttempt` is this type), with the run that made them.
#[derive(Serialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
pub struct FetchRecord {
    /// When the fetch started, in Unix milliseconds (monitoring counts it in that minute).
    #[schema(example = 1795615200012_i64)]
    pub at_ms: i64,
    /// The run that made the fetch: set when the server records it (`None` inside the engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub connector: Option<String>,
    pub method: String,
    pub host: String,
    /// Path only, never the query.
    pub path: String,
    pub status: Option<u16>,
    /// `FetchError::kind` when the fetch failed.
    pub error: Option<String>,
    pub duration_ms: f64,
    pub blocked: bool,
    /// Redirects followed.
    pub redirects: u32,
    /// For a response with a status of 400 or more: its status text (`Unauthorized`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    /// For a response with a status of 400 or more: the start of its body as far as it was read, at
    /// most [`EXCERPT_MAX_BYTES`], always scrubbed of the connectors' secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_excerpt: Option<String>,
}

impl FetchRecord {
    /// A record for a fetch starting now.
    pub fn start(method: &str) -> FetchRecord {
        FetchRecord {
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            run_id: None,
            connector: None,
            method: normalise_method(method),
            host: String::new(),
            path: String::new(),
            status: None,
            error: None,
            duration_ms: 0.0,
            blocked: false,
            redirects: 0,
            status_text: None,
            error_excerpt: None,
        }
    }

    /// Closes the record: how long the fetch took and, when it failed, how.
    pub fn finish(&mut self, started: Instant, result: Result<(), &FetchError>) {
        self.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Err(e) = result {
            self.error = Some(e.kind().to_string());
            self.blocked = matches!(e, FetchError::Blocked(_));
        }
    }
}

/// The egress path. Cheap to clone; one client (and connection pool) behind it.
#[derive(Clone)]
pub struct Egress {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
}

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Egress")
    }
}

impl Egress {
    pub fn new(cfg: EgressConfig) -> Result<Egress, EgressError> {
        Ok(Egress {
            inner: Arc::new(Inner {
                client: client::build_client(&cfg)?,
            }),
        })
    }

    /// Performs one `fetch()` for a step whose connectors are `connectors`, in the step's order, and
    /// reads the whole body. For callers that want the body at once (`connector test`, tests).
    pub async fn fetch(
        &self,
        connectors: &[Connector],
        req: FetchRequest,
        limits: &RequestLimits,
    ) -> (Result<FetchResponse, FetchError>, FetchRecord) {
        let started = Instant::now();
        let mut record = FetchRecord::start(&req.method);
        let work = async {
            // The records of hops before the last are for monitoring; this caller wants the last.
            let mut earlier = Vec::new();
            let opened = self
                .open(connectors, req, None, limits, &mut record, &mut earlier)
                .await?;
            let mut body = Vec::new();
            let mut reader = opened.body;
            if opened.status >= 400 {
                record.status_text = Some(opened.status_text.clone());
            }
            while let Some(chunk) = reader.next().await? {
                body.extend_from_slice(&chunk);
                if let Some(e) = reader.excerpt_update() {
                    record.error_excerpt = Some(e);
                }
            }
            if let Some(e) = reader.excerpt_update() {
                record.error_excerpt = Some(e);
            }
            Ok(FetchResponse {
                status: opened.status,
                status_text: opened.status_text,
                headers: opened.headers,
                url: opened.url,
                redirected: opened.redirected,
                body,
            })
        };
        let result = match tokio::time::timeout(limits.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        };
        let result = result.map_err(|e| self.safe_error(connectors, e));
        record.finish(started, result.as_ref().map(|_| ()));
        (result, record)
    }

    /// An error as JS may see it. Messages are built without secrets; this is the net under that, in
    /// case an upstream or a library put one into an error text.
    pub fn safe_error(&self, connectors: &[Connector], e: FetchError) -> FetchError {
        let scrubber = scrub::Scrubber::new(connectors);
        e.map_message(|m| scrubber.string(m))
    }

    /// Sends one `fetch()` and returns once its response head is in, with the body still to read.
    /// `stream` is the body when JS streams it (then `req.body` is `None`); it is polled only after
    /// the request passed every check. `record` describes the last hop attempted; each hop before it
    /// (a redirect followed) gets its own record in `earlier`, so that every request that carried a
    /// secret is counted for its connector. The caller bounds the time (`limits.timeout`) and closes
    /// the record.
    pub async fn open(
        &self,
        connectors: &[Connector],
        req: FetchRequest,
        stream: Option<BodyStream>,
        limits: &RequestLimits,
        record: &mut FetchRecord,
        earlier: &mut Vec<FetchRecord>,
    ) -> Result<Opened, FetchError> {
        self.run(connectors, req, stream, limits, record, earlier)
            .await
    }

    async fn run(
        &self,
        connectors: &[Connector],
        req: FetchRequest,
        mut stream: Option<BodyStream>,
        limits: &RequestLimits,
        record: &mut FetchRecord,
        earlier: &mut Vec<FetchRecord>,
    ) -> Result<Opened, FetchError> {
        let started = Instant::now();
        let mut method = parse_method(&req.method)?;
        let mut js_headers = headers::request_headers(&req.headers)?;
        // `Bytes`, so that re-sending it on a 307/308 hop does not copy it.
        let mut body: Option<bytes::Bytes> = req.body.map(Into::into);
        if (body.is_some() || stream.is_some()) && (method == Method::GET || method == Method::HEAD)
        {
            return Err(FetchError::InvalidRequest(format!(
                "a {method} request cannot have a body"
            )));
        }

        let mut url = target::parse_request_url(&req.url)?;
        let first_origin = url.origin();
        let mut credentials_dropped = false;
        // Every connector whose secret went out during this fetch: their secrets are scrubbed from
        // what comes back.
        let mut used: Vec<&Connector> = Vec::new();

        loop {
            record.host = target::host_of(&url);
            record.path = url.path().to_string();
            record.connector = None;
            record.status = None;
            let connector = target::choose(connectors, &url)?;
            record.connector = Some(connector.name.clone());
            if let Some(b) = &body {
                if b.len() > limits.max_request_body {
                    return Err(FetchError::RequestBodyTooLarge);
                }
            }
            if !used.iter().any(|c| std::ptr::eq(*c, connector)) {
                used.push(connector);
            }

            let mut hop_headers = js_headers.clone();
            scrub::drop_piecewise_headers(connector, &mut hop_headers);
            let payload = match (&body, &stream) {
                (Some(b), _) => inject::Payload::Buffered(b),
                (None, Some(_)) => inject::Payload::Streamed,
                (None, None) => inject::Payload::None,
            };
            let injected =
                inject::inject(connector, &url, method.as_str(), &mut hop_headers, payload)?;
            let send_body = match (&body, stream.take()) {
                (Some(b), _) => Some(reqwest::Body::from(b.clone())),
                (None, Some(s)) => Some(reqwest::Body::wrap_stream(s)),
                (None, None) => None,
            };
            let streamed = send_body.is_some() && body.is_none();
            let response = client::send(
                &self.inner.client,
                method.clone(),
                &injected.sent,
                &hop_headers,
                send_body,
            )
            .await?;
            drop(hop_headers);
            let status = response.status().as_u16();
            record.status = Some(status);
            let host = record.host.clone();

            let location = response.headers().get(reqwest::header::LOCATION).cloned();
            let redirect_to = match location {
                Some(loc) if redirect::is_redirect(status) => Some(loc),
                _ => None,
            };
            let header_scrubber = scrub::Scrubber::new(used.iter().copied());

            if let Some(location) = redirect_to {
                match req.redirect {
                    RedirectMode::Error => {
                        return Err(FetchError::RedirectRefused(format!(
                            "fetch to {host} got a redirect ({status}) while redirect mode is \"error\""
                        )))
                    }
                    RedirectMode::Manual => {
                        let mut headers = headers::response_headers(response.headers());
                        let shown_location =
                            manual_location(&injected, location.as_bytes(), connector);
                        for (n, v) in headers.iter_mut() {
                            if n == "location" {
                                *v = shown_location.clone();
                            }
                        }
                        return finish(
                            response,
                            headers,
                            &injected.shown,
                            false,
                            limits,
                            &host,
                            &header_scrubber,
                            &used,
                        )
                        .await;
                    }
                    RedirectMode::Follow => {}
                }
                if record.redirects >= MAX_REDIRECTS {
                    return Err(FetchError::RedirectRefused(format!(
                        "fetch to {host}: more than {MAX_REDIRECTS} redirects"
                    )));
                }
                let mut hop = record.clone();
                hop.finish(started, Ok(()));
                earlier.push(hop);
                record.redirects += 1;
                drop(response);

                let mut next = redirect::resolve_location(&injected.shown, location.as_bytes())?;
                // An upstream may echo our query or our placed path back into Location; those are
                // ours, not the next hop's, which gets its own injection or none.
                inject::to_logical(connector, &injected.sent, &mut next);
                if header_scrubber.leaks(next.as_str().as_bytes()) {
                    return Err(FetchError::RedirectRefused(format!(
                        "fetch to {host}: redirect refused because its location contains a credential"
                    )));
                }
                if url.scheme() == "https" && next.scheme() == "http" {
                    return Err(FetchError::RedirectRefused(format!(
                        "fetch to {host}: redirect from https to http refused"
                    )));
                }
                let raw_location = String::from_utf8_lossy(location.as_bytes()).into_owned();
                let next = target::check_target(&raw_location, next)?;

                let (next_method, drop_body) = redirect::next_method(status, &method);
                if drop_body {
                    body = None;
                    redirect::drop_body_headers(&mut js_headers);
                } else if streamed {
                    // Fetch, "HTTP-redirect fetch": a body read from a stream cannot be sent again.
                    return Err(FetchError::RedirectRefused(format!(
                        "fetch to {host}: a {status} redirect would re-send a streamed request body, which cannot be replayed"
                    )));
                }
                method = next_method;
                if !credentials_dropped && next.origin() != first_origin {
                    redirect::drop_credential_headers(&mut js_headers, connectors);
                    credentials_dropped = true;
                }
                url = next;
                continue;
            }

            let headers = headers::response_headers(response.headers());
            return finish(
                response,
                headers,
                &injected.shown,
                record.redirects > 0,
                limits,
                &host,
                &header_scrubber,
                &used,
            )
            .await;
        }
    }
}

/// Scrubs the head JS will get, and sets up the body reader (size cap, echo scrubbing).
#[allow(clippy::too_many_arguments)]
async fn finish(
    response: reqwest::Response,
    headers: Vec<(String, String)>,
    shown: &url::Url,
    redirected: bool,
    limits: &RequestLimits,
    host: &str,
    header_scrubber: &scrub::Scrubber,
    used: &[&Connector],
) -> Result<Opened, FetchError> {
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|n| n > limits.max_response_body as u64)
    {
        return Err(FetchError::ResponseBodyTooLarge);
    }
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        // A name cannot be partly redacted; one that holds a secret (in any case) goes whole.
        .filter(|(n, _)| !header_scrubber.leaks(n.as_bytes()))
        .map(|(n, v)| (n, header_scrubber.string(v)))
        .collect();
    let echo = scrub::Scrubber::new(used.iter().copied().filter(|c| c.scrub_echo));
    let echo = if echo.is_empty() {
        None
    } else {
        // The body's length may change as it is scrubbed; a stale Content-Length would contradict
        // the body JS reads.
        headers.retain(|(n, _)| n != "content-length");
        Some(scrub::StreamScrubber::new(echo))
    };
    Ok(Opened {
        status: status.as_u16(),
        status_text: status.canonical_reason().unwrap_or("").to_string(),
        headers,
        url: shown.to_string(),
        redirected,
        body: ResponseBody {
            response: Some(response),
            echo,
            read: 0,
            max: limits.max_response_body,
            host: host.to_string(),
            excerpt: (status.as_u16() >= 400).then(|| excerpt::Excerpt::new(used)),
        },
    })
}

/// The Location JS sees for `redirect: "manual"`: absolute, without the injected parameter. Any other
/// trace of the secret is replaced by the caller's header scrubbing.
fn manual_location(injected: &inject::Injected, location: &[u8], connector: &Connector) -> String {
    match redirect::resolve_location(&injected.shown, location) {
        Ok(mut next) => {
            inject::to_logical(connector, &injected.sent, &mut next);
            next.to_string()
        }
        Err(_) => String::from_utf8_lossy(location).into_owned(),
    }
}

/// Fetch upper-cases the standard methods only; others are case-sensitive.
fn normalise_method(m: &str) -> String {
    const STANDARD: [&str; 6] = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
    STANDARD
        .iter()
        .find(|s| s.eq_ignore_ascii_case(m))
        .map(|s| s.to_string())
        .unwrap_or_else(|| m.to_string())
}

fn parse_method(m: &str) -> Result<Method, FetchError> {
    let m = normalise_method(m);
    if ["CONNECT", "TRACE", "TRACK"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&m))
    {
        return Err(FetchError::InvalidRequest(format!(
            "method {m} is not allowed"
        )));
    }
    // A method is an HTTP token, the same grammar as a header name.
    if HeaderName::from_bytes(m.as_bytes()).is_err() && !m.is_empty() {
        return Err(FetchError::InvalidRequest("invalid method".into()));
    }
    Method::from_bytes(m.as_bytes())
        .map_err(|_| FetchError::InvalidRequest("invalid method".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(parse_method("get").unwrap(), Method::GET);
        assert_eq!(parse_method("patch").unwrap().as_str(), "patch");
        assert!(parse_method("connect").is_err());
        assert!(parse_method("TRACE").is_err());
        assert!(parse_method("GE T").is_err());
        assert!(parse_method("").is_err());
    }

    #[test]
    fn kinds_and_messages() {
        assert_eq!(FetchError::Timeout.kind(), "timeout");
        assert_eq!(FetchError::ResponseBodyTooLarge.kind(), "limit");
        assert_eq!(FetchError::Blocked("x".into()).to_string(), "x");
    }

    #[test]
    fn egress_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Egress>();
        // The engine spawns fetches on another runtime, so the future must be Send.
        fn send_future<F: std::future::Future + Send>(_: &F) {}
        let e0 = Egress::new(EgressConfig::default()).unwrap();
        let req = FetchRequest {
            method: "GET".into(),
            url: "https://a.test/".into(),
            headers: vec![],
            body: None,
            redirect: RedirectMode::Follow,
        };
        let limits = RequestLimits::default();
        send_future(&e0.fetch(&[], req, &limits));
        let e = Egress::new(EgressConfig::default()).unwrap();
        let _ = e.clone();
        assert!(Egress::new(EgressConfig {
            extra_ca_pem: vec![b"not pem".to_vec()],
            ..Default::default()
        })
        .is_err());
    }
}
