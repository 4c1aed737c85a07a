//! The egress path against real local HTTPS servers: one test (or a few) per rule of
//! `shared/docs/security-model.md` that `codestep::egress` enforces. After every hostile case the
//! secrets must be absent from what JS would get (`Response.url`, headers, error message) and from the
//! `FetchRecord`.

use std::time::{Duration, Instant};

use codestep::connector::{Connector, ConnectorSpec, Placement, Secret};
use codestep::egress::{
    Egress, EgressConfig, FetchError, FetchRecord, FetchRequest, FetchResponse, RedirectMode,
    RequestLimits,
};

use crate::support::{assert_no_secret, egress_config, Reply, TestServer};

const SECRET_A: &str = "sk_test_AAAA_7Hq2ZpX9";
const SECRET_B: &str = "sk_test_BBBB_m4Kd8WvR";
const ALL: &[&str] = &[SECRET_A, SECRET_B];

fn connector(
    name: &str,
    patterns: &[String],
    placement: Placement,
    secret: &str,
    scrub_echo: bool,
) -> Connector {
    ConnectorSpec {
        name: name.into(),
        patterns: patterns.to_vec(),
        placement,
        scrub_echo,
    }
    .validate(Secret::new(secret.into()))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn bearer() -> Placement {
    Placement::header("Authorization".into(), "Bearer {{secret}}".into())
}

fn header(name: &str) -> Placement {
    Placement::header(name.into(), "{{secret}}".into())
}

fn query(param: &str) -> Placement {
    Placement::query(param.into())
}

fn get(url: &str) -> FetchRequest {
    FetchRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: None,
        redirect: RedirectMode::Follow,
    }
}

fn with_headers(mut r: FetchRequest, headers: &[(&str, &str)]) -> FetchRequest {
    r.headers = headers
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    r
}

fn limits() -> RequestLimits {
    RequestLimits {
        timeout: Duration::from_secs(10),
        max_request_body: 1 << 20,
        max_response_body: 1 << 20,
    }
}

fn egress() -> Egress {
    Egress::new(egress_config()).unwrap()
}

/// Never prints the response: its body may legitimately echo a secret.
fn ok(r: Result<FetchResponse, FetchError>) -> FetchResponse {
    match r {
        Ok(r) => r,
        Err(e) => panic!("fetch failed: {e}"),
    }
}

fn err(r: Result<FetchResponse, FetchError>) -> FetchError {
    match r {
        Ok(r) => panic!("fetch should fail, got status {}", r.status),
        Err(e) => e,
    }
}

/// The invariant: nothing JS or the logs get holds a secret. Bodies are checked separately where the
/// test says they must be clean (they are the upstream's business otherwise).
fn assert_clean(result: &Result<FetchResponse, FetchError>, record: &FetchRecord) {
    let record_json = serde_json::to_vec(record).unwrap();
    for s in ALL {
        match result {
            Ok(r) => {
                assert_no_secret(r.url.as_bytes(), s, "Response.url");
                for (n, v) in &r.headers {
                    assert_no_secret(format!("{n}: {v}").as_bytes(), s, "a response header");
                }
                assert_no_secret(r.status_text.as_bytes(), s, "status text");
            }
            Err(e) => assert_no_secret(e.to_string().as_bytes(), s, "the error message"),
        }
        assert_no_secret(&record_json, s, "the FetchRecord");
        assert_no_secret(
            format!("{record:?}").as_bytes(),
            s,
            "the FetchRecord (Debug)",
        );
    }
    assert!(!record.path.contains('?'), "record path has a query");
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("echo body is JSON")
}

// ---------------------------------------------------------------------------------------------------
// Injection

#[tokio::test]
async fn header_injection_replaces_every_js_header_of_that_name() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let req = with_headers(
        get(&server.url("api.test", "/v1/x?q=1")),
        &[
            ("Authorization", "Bearer js-one"),
            ("authorization", "Bearer js-two"),
            ("X-Other", "kept"),
        ],
    );
    let (res, record) = egress().fetch(&[c], req, &limits()).await;
    assert_clean(&res, &record);
    let res = ok(res);
    assert_eq!(res.status, 200);
    assert_eq!(res.url, server.url("api.test", "/v1/x?q=1"));
    let seen = &server.requests()[0];
    assert_eq!(seen.header_all("authorization").len(), 1);
    assert!(
        seen.header("authorization") == Some(&format!("Bearer {SECRET_A}")[..]),
        "injected header"
    );
    assert_eq!(seen.header("x-other"), Some("kept"));
    assert_eq!(seen.uri, "/v1/x?q=1");
    assert_eq!(record.connector.as_deref(), Some("a"));
    assert_eq!(record.host, "api.test");
    assert_eq!(record.path, "/v1/x");
    assert_eq!(record.status, Some(200));
    assert!(!record.blocked && record.error.is_none());
}

#[tokio::test]
async fn query_injection_replaces_js_params_and_is_hidden_from_response_url() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "q",
        &[server.pattern("api.test")],
        query("api_key"),
        SECRET_A,
        false,
    );
    let req = get(&server.url(
        "api.test",
        "/v1/x?a=1&api_key=from-js&b=%20two&api_key=again",
    ));
    let (res, record) = egress().fetch(&[c], req, &limits()).await;
    assert_clean(&res, &record);
    let res = ok(res);
    assert_eq!(res.url, server.url("api.test", "/v1/x?a=1&b=%20two"));
    let seen = &server.requests()[0];
    let pairs = seen.query_pairs();
    let keys: Vec<_> = pairs.iter().filter(|(k, _)| k == "api_key").collect();
    assert_eq!(keys.len(), 1, "exactly one api_key reaches upstream");
    assert!(keys[0].1 == SECRET_A, "it is the secret");
    assert!(
        seen.uri.starts_with("/v1/x?a=1&b=%20two&api_key="),
        "JS params keep their bytes"
    );
}

#[tokio::test]
async fn secret_with_reserved_characters_is_percent_encoded_in_query() {
    let server = TestServer::start(Reply::echo);
    let secret = "sk&x=1#frag ?/+";
    let c = connector(
        "q",
        &[server.pattern("api.test")],
        query("key"),
        secret,
        false,
    );
    let (res, record) = egress()
        .fetch(&[c], get(&server.url("api.test", "/")), &limits())
        .await;
    assert_no_secret(
        serde_json::to_vec(&record).unwrap().as_slice(),
        secret,
        "record",
    );
    let res = ok(res);
    assert_no_secret(res.url.as_bytes(), secret, "Response.url");
    let seen = &server.requests()[0];
    assert_eq!(
        seen.query_pairs(),
        vec![("key".to_string(), secret.to_string())]
    );
}

#[tokio::test]
async fn first_listed_connector_wins() {
    let server = TestServer::start(Reply::echo);
    let a = connector(
        "a",
        &[server.pattern("api.test")],
        header("X-Key-A"),
        SECRET_A,
        false,
    );
    let b = connector(
        "b",
        &[server.url("api.test", "/v1/*")],
        header("X-Key-B"),
        SECRET_B,
        false,
    );
    let e = egress();

    let (res, record) = e
        .fetch(
            &[a.clone(), b.clone()],
            get(&server.url("api.test", "/v1/x")),
            &limits(),
        )
        .await;
    assert_clean(&res, &record);
    ok(res);
    assert_eq!(record.connector.as_deref(), Some("a"));
    let (res, record) = e
        .fetch(&[b, a], get(&server.url("api.test", "/v1/x")), &limits())
        .await;
    assert_clean(&res, &record);
    ok(res);
    assert_eq!(record.connector.as_deref(), Some("b"));

    let seen = server.requests();
    assert!(seen[0].header("x-key-a").is_some() && seen[0].header("x-key-b").is_none());
    assert!(
        !seen[0].contains(SECRET_B),
        "only the winner's secret is sent"
    );
    assert!(seen[1].header("x-key-b").is_some() && seen[1].header("x-key-a").is_none());
    assert!(
        !seen[1].contains(SECRET_A),
        "only the winner's secret is sent"
    );
}

#[tokio::test]
async fn wildcard_connector_covers_subdomains() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "w",
        &[server.url("*.wild.test", "/")],
        bearer(),
        SECRET_A,
        false,
    );
    let e = egress();
    for host in ["a.wild.test", "b.c.wild.test"] {
        let (res, record) = e
            .fetch(
                std::slice::from_ref(&c),
                get(&server.url(host, "/x")),
                &limits(),
            )
            .await;
        assert_clean(&res, &record);
        ok(res);
    }
    assert_eq!(server.requests().len(), 2);
    assert_eq!(server.requests()[1].sni.as_deref(), Some("b.c.wild.test"));
}

// ---------------------------------------------------------------------------------------------------
// Blocking

#[tokio::test]
async fn unmatched_requests_are_blocked_and_never_reach_the_server() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "a",
        &[server.url("api.test", "/v1/*")],
        query("key"),
        SECRET_A,
        false,
    );
    let e = egress();
    let port = server.port();
    let cases = [
        (server.url("evil.test", "/x?token=abc"), "evil.test"),
        (server.url("api.test", "/v1?token=abc"), "api.test"),
        (server.url("api.test", "/v1evil"), "api.test"),
        (server.url("api.test", "/v2/x"), "api.test"),
        (format!("https://api.test:{}/v1/x", port + 1), "api.test"),
        (format!("http://api.test:{port}/v1/x"), "api.test"),
        (format!("https://127.0.0.1:{port}/v1/x"), "127.0.0.1"),
        (format!("https://[::1]:{port}/v1/x"), "[::1]"),
        (format!("https://0x7f000001:{port}/v1/x"), "127.0.0.1"),
        (format!("https://alice:pw@api.test:{port}/v1/x"), "api.test"),
        (server.url("api.test", "/v1/%2e%2e/admin"), "api.test"),
        (server.url("api.test", "/v1/a%2fb"), "api.test"),
        (server.url("api.test", "/v1/a%5Cb"), "api.test"),
        (server.url("api.test", "/v1/../admin"), "api.test"),
    ];
    for (url, host) in cases {
        let (res, record) = e
            .fetch(std::slice::from_ref(&c), get(&url), &limits())
            .await;
        assert_clean(&res, &record);
        let error = err(res);
        let msg = error.to_string();
        assert!(matches!(error, FetchError::Blocked(_)), "{url}: {msg}");
        assert!(
            msg.starts_with(&format!("fetch to {host} blocked: ")),
            "{url}: {msg}"
        );
        assert!(
            !msg.contains("token") && !msg.contains('?'),
            "{url}: message has the query: {msg}"
        );
        assert!(
            !msg.contains("alice") && !msg.contains("pw@"),
            "{url}: message has userinfo: {msg}"
        );
        assert!(record.blocked, "{url}");
        assert_eq!(record.error.as_deref(), Some("blocked"));
        assert_eq!(record.connector, None);
        assert_eq!(record.status, None);
    }
    assert_eq!(
        server.requests().len(),
        0,
        "a blocked request reached the server"
    );

    let (res, _) = e
        .fetch(
            &[c],
            get(&server.url("evil.test", "/x?token=abc")),
            &limits(),
        )
        .await;
    assert_eq!(
        err(res).to_string(),
        format!("fetch to evil.test blocked: no connector allows https://evil.test:{port}/x")
    );
}

#[tokio::test]
async fn no_connectors_means_nothing_is_allowed() {
    let server = TestServer::start(Reply::echo);
    let (res, record) = egress()
        .fetch(&[], get(&server.url("api.test", "/")), &limits())
        .await;
    assert!(matches!(err(res), FetchError::Blocked(_)));
    assert!(record.blocked);
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------------
// Headers and cookies

#[tokio::test]
async fn cookies_are_stripped_both_ways_and_never_stored() {
    let server = TestServer::start(|req| {
        Reply::echo(req)
            .header("set-cookie", "session=abc; Path=/")
            .header("Set-Cookie2", "old=1")
            .header("x-kept", "yes")
    });
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let e = egress();
    for _ in 0..2 {
        let req = with_headers(
            get(&server.url("api.test", "/")),
            &[("Cookie", "js=1"), ("cookie2", "x")],
        );
        let (res, record) = e.fetch(std::slice::from_ref(&c), req, &limits()).await;
        assert_clean(&res, &record);
        let res = ok(res);
        assert!(res
            .headers
            .iter()
            .all(|(n, _)| n != "set-cookie" && n != "set-cookie2"));
        assert!(res.headers.iter().any(|(n, v)| n == "x-kept" && v == "yes"));
    }
    for seen in server.requests() {
        assert_eq!(seen.header("cookie"), None);
        assert_eq!(seen.header("cookie2"), None);
    }
}

#[tokio::test]
async fn forbidden_request_headers_are_stripped() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let mut req = with_headers(
        get(&server.url("api.test", "/")),
        &[
            ("Host", "evil.test"),
            ("Proxy-Authorization", "Basic eA=="),
            ("Proxy-Foo", "1"),
            ("Connection", "x-secret-hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Content-Length", "999"),
            ("Content-Type", "text/plain"),
        ],
    );
    req.method = "POST".into();
    req.body = Some(b"hello".to_vec());
    let (res, record) = egress().fetch(&[c], req, &limits()).await;
    assert_clean(&res, &record);
    ok(res);
    let seen = &server.requests()[0];
    assert_eq!(seen.host, "api.test");
    assert_eq!(seen.header_all("host").len(), 1);
    for h in [
        "proxy-authorization",
        "proxy-foo",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "x-secret-hop",
    ] {
        assert_eq!(seen.header(h), None, "{h} reached upstream");
    }
    assert_ne!(seen.header("connection"), Some("x-secret-hop"));
    assert_eq!(
        seen.header("content-length"),
        Some("5"),
        "computed, not JS's"
    );
    assert_eq!(seen.header("content-type"), Some("text/plain"));
    assert_eq!(seen.body, b"hello");
    assert_eq!(seen.sni.as_deref(), Some("api.test"), "SNI keeps the name");
}

#[tokio::test]
async fn invalid_headers_and_methods_are_refused_before_sending() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let e = egress();
    let bad = [
        with_headers(
            get(&server.url("api.test", "/")),
            &[("X-A", "v\r\nX-Injected: 1")],
        ),
        with_headers(get(&server.url("api.test", "/")), &[("Bad Name", "v")]),
        FetchRequest {
            method: "CONNECT".into(),
            ..get(&server.url("api.test", "/"))
        },
        FetchRequest {
            method: "GE T".into(),
            ..get(&server.url("api.test", "/"))
        },
        FetchRequest {
            body: Some(b"x".to_vec()),
            ..get(&server.url("api.test", "/"))
        },
        get("not a url"),
    ];
    for req in bad {
        let (res, record) = e.fetch(std::slice::from_ref(&c), req, &limits()).await;
        assert_clean(&res, &record);
        assert!(matches!(err(res), FetchError::InvalidRequest(_)));
        assert_eq!(record.error.as_deref(), Some("invalid_request"));
    }
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------------
// Redirects

/// Routes by host and path so one server can play several hosts.
fn redirecting(routes: Vec<(&'static str, &'static str, Reply)>) -> TestServer {
    TestServer::start(move |req| {
        routes
            .iter()
            .find(|(h, p, _)| *h == req.host && *p == req.path)
            .map(|(_, _, r)| r.clone())
            .unwrap_or_else(|| Reply::echo(req))
    })
}

#[tokio::test]
async fn follow_reinjects_on_each_hop_of_the_same_connector() {
    let server = redirecting(vec![(
        "api.test",
        "/start",
        Reply::redirect(302, "/next?page=2"),
    )]);
    let c = connector(
        "q",
        &[server.pattern("api.test")],
        query("key"),
        SECRET_A,
        false,
    );
    let (res, record) = egress()
        .fetch(
            &[c],
            get(&server.url("api.test", "/start?page=1")),
            &limits(),
        )
        .await;
    assert_clean(&res, &record);
    let res = ok(res);
    assert!(res.redirected);
    assert_eq!(res.url, server.url("api.test", "/next?page=2"));
    assert_eq!(record.redirects, 1);
    assert_eq!(record.path, "/next");
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(
            s.query_pairs()
                .iter()
                .filter(|(k, v)| k == "key" && v == SECRET_A)
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn redirect_to_an_unmatched_host_is_blocked_like_a_direct_request() {
    let server = TestServer::start(|req| match req.host.as_str() {
        "api.test" => Reply::redirect(302, &format!("https://evil.test:{}/steal?x=1", req.port)),
        _ => Reply::echo(req),
    });
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let req = get(&server.url("api.test", "/"));
    let e = egress();
    let (res, record) = e.fetch(std::slice::from_ref(&c), req, &limits()).await;
    assert_clean(&res, &record);
    let hop_error = err(res);
    let (direct, _) = e
        .fetch(&[c], get(&server.url("evil.test", "/steal?x=1")), &limits())
        .await;
    assert_eq!(hop_error, err(direct), "same error as a direct request");
    assert!(record.blocked);
    assert_eq!(record.host, "evil.test");
    assert_eq!(record.status, None, "the record describes the blocked hop");
    assert_eq!(record.redirects, 1);
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "the blocked hop never reached the server");
    assert!(seen.iter().all(|s| s.host != "evil.test"));
}

#[tokio::test]
async fn redirect_to_an_unmatched_path_is_blocked() {
    let server = redirecting(vec![("api.test", "/v1/x", Reply::redirect(301, "/admin"))]);
    let c = connector(
        "a",
        &[server.url("api.test", "/v1/*")],
        bearer(),
        SECRET_A,
        false,
    );
    let (res, record) = egress()
        .fetch(&[c], get(&server.url("api.test", "/v1/x")), &limits())
        .await;
    assert_clean(&res, &record);
    assert!(matches!(err(res), FetchError::Blocked(_)));
    assert_eq!(server.requests().len(), 1);
    assert!(server.requests().iter().all(|s| s.path != "/admin"));
}

#[tokio::test]
async fn nothing_injected_earlier_is_carried_to_another_connector() {
    // Header connector on api.test redirects to other.test, which uses a query connector.
    let server = TestServer::start(|req| match req.host.as_str() {
        "api.test" => Reply::redirect(302, &format!("https://other.test:{}/land", req.port)),
        _ => Reply::echo(req),
    });
    let a = connector(
        "a",
        &[server.pattern("api.test")],
        header("X-Key"),
        SECRET_A,
        false,
    );
    let b = connector(
        "b",
        &[server.pattern("other.test")],
        query("key"),
        SECRET_B,
        false,
    );
    let req = get(&server.url("api.test", "/"));
    let (res, record) = egress().fetch(&[a, b], req, &limits()).await;
    assert_clean(&res, &record);
    let res = ok(res);
    assert_eq!(record.connector.as_deref(), Some("b"));
    assert_eq!(res.url, server.url("other.test", "/land"));
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].contains(SECRET_A) && !seen[0].contains(SECRET_B));
    assert!(
        !seen[1].contains(SECRET_A),
        "connector a's secret was carried to other.test"
    );
    assert_eq!(seen[1].header("x-key"), None);
    assert!(seen[1].contains(SECRET_B));
    assert_no_secret(&res.body, SECRET_A, "the echoed body");
}

#[tokio::test]
async fn echoed_query_secret_in_location_is_not_carried_over() {
    // api.test (query connector) redirects to other.test and echoes its whole query, secret included.
    let server = TestServer::start(|req| match req.host.as_str() {
        "api.test" => Reply::redirect(
            307,
            &format!(
                "https://other.test:{}/land?{}",
                req.port,
                req.query.clone().unwrap_or_default()
            ),
        ),
        _ => Reply::echo(req),
    });
    let a = connector(
        "a",
        &[server.pattern("api.test")],
        query("key"),
        SECRET_A,
        false,
    );
    let b = connector(
        "b",
        &[server.pattern("other.test")],
        bearer(),
        SECRET_B,
        false,
    );
    let req = get(&server.url("api.test", "/?x=1"));
    let (res, record) = egress().fetch(&[a, b], req, &limits()).await;
    assert_clean(&res, &record);
    let res = ok(res);
    assert_eq!(res.url, server.url("other.test", "/land?x=1"));
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert!(!seen[1].contains(SECRET_A), "secret a reached other.test");
    assert_no_secret(&res.body, SECRET_A, "the echoed body");
}

#[tokio::test]
async fn location_carrying_a_secret_elsewhere_is_refused() {
    // The upstream moves the secret into the path of the next hop: following would carry it over.
    let server = TestServer::start(|req| match req.host.as_str() {
        "api.test" => {
            let key = req
                .query_pairs()
                .into_iter()
                .find(|(k, _)| k == "key")
                .unwrap()
                .1;
            Reply::redirect(302, &format!("https://other.test:{}/k/{key}", req.port))
        }
        _ => Reply::echo(req),
    });
    let a = connector(
        "a",
        &[server.pattern("api.test")],
        query("key"),
        SECRET_A,
        false,
    );
    let b = connector(
        "b",
        &[server.pattern("other.test")],
        bearer(),
        SECRET_B,
        false,
    );
    let req = get(&server.url("api.test", "/"));
    let (res, record) = egress().fetch(&[a, b], req, &limits()).await;
    assert_clean(&res, &record);
    assert!(matches!(err(res), FetchError::RedirectRefused(_)));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn js_credential_headers_are_dropped_when_the_origin_changes() {
    let server = TestServer::start(|req| match (req.host.as_str(), req.path.as_str()) {
        ("api.test", "/same") => Reply::redirect(302, "/after"),
        ("api.test", "/cross") => {
            Reply::redirect(302, &format!("https://other.test:{}/land", req.port))
        }
        ("other.test", "/land") => {
            Reply::redirect(302, &format!("https://api.test:{}/back", req.port))
        }
        _ => Reply::echo(req),
    });
    // Query connectors, so the headers below are JS's own; X-Key is another connector's header name.
    let a = connector(
        "a",
        &[server.pattern("api.test")],
        query("key"),
        SECRET_A,
        false,
    );
    let b = connector(
        "b",
        &[server.pattern("other.test")],
        query("key"),
        SECRET_B,
        false,
    );
    let c = connector(
        "c",
        &["https://elsewhere.example/*".to_string()],
        header("X-Key"),
        "unused",
        false,
    );
    let e = egress();
    let js = |path: &str| {
        with_headers(
            get(&server.url("api.test", path)),
            &[
                ("Authorization", "Bearer js-token"),
                ("X-Key", "js-key"),
                ("X-Port", &server.port().to_string()),
                ("X-Plain", "p"),
            ],
        )
    };

    let (res, record) = e
        .fetch(&[a.clone(), b.clone(), c.clone()], js("/same"), &limits())
        .await;
    assert_clean(&res, &record);
    ok(res);
    let seen = server.requests();
    assert_eq!(seen[1].path, "/after");
    assert_eq!(
        seen[1].header("authorization"),
        Some("Bearer js-token"),
        "same origin keeps them"
    );
    assert_eq!(seen[1].header("x-key"), Some("js-key"));

    let (res, record) = e.fetch(&[a, b, c], js("/cross"), &limits()).await;
    assert_clean(&res, &record);
    ok(res);
    let seen = server.requests();
    assert_eq!(seen.len(), 5);
    for hop in &seen[3..] {
        assert_eq!(
            hop.header("authorization"),
            None,
            "{} {}",
            hop.host,
            hop.path
        );
        assert_eq!(hop.header("x-key"), None, "{} {}", hop.host, hop.path);
        assert_eq!(hop.header("x-plain"), Some("p"));
    }
    assert_eq!(
        seen[4].host, "api.test",
        "dropped for good, even back at the first origin"
    );
}

#[tokio::test]
async fn https_to_http_redirect_is_refused() {
    let plain = TestServer::start_http(Reply::echo);
    let plain_url = plain.url("api.test", "/plain");
    let server = TestServer::start(move |_| Reply::redirect(302, &plain_url));
    let c = connector(
        "a",
        &[
            server.pattern("api.test"),
            format!("https://api.test:{}/*", plain.port()),
        ],
        bearer(),
        SECRET_A,
        false,
    );
    let (res, record) = egress()
        .fetch(&[c], get(&server.url("api.test", "/")), &limits())
        .await;
    assert_clean(&res, &record);
    let e = err(res);
    assert!(matches!(e, FetchError::RedirectRefused(_)), "{e}");
    assert_eq!(record.error.as_deref(), Some("redirect_refused"));
    assert!(
        plain.requests().is_empty(),
        "the plain-HTTP server was reached"
    );
}

#[tokio::test]
async fn method_and_body_rewrites_follow_fetch() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/s301" => Reply::redirect(301, "/done"),
        "/s302" => Reply::redirect(302, "/done"),
        "/s303" => Reply::redirect(303, "/done"),
        "/s307" => Reply::redirect(307, "/done"),
        "/s308" => Reply::redirect(308, "/done"),
        _ => Reply::echo(req),
    });
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let e = egress();
    let cases = [
        ("POST", 301, "GET", false),
        ("POST", 302, "GET", false),
        ("PUT", 302, "PUT", true),
        ("POST", 303, "GET", false),
        ("PUT", 303, "GET", false),
        ("POST", 307, "POST", true),
        ("PUT", 308, "PUT", true),
    ];
    for (method, status, want_method, keeps_body) in cases {
        let req = FetchRequest {
            method: method.into(),
            body: Some(b"payload".to_vec()),
            ..with_headers(
                get(&server.url("api.test", &format!("/s{status}"))),
                &[("Content-Type", "text/plain"), ("Content-Language", "en")],
            )
        };
        let (res, record) = e.fetch(std::slice::from_ref(&c), req, &limits()).await;
        assert_clean(&res, &record);
        ok(res);
        let seen = server.requests();
        let hop = seen.last().unwrap();
        assert_eq!(hop.path, "/done");
        assert_eq!(hop.method, want_method, "{method} {status}");
        if keeps_body {
            assert_eq!(hop.body, b"payload", "{method} {status}");
            assert_eq!(hop.header("content-type"), Some("text/plain"));
        } else {
            assert!(hop.body.is_empty(), "{method} {status}");
            assert_eq!(hop.header("content-type"), None, "{method} {status}");
            assert_eq!(hop.header("content-language"), None);
        }
        assert!(hop.contains(SECRET_A), "re-injected on the hop");
    }
}

#[tokio::test]
async fn manual_mode_hands_the_redirect_to_js_without_the_secret() {
    // The upstream echoes the full request query, injected key included, into Location.
    let server = TestServer::start(|req| {
        Reply::redirect(
            302,
            &format!("/next?{}", req.query.clone().unwrap_or_default()),
        )
        .header("x-echo", req.query.as_deref().unwrap_or(""))
    });
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        query("key"),
        SECRET_A,
        false,
    );
    let req = FetchRequest {
        redirect: RedirectMode::Manual,
        ..get(&server.url("api.test", "/start?x=1"))
    };
    let (res, record) = egress().fetch(&[c], req, &limits()).await;
    assert_clean(&res, &record);
    let res = ok(res);
    assert_eq!(res.status, 302);
    assert!(!res.redirected);
    assert_eq!(res.url, server.url("api.test", "/start?x=1"));
    let location = res
        .headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone());
    assert_eq!(location, Some(server.url("api.test", "/next?x=1")));
    assert!(res
        .headers
        .iter()
        .any(|(n, v)| n == "x-echo" && v.contains("[redacted]")));
    assert_eq!(server.requests().len(), 1, "manual mode does not follow");
    assert_eq!(record.status, Some(302));
}

#[tokio::test]
async fn error_mode_rejects_redirects() {
    let server = redirecting(vec![("api.test", "/r", Reply::redirect(302, "/x"))]);
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let req = FetchRequest {
        redirect: RedirectMode::Error,
        ..get(&server.url("api.test", "/r"))
    };
    let (res, record) = egress().fetch(&[c], req, &limits()).await;
    assert_clean(&res, &record);
    assert!(matches!(err(res), FetchError::RedirectRefused(_)));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn at_most_ten_redirects_are_followed() {
    // /{chain}/N redirects to /{chain}/N+1; only /ten/10 answers, so "ten" needs exactly 10 redirects
    // and "loop" never ends.
    let server = TestServer::start(|req| {
        let n: u32 = req.path.rsplit('/').next().unwrap().parse().unwrap_or(0);
        if req.path.starts_with("/ten/") && n == 10 {
            return Reply::ok("landed");
        }
        let prefix = req.path.rsplit_once('/').unwrap().0.to_string();
        Reply::redirect(302, &format!("{prefix}/{}", n + 1))
    });
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let e = egress();

    let (res, record) = e
        .fetch(
            std::slice::from_ref(&c),
            get(&server.url("api.test", "/ten/0")),
            &limits(),
        )
        .await;
    assert_clean(&res, &record);
    assert_eq!(ok(res).body, b"landed");
    assert_eq!(record.redirects, 10);

    let (res, record) = e
        .fetch(&[c], get(&server.url("api.test", "/loop/0")), &limits())
        .await;
    assert_clean(&res, &record);
    assert!(matches!(err(res), FetchError::RedirectRefused(_)));
    let loop_hops = server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/loop/"))
        .count();
    assert_eq!(loop_hops, 11, "the first request and 10 redirects");
}

// ---------------------------------------------------------------------------------------------------
// Network: SSRF guard, TLS trust, proxies

#[tokio::test]
async fn ssrf_guard_blocks_loopback_unless_allowed() {
    let server = TestServer::start(Reply::echo);
    let strict = Egress::new(EgressConfig {
        allow_private: vec![],
        ..egress_config()
    })
    .unwrap();
    // Through the --resolve map...
    let c = connector(
        "a",
        &[server.pattern("api.test"), server.pattern("localhost")],
        bearer(),
        SECRET_A,
        false,
    );
    let (res, record) = strict
        .fetch(
            std::slice::from_ref(&c),
            get(&server.url("api.test", "/?q=1")),
            &limits(),
        )
        .await;
    assert_clean(&res, &record);
    let e = err(res);
    let msg = e.to_string();
    assert!(matches!(e, FetchError::Blocked(_)), "{msg}");
    assert!(
        msg.contains("api.test") && msg.contains("non-public address"),
        "{msg}"
    );
    assert!(!msg.contains("q=1"));
    assert!(record.blocked);
    // ...and through real DNS.
    let (res, record) = strict
        .fetch(
            std::slice::from_ref(&c),
            get(&server.url("localhost", "/")),
            &limits(),
        )
        .await;
    assert_clean(&res, &record);
    assert!(matches!(err(res), FetchError::Blocked(_)));
    assert!(server.requests().is_empty());

    // Allowing 127.0.0.1/32 lets the same request through, to the checked address, with the name kept.
    let (res, record) = egress()
        .fetch(&[c], get(&server.url("localhost", "/")), &limits())
        .await;
    assert_clean(&res, &record);
    ok(res);
    assert_eq!(server.requests()[0].sni.as_deref(), Some("localhost"));
}

#[tokio::test]
async fn ssrf_guard_checks_every_resolved_address() {
    let server = TestServer::start(Reply::echo);
    let mut cfg = egress_config();
    cfg.resolve.insert(
        "api.test".into(),
        vec![
            "127.0.0.1".parse().unwrap(),
            "169.254.169.254".parse().unwrap(),
        ],
    );
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let (res, record) = Egress::new(cfg)
        .unwrap()
        .fetch(&[c], get(&server.url("api.test", "/")), &limits())
        .await;
    assert_clean(&res, &record);
    assert!(matches!(err(res), FetchError::Blocked(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn untrusted_certificates_are_refused_without_leaking_the_url() {
    let server = TestServer::start(Reply::echo);
    let no_ca = Egress::new(EgressConfig {
        extra_ca_pem: vec![],
        ..egress_config()
    })
    .unwrap();
    let c = connector(
        "q",
        &[server.pattern("api.test")],
        query("key"),
        SECRET_A,
        false,
    );
    let (res, record) = no_ca
        .fetch(&[c], get(&server.url("api.test", "/?q=visible")), &limits())
        .await;
    assert_clean(&res, &record);
    let e = err(res);
    let msg = e.to_string();
    assert!(matches!(e, FetchError::Network(_)), "{msg}");
    assert_eq!(record.error.as_deref(), Some("network_error"));
    assert!(
        msg.contains("api.test") && !msg.contains("visible") && !msg.contains("key="),
        "{msg}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn connection_errors_are_network_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = connector(
        "q",
        &[format!("https://api.test:{port}/*")],
        query("key"),
        SECRET_A,
        false,
    );
    let (res, record) = egress()
        .fetch(
            &[c],
            get(&format!("https://api.test:{port}/?q=hidden")),
            &limits(),
        )
        .await;
    assert_clean(&res, &record);
    let msg = err(res).to_string();
    assert!(
        msg.starts_with("error sending request to api.test") && !msg.contains("hidden"),
        "{msg}"
    );
}

/// Runs in a child process with proxy variables set, so setting them cannot race other tests.
#[tokio::test]
async fn environment_proxies_are_ignored() {
    if std::env::var_os("CODESTEP_PROXY_CHILD").is_some() {
        // Child: the proxy below does not exist, so going through it would fail.
        let server = TestServer::start(Reply::echo);
        let c = connector(
            "a",
            &[server.pattern("api.test")],
            bearer(),
            SECRET_A,
            false,
        );
        let (res, _) = egress()
            .fetch(&[c], get(&server.url("api.test", "/")), &limits())
            .await;
        ok(res);
        assert_eq!(server.requests().len(), 1);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "egress::environment_proxies_are_ignored",
            "--exact",
            "--test-threads=1",
        ])
        .env("CODESTEP_PROXY_CHILD", "1")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .env("all_proxy", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(
        stdout.contains("1 passed"),
        "child did not run the test: {stdout}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn request_body_over_the_cap_is_refused_before_sending() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let lim = RequestLimits {
        max_request_body: 100,
        ..limits()
    };
    let e = egress();
    let post = |n: usize| FetchRequest {
        method: "POST".into(),
        body: Some(vec![b'x'; n]),
        ..get(&server.url("api.test", "/"))
    };
    let (res, record) = e.fetch(std::slice::from_ref(&c), post(101), &lim).await;
    assert_clean(&res, &record);
    assert_eq!(err(res), FetchError::RequestBodyTooLarge);
    assert_eq!(record.error.as_deref(), Some("limit"));
    assert!(server.requests().is_empty());
    let (res, _) = e.fetch(&[c], post(100), &lim).await;
    ok(res);
}

#[tokio::test]
async fn response_body_over_the_cap_is_refused() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/big" => Reply::ok(vec![b'x'; 5000]),
        "/exact" => Reply::ok(vec![b'x'; 1000]),
        "/chunked" => Reply::chunked(vec![b'y'; 300], 10),
        _ => Reply::chunked(vec![b'z'; 250], 4),
    });
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let lim = RequestLimits {
        max_response_body: 1000,
        ..limits()
    };
    let e = egress();
    for path in ["/big", "/chunked"] {
        let (res, record) = e
            .fetch(
                std::slice::from_ref(&c),
                get(&server.url("api.test", path)),
                &lim,
            )
            .await;
        assert_clean(&res, &record);
        assert_eq!(err(res), FetchError::ResponseBodyTooLarge, "{path}");
        assert_eq!(record.error.as_deref(), Some("limit"));
    }
    for path in ["/exact", "/chunked-fits"] {
        let (res, _) = e
            .fetch(
                std::slice::from_ref(&c),
                get(&server.url("api.test", path)),
                &lim,
            )
            .await;
        assert_eq!(ok(res).body.len(), 1000, "{path}");
    }
}

#[tokio::test]
async fn slow_upstreams_time_out() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/slow-body" => Reply {
            body: crate::support::ReplyBody::Chunked {
                chunk: b"x".to_vec(),
                count: 100,
                interval: Some(Duration::from_millis(100)),
            },
            ..Reply::status(200)
        },
        _ => Reply::ok("late").delay(Duration::from_secs(5)),
    });
    let c = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let lim = RequestLimits {
        timeout: Duration::from_millis(400),
        ..limits()
    };
    let e = egress();
    for path in ["/slow-head", "/slow-body"] {
        let started = Instant::now();
        let (res, record) = e
            .fetch(
                std::slice::from_ref(&c),
                get(&server.url("api.test", path)),
                &lim,
            )
            .await;
        assert_clean(&res, &record);
        assert_eq!(err(res), FetchError::Timeout, "{path}");
        assert_eq!(record.error.as_deref(), Some("timeout"));
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Echo scrubbing

#[tokio::test]
async fn echo_scrubbing_replaces_the_secret_when_enabled() {
    let server = TestServer::start(|req| {
        Reply::echo(req).header("x-echo-auth", req.header("authorization").unwrap_or(""))
    });
    let e = egress();
    let scrubbed = connector("a", &[server.pattern("api.test")], bearer(), SECRET_A, true);
    let (res, record) = e
        .fetch(&[scrubbed], get(&server.url("api.test", "/")), &limits())
        .await;
    assert_clean(&res, &record);
    let res = ok(res);
    assert_no_secret(&res.body, SECRET_A, "the scrubbed body");
    assert!(String::from_utf8_lossy(&res.body).contains("[redacted]"));
    assert!(res
        .headers
        .iter()
        .any(|(n, v)| n == "x-echo-auth" && v == "[redacted]"));

    // Without scrub_echo the body is the upstream's business; headers are still scrubbed.
    let plain = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    let (res, record) = e
        .fetch(&[plain], get(&server.url("api.test", "/")), &limits())
        .await;
    assert_clean(&res, &record);
    let res = ok(res);
    let body = json(&res.body);
    assert!(
        body["headers"].to_string().contains(SECRET_A),
        "unscrubbed echo (documented)"
    );
}

#[tokio::test]
async fn range_requests_are_not_sent_to_scrubbed_connectors() {
    // With Range a step could fetch an echo in pieces that each miss the exact-match scrubber.
    let server = TestServer::start(|_| Reply::ok("ok"));
    let e = egress();
    let scrubbed = connector("a", &[server.pattern("api.test")], bearer(), SECRET_A, true);
    let req = with_headers(
        get(&server.url("api.test", "/")),
        &[("Range", "bytes=0-10"), ("If-Range", "\"x\"")],
    );
    ok(e.fetch(&[scrubbed], req.clone(), &limits()).await.0);
    let plain = connector(
        "a",
        &[server.pattern("api.test")],
        bearer(),
        SECRET_A,
        false,
    );
    ok(e.fetch(&[plain], req, &limits()).await.0);
    let seen = server.requests();
    assert_eq!(
        (seen[0].header("range"), seen[0].header("if-range")),
        (None, None)
    );
    assert_eq!(
        seen[1].header("range"),
        Some("bytes=0-10"),
        "other connectors keep Range"
    );
}
