//! Shared test harness: local HTTPS (and plain HTTP) servers that record what they receive.
//!
//! # Quick start
//! ```ignore
//! use crate::support::{Reply, TestServer};
//!
//! let server = TestServer::start(|req| Reply::echo(req));      // HTTPS on 127.0.0.1:<random port>
//! let egress = codestep::egress::Egress::new(server.egress_config()).unwrap();
//! let url = server.url("api.test", "/v1/things?x=1");          // "https://api.test:<port>/v1/things?x=1"
//! // ... fetch through egress (or run a step whose connectors allow https://api.test:<port>/*) ...
//! let seen = server.requests();                                 // every request the server got, in order
//! assert_eq!(seen[0].header("authorization"), Some("Bearer ..."));
//! ```
//!
//! # What it gives you
//! - One test PKI per process ([`pki`]): a CA made with `rcgen` and one leaf certificate valid for
//!   [`TLS_NAMES`] (`localhost`, `api.test`, `other.test`, `evil.test`, `*.wild.test`, `*.c.wild.test`). Every HTTPS
//!   server uses that leaf, so one CA PEM ([`TestServer::ca_pem`] or [`ca_pem`]) trusts them all.
//! - [`TestServer::start`] (HTTPS, TLS by `tokio-rustls`, HTTP/1.1 by `hyper`) and
//!   [`TestServer::start_http`] (plain HTTP, for https→http redirect tests). Each server runs on its own
//!   thread and tokio runtime, so it keeps serving whatever the test thread does (blocking on V8 too),
//!   and `start` needs no runtime. Dropping the server stops it.
//! - All [`TEST_HOSTS`] resolve to 127.0.0.1 through the egress `resolve` map, so one server answers
//!   for every test name; route on [`RecordedRequest::host`] when a test needs hosts to differ.
//!   Redirects between names on one server (`api.test` → `other.test`) need the same port: use
//!   [`TestServer::url`] for both.
//! - [`egress_config`] / [`TestServer::egress_config`]: an `EgressConfig` that trusts the test CA,
//!   allows 127.0.0.1/32 past the SSRF guard, and maps the test names to 127.0.0.1.
//! - The handler is a plain closure `Fn(&RecordedRequest) -> Reply`, called after the whole request
//!   body has been read. [`Reply`] can set status and headers, redirect, stream a chunked body,
//!   and delay the answer (for timeouts).
//! - [`assert_no_secret`] checks bytes for a secret without ever printing the secret.

#![allow(dead_code)]

pub mod serve;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use codestep::egress::EgressConfig;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

/// Names on the test leaf certificate.
pub const TLS_NAMES: &[&str] = &[
    "localhost",
    "api.test",
    "other.test",
    "evil.test",
    "*.wild.test",
    "*.c.wild.test",
];

/// The vendors' API hosts the preset and SDK tests send to (`placements::presets_send_what_each_vendor_expects`,
/// `sdk::*`). They are on the leaf certificate and map to 127.0.0.1 like [`TEST_HOSTS`].
pub const PRESET_HOSTS: &[&str] = &[
    "api.stripe.com",
    "api.openai.com",
    "api.anthropic.com",
    "api.github.com",
    "slack.com",
    "hooks.slack.com",
    "discord.com",
    "api.telegram.org",
    "api.notion.com",
    "api.airtable.com",
    "api.hubapi.com",
    "api.twilio.com",
    "api.sendgrid.com",
    "api.resend.com",
    "us6.api.mailchimp.com",
    "api.linear.app",
    "generativelanguage.googleapis.com",
    "api.datadoghq.com",
    "sts.us-east-1.amazonaws.com",
    "sheets.googleapis.com",
];

/// Names the test `EgressConfig` maps to 127.0.0.1 (`localhost` is left to real DNS on purpose, so a
/// test can check the SSRF guard on a genuinely resolved name).
pub const TEST_HOSTS: &[&str] = &[
    "api.test",
    "other.test",
    "evil.test",
    "a.wild.test",
    "b.c.wild.test",
];

/// The process-wide test PKI.
pub struct Pki {
    /// The CA certificate, PEM: put it into `EgressConfig::extra_ca_pem`.
    pub ca_pem: Vec<u8>,
    leaf_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    leaf_key_der: Vec<u8>,
}

/// The test PKI, made on first use.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "codestep test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("CA cert");

        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut names: Vec<String> = TLS_NAMES.iter().map(|s| s.to_string()).collect();
        names.extend(
            PRESET_HOSTS
                .iter()
                .filter(|h| !TLS_NAMES.contains(h))
                .map(|s| s.to_string()),
        );
        let mut leaf = CertificateParams::new(names).expect("leaf params");
        leaf.distinguished_name
            .push(DnType::CommonName, "codestep test server");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("leaf cert");
        Pki {
            ca_pem: ca_cert.pem().into_bytes(),
            leaf_chain: vec![leaf_cert.der().clone()],
            leaf_key_der: leaf_key.serialize_der(),
        }
    })
}

/// The test CA, PEM.
pub fn ca_pem() -> Vec<u8> {
    pki().ca_pem.clone()
}

/// `TEST_HOSTS` → 127.0.0.1, for `EgressConfig::resolve`.
pub fn test_resolve_map() -> HashMap<String, Vec<IpAddr>> {
    TEST_HOSTS
        .iter()
        .chain(PRESET_HOSTS)
        .map(|h| (h.to_string(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]))
        .collect()
}

/// An `EgressConfig` for talking to test servers: trusts the test CA, lets 127.0.0.1/32 past the SSRF
/// guard and maps `TEST_HOSTS` to 127.0.0.1.
pub fn egress_config() -> EgressConfig {
    EgressConfig {
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        extra_ca_pem: vec![ca_pem()],
        resolve: test_resolve_map(),
    }
}

/// A request as the server received it. `Debug` leaves out the query, header values and body, which
/// may hold a secret.
#[derive(Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, exactly as on the request line.
    pub uri: String,
    pub path: String,
    pub query: Option<String>,
    /// Names lowercase, in order, repeated headers kept apart.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The `Host` header without the port, lowercase.
    pub host: String,
    /// The TLS server name the client sent (HTTPS servers only).
    pub sni: Option<String>,
    /// The port this server listens on, so a handler can write absolute URLs to itself under another
    /// test name (a redirect from `api.test` to `other.test`, say).
    pub port: u16,
}

impl std::fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl RecordedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header (name case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect()
    }

    /// Whether `needle` occurs anywhere: request line, header names and values, body. Checks the raw
    /// and the form-urlencoded spelling.
    pub fn contains(&self, needle: &str) -> bool {
        let encoded: String = url::form_urlencoded::byte_serialize(needle.as_bytes()).collect();
        let hay = self.all_bytes();
        [needle.as_bytes(), encoded.as_bytes()]
            .iter()
            .any(|n| contains_bytes(&hay, n))
    }

    fn all_bytes(&self) -> Vec<u8> {
        let mut hay = format!("{} {}\n", self.method, self.uri).into_bytes();
        for (n, v) in &self.headers {
            hay.extend_from_slice(format!("{n}: {v}\n").as_bytes());
        }
        hay.extend_from_slice(&self.body);
        hay
    }

    /// The request as JSON: what [`Reply::echo`] sends back.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "method": self.method,
            "uri": self.uri,
            "host": self.host,
            "headers": self.headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

/// A response body.
#[derive(Clone, Debug)]
pub enum ReplyBody {
    /// Sent with `Content-Length`.
    Full(Vec<u8>),
    /// Sent chunked, without `Content-Length`: each part as its own chunk, `interval` before each.
    Parts {
        parts: Vec<Vec<u8>>,
        interval: Duration,
    },
    /// Sent chunked: `first`, then (once `gate` is opened, or after 10 s) `rest`. `gate.1` records
    /// whether the gate was opened before the wait ran out.
    Gated {
        first: Vec<u8>,
        rest: Vec<u8>,
        gate: Arc<(tokio::sync::Notify, std::sync::atomic::AtomicBool)>,
    },
    /// Sent chunked, without `Content-Length`: `count` copies of `chunk`, `interval` apart.
    Chunked {
        chunk: Vec<u8>,
        count: usize,
        interval: Option<Duration>,
    },
}

/// What the handler answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
    /// Waits this long before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    /// 200 with a body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: ReplyBody::Full(body.into()),
            delay: None,
        }
    }

    /// An empty response with this status.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::ok(Vec::new())
        }
    }

    /// 200, `application/json`.
    pub fn json(value: &serde_json::Value) -> Reply {
        Reply::ok(value.to_string()).header("content-type", "application/json")
    }

    /// 200 with the request as JSON ([`RecordedRequest::to_json`]).
    pub fn echo(req: &RecordedRequest) -> Reply {
        Reply::json(&req.to_json())
    }

    /// A redirect (`status` 301/302/303/307/308) to `location`.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::status(status).header("location", location)
    }

    /// A chunked body of `count` × `chunk`, no `Content-Length`.
    pub fn chunked(chunk: impl Into<Vec<u8>>, count: usize) -> Reply {
        Reply {
            body: ReplyBody::Chunked {
                chunk: chunk.into(),
                count,
                interval: None,
            },
            ..Reply::status(200)
        }
    }

    /// A chunked body sent as these parts, `interval` before each (a server-sent-events stream, or
    /// a body whose chunk boundaries matter).
    pub fn parts(parts: Vec<Vec<u8>>, interval: Duration) -> Reply {
        Reply {
            body: ReplyBody::Parts { parts, interval },
            ..Reply::status(200)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }
}

type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// A running test server. Stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The CA that signed this server's certificate (the same for every test server).
    pub ca_pem: Vec<u8>,
    pub tls: bool,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts an HTTPS server on 127.0.0.1 with a random port.
    pub fn start(
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        Self::spawn(Arc::new(handler), true, "127.0.0.1:0")
    }

    /// Starts an HTTPS server on a given address (the demo's mock API uses 127.0.0.1:443).
    pub fn start_on(
        bind: &str,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        Self::spawn(Arc::new(handler), true, bind)
    }

    /// Starts a plain-HTTP server on 127.0.0.1 with a random port.
    pub fn start_http(
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        Self::spawn(Arc::new(handler), false, "127.0.0.1:0")
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://{host}:{port}{path_and_query}` (or `http://` for a plain server).
    pub fn url(&self, host: &str, path_and_query: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{}{path_and_query}", self.port())
    }

    /// A connector pattern covering every path of `host` on this server.
    pub fn pattern(&self, host: &str) -> String {
        self.url(host, "/*")
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// See [`egress_config`].
    pub fn egress_config(&self) -> EgressConfig {
        egress_config()
    }

    fn spawn(handler: Handler, tls: bool, bind: &str) -> TestServer {
        let listener = std::net::TcpListener::bind(bind)
            .unwrap_or_else(|e| panic!("cannot listen on {bind}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let acceptor = tls.then(tls_acceptor);
        let recorded = requests.clone();
        std::thread::Builder::new()
            .name(format!("test-server-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(accept_loop(listener, acceptor, handler, recorded, stop_rx));
            })
            .unwrap();
        TestServer {
            addr,
            ca_pem: ca_pem(),
            tls,
            requests,
            stop: Some(stop_tx),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let pki = pki();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        pki.leaf_key_der.clone(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(pki.leaf_chain.clone(), key)
    .expect("server TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn accept_loop(
    listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handler: Handler,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let port = listener.local_addr().map_or(0, |a| a.port());
        let (tcp, _) = tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let recorded = recorded.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    // A failed handshake is a client decision (for example an untrusted CA): nothing to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_string);
                    serve(TokioIo::new(tls), sni, port, handler, recorded).await;
                }
                None => serve(TokioIo::new(tcp), None, port, handler, recorded).await,
            }
        });
    }
}

type RespBody = UnsyncBoxBody<Bytes, Infallible>;

async fn serve<I>(
    io: I,
    sni: Option<String>,
    port: u16,
    handler: Handler,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let handler = handler.clone();
        let recorded = recorded.clone();
        let sni = sni.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let host = parts
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(|h| {
                    h.rsplit_once(':')
                        .map(|(a, _)| a)
                        .unwrap_or(h)
                        .to_ascii_lowercase()
                })
                .unwrap_or_default();
            let rec = RecordedRequest {
                method: parts.method.as_str().to_string(),
                uri: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                headers,
                body,
                host,
                sni,
                port,
            };
            recorded.lock().unwrap().push(rec.clone());
            let reply = handler(&rec);
            if let Some(d) = reply.delay {
                tokio::time::sleep(d).await;
            }
            Ok::<_, Infallible>(to_response(reply))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

fn to_response(reply: Reply) -> hyper::Response<RespBody> {
    let body: RespBody = match reply.body {
        ReplyBody::Full(b) => Full::new(Bytes::from(b)).boxed_unsync(),
        ReplyBody::Chunked {
            chunk,
            count,
            interval,
        } => {
            let chunk = Bytes::from(chunk);
            let stream = futures::stream::unfold(0usize, move |i| {
                let chunk = chunk.clone();
                async move {
                    if i >= count {
                        return None;
                    }
                    if let Some(d) = interval {
                        tokio::time::sleep(d).await;
                    }
                    Some((Ok::<_, Infallible>(Frame::data(chunk)), i + 1))
                }
            });
            StreamBody::new(stream).boxed_unsync()
        }
        ReplyBody::Gated { first, rest, gate } => {
            let stream = futures::stream::unfold(0u8, move |step| {
                let (first, rest, gate) = (first.clone(), rest.clone(), gate.clone());
                async move {
                    match step {
                        0 => Some((Ok::<_, Infallible>(Frame::data(Bytes::from(first))), 1)),
                        1 => {
                            let opened =
                                tokio::time::timeout(Duration::from_secs(10), gate.0.notified())
                                    .await
                                    .is_ok();
                            gate.1.store(opened, std::sync::atomic::Ordering::SeqCst);
                            Some((Ok(Frame::data(Bytes::from(rest))), 2))
                        }
                        _ => None,
                    }
                }
            });
            StreamBody::new(stream).boxed_unsync()
        }
        ReplyBody::Parts { parts, interval } => {
            let stream = futures::stream::unfold(parts.into_iter(), move |mut it| async move {
                let part = it.next()?;
                tokio::time::sleep(interval).await;
                Some((Ok::<_, Infallible>(Frame::data(Bytes::from(part))), it))
            });
            StreamBody::new(stream).boxed_unsync()
        }
    };
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status).expect("valid status");
    for (n, v) in reply.headers {
        resp.headers_mut().append(
            hyper::header::HeaderName::from_bytes(n.as_bytes()).expect("header name"),
            hyper::header::HeaderValue::from_bytes(v.as_bytes()).expect("header value"),
        );
    }
    resp
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Panics if `haystack` holds `secret` (raw or form-urlencoded). The panic message names `what` and
/// never shows the secret or the haystack.
pub fn assert_no_secret(haystack: &[u8], secret: &str, what: &str) {
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    if contains_bytes(haystack, secret.as_bytes()) || contains_bytes(haystack, encoded.as_bytes()) {
        panic!(
            "{what} contains the secret ({} bytes searched)",
            haystack.len()
        );
    }
}

/// Process mode with the `codestep` binary as the worker program, confined by its sandbox: how
/// `codestep run` and `serve` run steps.
/// Runs a reference implementation (Node, botocore's Python): `input` as JSON on its stdin, its stdout
/// read back as JSON. `what` names it when it is missing or fails.
pub fn reference(
    mut command: std::process::Command,
    input: &serde_json::Value,
    what: &str,
) -> serde_json::Value {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} must be installed: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} failed");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what} printed no JSON: {e}"))
}

/// The live child processes of `pid`, whichever of its threads started them (a server's workers; a
/// worker that forks keeps one: the process for the next step). A child that exited and is not yet
/// reaped is left out.
pub fn child_processes(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out.retain(|p| status_field(*p, "State").is_some_and(|s| !s.starts_with('Z')));
    out
}

/// A field of `/proc/PID/status`.
pub fn status_field(pid: u32, name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| Some(l.strip_prefix(name)?.strip_prefix(':')?.trim().to_string()))
}

/// The process a forking worker keeps for its next step, once it has confined itself (it has more
/// seccomp filters than its worker), and is none of `ran` (right after a step, the worker's child is
/// still the step process that ran it, until that one reads its `End` and exits).
pub fn waiting_step_process(worker: u32, ran: &[u32]) -> u32 {
    let filters = |pid: u32| -> usize {
        status_field(pid, "Seccomp_filters")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let [one] = child_processes(worker)[..] {
            if !ran.contains(&one) && filters(one) > filters(worker) {
                return one;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "worker {worker} has no confined step process waiting: {:?}",
            child_processes(worker)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn process_mode() -> codestep::engine::Mode {
    codestep::engine::Mode::Process {
        program: codestep::engine::WorkerProgram::Path(codestep_binary()),
        sandbox: true,
    }
}

/// The `codestep` binary cargo built beside this test or benchmark.
pub fn codestep_binary() -> std::path::PathBuf {
    match option_env!("CARGO_BIN_EXE_codestep") {
        Some(p) => p.into(),
        // `target/<profile>/deps/<this>` → `target/<profile>/codestep`
        None => std::env::current_exe()
            .expect("current exe")
            .parent()
            .and_then(|deps| deps.parent())
            .expect("a cargo target directory")
            .join("codestep"),
    }
}

impl TestServer {
    /// The flags that let a `codestep` process reach this server: its CA (written to the returned file,
    /// which must outlive the process), loopback past the SSRF guard, and `api.test` resolved to it.
    pub fn cli_net_args(&self) -> (Vec<String>, tempfile::NamedTempFile) {
        let ca = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(ca.path(), &self.ca_pem).expect("write the CA");
        let args = [
            "--allow-private",
            "127.0.0.1/32",
            "--ca-cert",
            ca.path().to_str().expect("utf-8 path"),
            "--resolve",
            "api.test:127.0.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        (args, ca)
    }
}
