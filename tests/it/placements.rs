//! Named secrets, the placements (several headers, basic, query, path, aws_sigv4), `remove_headers`,
//! `methods` and the built-in presets, against real local HTTPS servers. Each hostile case checks that
//! the secrets stay out of what JS gets (`Response.url`, headers, error messages) and out of the
//! record. Secrets are compared by `==` inside `assert!`, never printed.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use codestep::connector::{preset, presets, Connector, ConnectorSpec, Placement, Secret, Secrets};
use codestep::egress::{
    Egress, FetchError, FetchRecord, FetchRequest, FetchResponse, RedirectMode, RequestLimits,
};

use crate::support::{assert_no_secret, egress_config, RecordedRequest, Reply, TestServer};

fn secrets(list: &[(&str, &str)]) -> Secrets {
    let mut s = Secrets::new();
    for (n, v) in list {
        s.insert(n, Secret::new(v.to_string()));
    }
    s
}

fn connector(name: &str, patterns: &[String], placement: Placement, set: &Secrets) -> Connector {
    connector_scrub(name, patterns, placement, set, false)
}

fn connector_scrub(
    name: &str,
    patterns: &[String],
    placement: Placement,
    set: &Secrets,
    scrub_echo: bool,
) -> Connector {
    ConnectorSpec {
        name: name.into(),
        patterns: patterns.to_vec(),
        placement,
        scrub_echo,
    }
    .validate(set.clone())
    .unwrap_or_else(|e| panic!("{e}"))
}

fn json_placement(text: &str) -> Placement {
    serde_json::from_str(text).unwrap()
}

fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> FetchRequest {
    FetchRequest {
        method: method.into(),
        url: url.into(),
        headers: headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        body: body.map(|b| b.to_vec()),
        redirect: RedirectMode::Follow,
    }
}

fn limits() -> RequestLimits {
    RequestLimits {
        timeout: Duration::from_secs(10),
        max_request_body: 1 << 20,
        max_response_body: 1 << 20,
    }
}

async fn fetch(
    connectors: &[Connector],
    req: FetchRequest,
) -> (Result<FetchResponse, FetchError>, FetchRecord) {
    Egress::new(egress_config())
        .unwrap()
        .fetch(connectors, req, &limits())
        .await
}

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

/// Nothing JS or the logs get holds any of `secrets` (bodies are checked where a test says so).
fn assert_clean(result: &Result<FetchResponse, FetchError>, record: &FetchRecord, all: &[&str]) {
    let record_json = serde_json::to_vec(record).unwrap();
    for s in all {
        match result {
            Ok(r) => {
                assert_no_secret(r.url.as_bytes(), s, "Response.url");
                for (n, v) in &r.headers {
                    assert_no_secret(format!("{n}: {v}").as_bytes(), s, "a response header");
                }
            }
            Err(e) => assert_no_secret(e.to_string().as_bytes(), s, "the error message"),
        }
        assert_no_secret(&record_json, s, "the FetchRecord");
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `https://host/…` → `https://host:PORT/…`: the resolver maps names only, the port comes from the URL.
fn with_port(pattern: &str, port: u16) -> String {
    let start = pattern.find("://").unwrap() + 3;
    let end = pattern[start..]
        .find('/')
        .map_or(pattern.len(), |i| start + i);
    format!("{}:{port}{}", &pattern[..end], &pattern[end..])
}

/// What botocore computes for a request the server received, signed by `akid`/`secret`.
struct Botocore {
    signature: String,
    signed_headers: String,
    body_sha256: String,
}

/// Recomputes the signature of `req` with botocore (`CODESTEP_TEST_BOTOCORE_PYTHON`, installed by
/// `scripts/sigv4-deps`, which `scripts/test` runs). Fails, never skips, when it is missing.
fn botocore(
    req: &RecordedRequest,
    region: &str,
    service: &str,
    akid: &str,
    secret: &str,
) -> Botocore {
    let python = std::env::var("CODESTEP_TEST_BOTOCORE_PYTHON").expect(
        "CODESTEP_TEST_BOTOCORE_PYTHON is not set: the SigV4 check needs botocore. Install it with: eval \"$(scripts/sigv4-deps)\"",
    );
    let auth = req.header("authorization").expect("signed request");
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("SignedHeaders in the Authorization header");
    let headers: Vec<(String, String)> = signed
        .split(';')
        .flat_map(|name| {
            req.header_all(name)
                .into_iter()
                .map(move |v| (name.to_string(), v.to_string()))
        })
        .collect();
    let input = serde_json::json!({
        "method": req.method,
        "url": format!("https://{}:{}{}", req.host, req.port, req.uri),
        "headers": headers,
        "body_hex": req.body.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "region": region,
        "service": service,
        "access_key_id": akid,
        "secret_access_key": secret,
        "amz_date": req.header("x-amz-date").expect("x-amz-date"),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/sigv4_check.py");
    let mut check = std::process::Command::new(python);
    check.arg(script);
    let v = crate::support::reference(check, &input, "botocore's Python (scripts/sigv4-deps)");
    Botocore {
        signature: v["signature"].as_str().unwrap().into(),
        signed_headers: v["signed_headers"].as_str().unwrap().into(),
        body_sha256: v["body_sha256"].as_str().unwrap().into(),
    }
}

/// The request carries a SigV4 signature that botocore agrees with, for `body` as received.
fn assert_botocore_agrees(
    req: &RecordedRequest,
    region: &str,
    service: &str,
    akid: &str,
    secret: &str,
) {
    let auth = req.header("authorization").unwrap();
    let b = botocore(req, region, service, akid, secret);
    let ours_sig = auth.rsplit("Signature=").next().unwrap();
    assert!(
        ours_sig == b.signature,
        "botocore computes another signature"
    );
    assert!(
        auth.contains(&format!("SignedHeaders={},", b.signed_headers)),
        "signed headers differ from botocore's ({})",
        b.signed_headers
    );
    let payload = req.header("x-amz-content-sha256").unwrap();
    assert!(
        payload == b.body_sha256 || payload == "UNSIGNED-PAYLOAD",
        "x-amz-content-sha256 is not the body's hash"
    );
    assert_eq!(req.header_all("x-amz-date").len(), 1);
    assert_eq!(req.header_all("authorization").len(), 1);
}

// ---------------------------------------------------------------------------------------------------
// Presets

/// Every built-in preset, table-driven: its placement exactly as shipped (only the patterns get the
/// test server's port), a request as a step or an SDK would send it (with a placeholder
/// `Authorization`), and what that vendor's API expects to receive.
#[tokio::test]
async fn presets_send_what_each_vendor_expects() {
    let server = TestServer::start(Reply::echo);
    let port = server.port();
    type Check = Box<dyn Fn(&RecordedRequest) -> Result<(), String>>;
    let bearer = |v: &'static str| -> Check {
        Box::new(move |r| {
            (r.header_all("authorization") == [format!("Bearer {v}").as_str()])
                .then_some(())
                .ok_or("Authorization: Bearer <key>".into())
        })
    };
    let aws_check: Check = Box::new(|r| {
        let auth = r.header("authorization").unwrap_or("");
        if !auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDPRESET00/")
            || !auth.contains("/us-east-1/sts/aws4_request")
        {
            return Err("an AWS SigV4 Authorization for us-east-1/sts".into());
        }
        assert_botocore_agrees(
            r,
            "us-east-1",
            "sts",
            "AKIDPRESET00",
            "aws-secret-preset/KEY+x",
        );
        Ok(())
    });
    // id, params, secrets, method, logical URL (host, path and query), what the vendor must receive.
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        Vec<(&'static str, &'static str)>,
        &'static str,
        (&'static str, &'static str),
        Check,
    );
    let cases: Vec<Case> = vec![
        (
            "stripe",
            vec![],
            vec![("secret", "sk_test_preset_stripe")],
            "GET",
            ("api.stripe.com", "/v1/balance"),
            bearer("sk_test_preset_stripe"),
        ),
        (
            "openai",
            vec![],
            vec![("secret", "sk-preset-openai")],
            "GET",
            ("api.openai.com", "/v1/models"),
            bearer("sk-preset-openai"),
        ),
        (
            "anthropic",
            vec![],
            vec![("secret", "sk-ant-preset")],
            "POST",
            ("api.anthropic.com", "/v1/messages"),
            Box::new(|r| {
                (r.header_all("x-api-key") == ["sk-ant-preset"]
                    && r.header("authorization").is_none()
                    && r.header("anthropic-version") == Some("2023-06-01"))
                .then_some(())
                .ok_or("x-api-key: <key>, no Authorization, the SDK's anthropic-version".into())
            }),
        ),
        (
            "github",
            vec![],
            vec![("secret", "github_pat_preset")],
            "GET",
            ("api.github.com", "/user"),
            bearer("github_pat_preset"),
        ),
        (
            "slack",
            vec![],
            vec![("secret", "xoxb-preset")],
            "POST",
            ("slack.com", "/api/chat.postMessage"),
            bearer("xoxb-preset"),
        ),
        (
            "slack-webhook",
            vec![],
            vec![("secret", "/services/T0PRESET/B0PRESET/xyzPRESET")],
            "POST",
            ("hooks.slack.com", "/"),
            Box::new(|r| {
                (r.path == "/services/T0PRESET/B0PRESET/xyzPRESET")
                    .then_some(())
                    .ok_or("POST /services/T…/B…/…".into())
            }),
        ),
        (
            "discord-webhook",
            vec![],
            vec![("secret", "/api/webhooks/1234/tokPRESET")],
            "POST",
            ("discord.com", "/?wait=true"),
            Box::new(|r| {
                (r.uri == "/api/webhooks/1234/tokPRESET?wait=true")
                    .then_some(())
                    .ok_or("POST /api/webhooks/ID/TOKEN?wait=true".into())
            }),
        ),
        (
            "telegram",
            vec![],
            vec![("secret", "123456:ABC-preset_tg")],
            "GET",
            ("api.telegram.org", "/getMe"),
            Box::new(|r| {
                (r.path == "/bot123456:ABC-preset_tg/getMe"
                    && r.header("authorization") == Some("Bearer sdk-placeholder"))
                .then_some(())
                .ok_or("GET /bot<token>/getMe".into())
            }),
        ),
        (
            "notion",
            vec![],
            vec![("secret", "ntn_preset")],
            "GET",
            ("api.notion.com", "/v1/users/me"),
            bearer("ntn_preset"),
        ),
        (
            "airtable",
            vec![],
            vec![("secret", "patPRESET")],
            "GET",
            ("api.airtable.com", "/v0/meta/whoami"),
            bearer("patPRESET"),
        ),
        (
            "hubspot",
            vec![],
            vec![("secret", "pat-na1-preset")],
            "GET",
            ("api.hubapi.com", "/crm/v3/objects/contacts?limit=1"),
            bearer("pat-na1-preset"),
        ),
        (
            "twilio",
            vec![("account_sid", "ACpreset0001")],
            vec![("secret", "twilio-token-preset")],
            "POST",
            (
                "api.twilio.com",
                "/2010-04-01/Accounts/ACpreset0001/Messages.json",
            ),
            Box::new(|r| {
                (r.header_all("authorization")
                    == [basic("ACpreset0001", "twilio-token-preset").as_str()])
                .then_some(())
                .ok_or("Authorization: Basic base64(SID:token)".into())
            }),
        ),
        (
            "sendgrid",
            vec![],
            vec![("secret", "SG.preset")],
            "POST",
            ("api.sendgrid.com", "/v3/mail/send"),
            bearer("SG.preset"),
        ),
        (
            "resend",
            vec![],
            vec![("secret", "re_preset")],
            "POST",
            ("api.resend.com", "/emails"),
            bearer("re_preset"),
        ),
        (
            "mailchimp",
            vec![("dc", "us6")],
            vec![("secret", "mckey-preset-us6")],
            "GET",
            ("us6.api.mailchimp.com", "/3.0/ping"),
            Box::new(|r| {
                (r.header_all("authorization") == [basic("codestep", "mckey-preset-us6").as_str()])
                    .then_some(())
                    .ok_or("Authorization: Basic base64(any:key)".into())
            }),
        ),
        (
            "linear",
            vec![],
            vec![("secret", "lin_api_preset")],
            "POST",
            ("api.linear.app", "/graphql"),
            Box::new(|r| {
                (r.header_all("authorization") == ["lin_api_preset"])
                    .then_some(())
                    .ok_or("Authorization: <key>, no Bearer".into())
            }),
        ),
        (
            "google-api-key",
            vec![],
            vec![("secret", "AIzaPRESET")],
            "GET",
            (
                "generativelanguage.googleapis.com",
                "/v1beta/models?pageSize=1",
            ),
            Box::new(|r| {
                let keys: Vec<_> = r
                    .query_pairs()
                    .into_iter()
                    .filter(|(k, _)| k == "key")
                    .collect();
                (keys.len() == 1
                    && keys[0].1 == "AIzaPRESET"
                    && r.header("x-goog-api-key").is_none())
                .then_some(())
                .ok_or("?key=<key> once, no x-goog-api-key".into())
            }),
        ),
        (
            "datadog",
            vec![],
            vec![("api_key", "dd-api-preset"), ("app_key", "dd-app-preset")],
            "GET",
            ("api.datadoghq.com", "/api/v1/validate"),
            Box::new(|r| {
                (r.header_all("dd-api-key") == ["dd-api-preset"]
                    && r.header_all("dd-application-key") == ["dd-app-preset"])
                .then_some(())
                .ok_or("DD-API-KEY and DD-APPLICATION-KEY".into())
            }),
        ),
        (
            "aws",
            vec![("region", "us-east-1"), ("service", "sts")],
            vec![
                ("access_key_id", "AKIDPRESET00"),
                ("secret_access_key", "aws-secret-preset/KEY+x"),
            ],
            "GET",
            (
                "sts.us-east-1.amazonaws.com",
                "/?Action=GetCallerIdentity&Version=2011-06-15",
            ),
            aws_check,
        ),
    ];
    let tested: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for p in presets() {
        assert!(
            tested.contains(&p.id.as_str()),
            "preset {} has no case here",
            p.id
        );
    }
    for (id, params, given, method, (host, path), check) in cases {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let (patterns, placement) = preset(id, &params).unwrap();
        let patterns: Vec<String> = patterns.iter().map(|p| with_port(p, port)).collect();
        let set = secrets(&given);
        let c = connector(id, &patterns, placement, &set);
        let before = server.requests().len();
        let body = (method != "GET").then_some(&b"{}"[..]);
        let mut headers = vec![
            ("Authorization", "Bearer sdk-placeholder"),
            ("X-Goog-Api-Key", "sdk-placeholder"),
        ];
        if id == "anthropic" {
            headers.push(("anthropic-version", "2023-06-01"));
        }
        let url = format!("https://{host}:{port}{path}");
        let (res, record) = fetch(&[c], request(method, &url, &headers, body)).await;
        let values: Vec<&str> = given.iter().map(|(_, v)| *v).collect();
        assert_clean(&res, &record, &values);
        let res = ok(res);
        assert_eq!(res.status, 200, "{id}");
        assert_eq!(
            res.url, url,
            "{id}: Response.url is what the step asked for"
        );
        let seen = server.requests();
        assert_eq!(seen.len(), before + 1, "{id}: one request");
        let got = &seen[before];
        assert_eq!(got.host, host, "{id}");
        if let Err(want) = check(got) {
            panic!("{id}: the vendor expects {want}; got {got:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Several headers, basic, named secrets

#[tokio::test]
async fn several_headers_each_from_its_own_secret_and_js_cannot_set_them() {
    let server = TestServer::start(Reply::echo);
    let set = secrets(&[("api_key", "dd-API-multi-1"), ("app_key", "dd-APP-multi-2")]);
    let c = connector(
        "dd",
        &[server.pattern("api.test")],
        json_placement(
            r#"{"type":"header","headers":[{"name":"DD-API-KEY","template":"{{secret.api_key}}"},{"name":"DD-APPLICATION-KEY","template":"key={{secret.app_key}}"}]}"#,
        ),
        &set,
    );
    let req = request(
        "GET",
        &server.url("api.test", "/x"),
        &[
            ("dD-aPi-KeY", "js-1"),
            ("DD-API-KEY", "js-2"),
            ("dd-application-key", "js-3"),
        ],
        None,
    );
    let (res, record) = fetch(&[c], req).await;
    assert_clean(&res, &record, &["dd-API-multi-1", "dd-APP-multi-2"]);
    ok(res);
    let seen = &server.requests()[0];
    assert!(seen.header_all("dd-api-key") == ["dd-API-multi-1"]);
    assert!(seen.header_all("dd-application-key") == ["key=dd-APP-multi-2"]);
}

#[tokio::test]
async fn validation_names_the_missing_or_extra_secret() {
    let spec = |placement: &str| ConnectorSpec {
        name: "c".into(),
        patterns: vec!["https://api.test/*".into()],
        placement: json_placement(placement),
        scrub_echo: false,
    };
    let two = r#"{"type":"header","headers":[{"name":"A","template":"{{secret.api_key}}"},{"name":"B","template":"{{secret.app_key}}"}]}"#;
    let e = spec(two)
        .validate(secrets(&[("api_key", "v-one-secret")]))
        .unwrap_err();
    assert_eq!(e.field, "secrets.app_key");
    assert!(e.message.contains("missing") && !e.to_string().contains("v-one-secret"));
    let e = spec(two)
        .validate(secrets(&[
            ("api_key", "v1"),
            ("app_key", "v2"),
            ("extra", "v3"),
        ]))
        .unwrap_err();
    assert_eq!(e.field, "secrets.extra");
    let e = spec(two).validate(Secret::new("one".into())).unwrap_err();
    assert_eq!(
        e.field, "secrets.api_key",
        "a lone secret is named `secret`"
    );
    let e = spec(r#"{"type":"basic","username":"a:b"}"#)
        .validate(Secret::new("pw".into()))
        .unwrap_err();
    assert_eq!(e.field, "placement.username");
    let e = spec(r#"{"type":"basic","username":"{{secret.user}}","password":"{{secret.pw}}"}"#)
        .validate(secrets(&[("user", "has:colon"), ("pw", "p")]))
        .unwrap_err();
    assert!(
        e.field == "secrets.user" && !e.to_string().contains("has:colon"),
        "{e}"
    );
    for (bad, why) in [
        ("/a?b", "`?`"),
        ("/a#b", "`#`"),
        ("/a%2e", "`%`"),
        ("/a b", "whitespace"),
        ("/a/../b", "`..`"),
        ("/a/./b", "`.`"),
        ("no-slash", "start with `/`"),
        ("/a\\b", "`\\`"),
    ] {
        let e = spec(r#"{"type":"path","template":"{{secret}}"}"#)
            .validate(Secret::new(bad.into()))
            .unwrap_err();
        assert!(e.to_string().contains(why), "{bad}: {e}");
        assert!(!e.to_string().contains(bad), "the error quotes the secret");
    }
    let e = spec(r#"{"type":"path","template":"/x{{path}}{{secret}}"}"#)
        .check()
        .unwrap_err();
    assert!(e.message.contains("at its end"), "{e}");
    let e = spec(r#"{"type":"header","name":"A","template":"{{secret.Bad}}"}"#)
        .check()
        .unwrap_err();
    assert!(e.message.contains("unknown placeholder"), "{e}");
    let e = spec(r#"{"type":"aws_sigv4","region":"US East","service":"sts"}"#)
        .check()
        .unwrap_err();
    assert_eq!(e.field, "placement.region");
    let e = spec(r#"{"type":"query","param":"k","methods":["GE T"]}"#)
        .check()
        .unwrap_err();
    assert_eq!(e.field, "placement.methods[0]");
}

#[tokio::test]
async fn basic_placement_and_its_echo_is_scrubbed_in_every_form() {
    let server = TestServer::start(Reply::echo);
    let set = secrets(&[("secret", "basic-pw-Zq81")]);
    let c = connector_scrub(
        "b",
        &[server.pattern("api.test")],
        json_placement(r#"{"type":"basic","username":"user01"}"#),
        &set,
        true,
    );
    let req = request(
        "GET",
        &server.url("api.test", "/x"),
        &[("authorization", "Basic js")],
        None,
    );
    let (res, record) = fetch(&[c], req).await;
    let encoded = basic("user01", "basic-pw-Zq81");
    let b64 = encoded.trim_start_matches("Basic ").to_string();
    assert_clean(&res, &record, &["basic-pw-Zq81", &b64]);
    let res = ok(res);
    // The echo server sent back every request header: the base64 must not reach JS either.
    assert_no_secret(&res.body, &b64, "the echoed body");
    assert_no_secret(&res.body, "basic-pw-Zq81", "the echoed body");
    assert!(server.requests()[0].header_all("authorization") == [encoded.as_str()]);
}

// ---------------------------------------------------------------------------------------------------
// Path placement

fn telegram(server: &TestServer, scrub: bool) -> (Connector, &'static str) {
    let token = "777:tgTOKEN_path_secret";
    let c = connector_scrub(
        "tg",
        &[server.pattern("api.test")],
        json_placement(r#"{"type":"path","template":"/bot{{secret}}{{path}}"}"#),
        &secrets(&[("secret", token)]),
        scrub,
    );
    (c, token)
}

#[tokio::test]
async fn path_placement_sends_the_rendered_path_and_shows_only_the_logical_one() {
    let server = TestServer::start(|r| {
        if r.path.ends_with("/first") {
            // An upstream pointing back into the placed path, absolute and with the token.
            Reply::redirect(
                302,
                &format!(
                    "https://api.test:{}{}",
                    r.port,
                    r.path.replace("/first", "/second")
                ),
            )
            .header("x-echo-path", &r.path)
        } else {
            Reply::echo(r).header("x-echo-path", &r.path)
        }
    });
    let (c, token) = telegram(&server, false);
    let (res, record) = fetch(
        std::slice::from_ref(&c),
        request("GET", &server.url("api.test", "/first?x=1"), &[], None),
    )
    .await;
    assert_clean(&res, &record, &[token]);
    let res = ok(res);
    assert_eq!(
        res.url,
        server.url("api.test", "/second"),
        "mapped back to the logical path"
    );
    assert!(res.redirected);
    assert_eq!(record.path, "/second");
    let seen = server.requests();
    assert!(seen[0].uri == format!("/bot{token}/first?x=1"));
    assert!(seen[1].path == format!("/bot{token}/second"));
    let echoed: Vec<_> = res
        .headers
        .iter()
        .filter(|(n, _)| n == "x-echo-path")
        .collect();
    assert_eq!(echoed.len(), 1, "the echo header is kept, scrubbed");

    // Manual mode: the Location JS sees is the logical one.
    let mut req = request("GET", &server.url("api.test", "/first"), &[], None);
    req.redirect = RedirectMode::Manual;
    let (res, record) = fetch(std::slice::from_ref(&c), req).await;
    assert_clean(&res, &record, &[token]);
    let res = ok(res);
    let location = res.headers.iter().find(|(n, _)| n == "location").unwrap();
    assert_eq!(location.1, server.url("api.test", "/second"));
}

#[tokio::test]
async fn a_redirect_echoing_the_placed_path_to_another_host_is_refused() {
    let server = TestServer::start(|r| {
        if r.host == "api.test" {
            Reply::redirect(307, &format!("https://other.test:{}{}", r.port, r.path))
        } else {
            Reply::echo(r)
        }
    });
    let (c, token) = telegram(&server, false);
    // other.test is allowed too, so only the leak check stands between the token and it.
    let other = connector(
        "other",
        &[server.pattern("other.test")],
        Placement::query("k".into()),
        &secrets(&[("secret", "other-key")]),
    );
    let (res, record) = fetch(
        &[c, other],
        request("GET", &server.url("api.test", "/getMe"), &[], None),
    )
    .await;
    assert_clean(&res, &record, &[token]);
    let e = err(res);
    assert!(matches!(e, FetchError::RedirectRefused(_)), "{e}");
    assert!(e.to_string().contains("credential"), "{e}");
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "nothing reached other.test");
}

#[tokio::test]
async fn a_whole_path_webhook_serves_only_the_host_root_and_its_errors_hide_the_path() {
    let server = TestServer::start(|r| Reply::echo(r).header("x-request-path", &r.path));
    let hook = "/services/T0HOOK/B0HOOK/hookSECRET";
    let c = connector_scrub(
        "hook",
        &[server.url("api.test", "/")],
        json_placement(r#"{"type":"path","template":"{{secret}}","methods":["POST"]}"#),
        &secrets(&[("secret", hook)]),
        true,
    );
    let (res, record) = fetch(
        std::slice::from_ref(&c),
        request(
            "POST",
            &server.url("api.test", "/"),
            &[],
            Some(b"{\"text\":\"hi\"}"),
        ),
    )
    .await;
    assert_clean(&res, &record, &[hook, "hookSECRET"]);
    let res = ok(res);
    assert_no_secret(&res.body, hook, "the echoed body (scrubbed)");
    assert!(server.requests()[0].path == hook);
    assert_eq!(record.path, "/");

    let (res, record) = fetch(
        std::slice::from_ref(&c),
        request(
            "POST",
            &server.url("api.test", "/services/other"),
            &[],
            Some(b"x"),
        ),
    )
    .await;
    assert_clean(&res, &record, &[hook, "hookSECRET"]);
    let e = err(res);
    assert!(
        matches!(e, FetchError::Blocked(_)) && e.to_string().contains("its own path"),
        "{e}"
    );
    assert!(record.blocked);
    assert_eq!(server.requests().len(), 1);
}

// ---------------------------------------------------------------------------------------------------
// Methods and removed headers

#[tokio::test]
async fn a_forbidden_method_is_blocked_named_and_recorded_on_every_hop() {
    let server = TestServer::start(|r| match (r.host.as_str(), r.path.as_str()) {
        ("api.test", "/see-other") => {
            Reply::redirect(303, &format!("https://other.test:{}/read", r.port))
        }
        ("api.test", "/temporary") => {
            Reply::redirect(307, &format!("https://other.test:{}/read", r.port))
        }
        _ => Reply::echo(r),
    });
    let rw = connector(
        "rw",
        &[server.pattern("api.test")],
        Placement::header("X-Key".into(), "{{secret}}".into()).with_methods(&["GET", "POST"]),
        &secrets(&[("secret", "rw-key-secret")]),
    );
    let ro = connector(
        "readonly",
        &[server.pattern("other.test")],
        Placement::header("X-Key".into(), "{{secret}}".into()).with_methods(&["GET"]),
        &secrets(&[("secret", "ro-key-secret")]),
    );
    let all = ["rw-key-secret", "ro-key-secret"];
    let conns = [rw, ro];

    let (res, record) = fetch(
        &conns,
        request("delete", &server.url("other.test", "/x"), &[], None),
    )
    .await;
    assert_clean(&res, &record, &all);
    let e = err(res);
    assert!(matches!(e, FetchError::Blocked(_)));
    let m = e.to_string();
    assert!(m.contains("DELETE") && m.contains("readonly"), "{m}");
    assert!(record.blocked && record.connector.as_deref() == Some("readonly"));
    assert_eq!(server.requests().len(), 0, "nothing was sent");

    // 303 turns the POST into a GET, which the read-only connector allows.
    let (res, record) = fetch(
        &conns,
        request(
            "POST",
            &server.url("api.test", "/see-other"),
            &[],
            Some(b"x"),
        ),
    )
    .await;
    assert_clean(&res, &record, &all);
    assert_eq!(ok(res).status, 200);
    assert_eq!(server.requests().last().unwrap().method, "GET");

    // 307 keeps the POST: the read-only connector's hop is blocked and nothing more is sent.
    let before = server.requests().len();
    let (res, record) = fetch(
        &conns,
        request(
            "POST",
            &server.url("api.test", "/temporary"),
            &[],
            Some(b"x"),
        ),
    )
    .await;
    assert_clean(&res, &record, &all);
    let e = err(res);
    assert!(
        matches!(e, FetchError::Blocked(_)) && e.to_string().contains("POST"),
        "{e}"
    );
    assert!(record.blocked && record.redirects == 1);
    assert_eq!(
        server.requests().len(),
        before + 1,
        "only the first hop was sent"
    );
}

#[tokio::test]
async fn removed_headers_never_leave_in_any_case() {
    let server = TestServer::start(Reply::echo);
    let c = connector(
        "anthropic",
        &[server.pattern("api.test")],
        Placement::header("x-api-key".into(), "{{secret}}".into())
            .with_remove_headers(&["authorization", "X-Debug"]),
        &secrets(&[("secret", "sk-ant-remove")]),
    );
    let req = request(
        "GET",
        &server.url("api.test", "/v1/models"),
        &[
            ("AUTHORIZATION", "Bearer placeholder"),
            ("x-debug", "1"),
            ("X-DEBUG", "2"),
            ("x-keep", "yes"),
        ],
        None,
    );
    let (res, record) = fetch(&[c], req).await;
    assert_clean(&res, &record, &["sk-ant-remove"]);
    ok(res);
    let seen = &server.requests()[0];
    assert!(seen.header("authorization").is_none() && seen.header("x-debug").is_none());
    assert_eq!(seen.header("x-keep"), Some("yes"));
    assert!(seen.header_all("x-api-key") == ["sk-ant-remove"]);
}

// ---------------------------------------------------------------------------------------------------
// AWS SigV4

fn aws(server: &TestServer, service: &str) -> Connector {
    connector(
        "aws",
        &[server.pattern("api.test")],
        json_placement(&format!(
            r#"{{"type":"aws_sigv4","region":"eu-west-1","service":"{service}"}}"#
        )),
        &secrets(&[
            ("access_key_id", "AKIDSIGV4TEST"),
            ("secret_access_key", "sigv4/Secret+Key=0"),
        ]),
    )
}

#[tokio::test]
async fn sigv4_signs_what_is_sent_and_js_cannot_steer_the_signature() {
    let server = TestServer::start(Reply::echo);
    let c = aws(&server, "dynamodb");
    let req = request(
        "POST",
        &server.url("api.test", "/a%20b/c?b=2&a=1"),
        &[
            ("X-Amz-Date", "19700101T000000Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=js"),
            ("X-Amz-Security-Token", "js-token"),
            ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
            ("Content-Type", "application/x-amz-json-1.0"),
        ],
        Some(b"{\"Limit\":1}"),
    );
    let (res, record) = fetch(std::slice::from_ref(&c), req).await;
    assert_clean(&res, &record, &["sigv4/Secret+Key=0", "AKIDSIGV4TEST"]);
    ok(res);
    let seen = &server.requests()[0];
    assert!(seen.header("x-amz-security-token").is_none());
    assert_ne!(seen.header("x-amz-date"), Some("19700101T000000Z"));
    assert_ne!(
        seen.header("x-amz-content-sha256"),
        Some("UNSIGNED-PAYLOAD")
    );
    let auth = seen.header("authorization").unwrap();
    assert!(auth
        .contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target,"));
    assert_botocore_agrees(
        seen,
        "eu-west-1",
        "dynamodb",
        "AKIDSIGV4TEST",
        "sigv4/Secret+Key=0",
    );
    assert!(
        !seen.contains("sigv4/Secret+Key=0"),
        "the secret key itself is never sent"
    );

    // S3 signs the path as sent; a GET has the empty body's hash.
    let s3 = aws(&server, "s3");
    let (res, _) = fetch(
        &[s3],
        request(
            "GET",
            &server.url("api.test", "/bucket/key%20name.txt"),
            &[],
            None,
        ),
    )
    .await;
    ok(res);
    let seen = server.requests().pop().unwrap();
    assert_botocore_agrees(
        &seen,
        "eu-west-1",
        "s3",
        "AKIDSIGV4TEST",
        "sigv4/Secret+Key=0",
    );
}

#[tokio::test]
async fn sigv4_signs_each_redirect_hop_again() {
    let server = TestServer::start(|r| {
        if r.path == "/start" {
            Reply::redirect(307, "/next?Version=1")
        } else {
            Reply::echo(r)
        }
    });
    let c = aws(&server, "sts");
    let (res, record) = fetch(
        std::slice::from_ref(&c),
        request(
            "POST",
            &server.url("api.test", "/start"),
            &[],
            Some(b"Action=X"),
        ),
    )
    .await;
    assert_clean(&res, &record, &["sigv4/Secret+Key=0", "AKIDSIGV4TEST"]);
    ok(res);
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    for hop in &seen {
        assert_botocore_agrees(
            hop,
            "eu-west-1",
            "sts",
            "AKIDSIGV4TEST",
            "sigv4/Secret+Key=0",
        );
    }
    assert_ne!(
        seen[0].header("authorization"),
        seen[1].header("authorization")
    );
}

#[tokio::test]
async fn sigv4_with_a_streamed_body_is_unsigned_payload() {
    let server = TestServer::start(Reply::echo);
    let c = aws(&server, "s3");
    let req = request("PUT", &server.url("api.test", "/bucket/obj"), &[], None);
    let stream: codestep::egress::BodyStream = Box::pin(futures::stream::iter(vec![
        Ok(b"part-1,".to_vec()),
        Ok(b"part-2".to_vec()),
    ]));
    let egress = Egress::new(egress_config()).unwrap();
    let mut record = FetchRecord::start("PUT");
    let mut earlier = Vec::new();
    let opened = egress
        .open(
            std::slice::from_ref(&c),
            req,
            Some(stream),
            &limits(),
            &mut record,
            &mut earlier,
        )
        .await;
    assert!(opened.is_ok());
    let seen = &server.requests()[0];
    assert_eq!(
        seen.header("x-amz-content-sha256"),
        Some("UNSIGNED-PAYLOAD")
    );
    assert_eq!(seen.body, b"part-1,part-2");
    assert_botocore_agrees(
        seen,
        "eu-west-1",
        "s3",
        "AKIDSIGV4TEST",
        "sigv4/Secret+Key=0",
    );
}

#[tokio::test]
async fn credential_headers_of_every_placement_are_dropped_on_origin_change() {
    let server = TestServer::start(|r| {
        if r.host == "api.test" {
            Reply::redirect(302, &format!("https://other.test:{}/landing", r.port))
        } else {
            Reply::echo(r)
        }
    });
    let dd = connector(
        "dd",
        &[server.pattern("api.test")],
        json_placement(
            r#"{"type":"header","headers":[{"name":"DD-API-KEY","template":"{{secret.api_key}}"},{"name":"DD-APPLICATION-KEY","template":"{{secret.app_key}}"}]}"#,
        ),
        &secrets(&[("api_key", "dd-k1-origin"), ("app_key", "dd-k2-origin")]),
    );
    let other = connector(
        "other",
        &[server.pattern("other.test")],
        Placement::query("k".into()),
        &secrets(&[("secret", "other-origin-key")]),
    );
    let req = request(
        "GET",
        &server.url("api.test", "/"),
        &[
            ("dd-application-key", "js-value"),
            ("X-Amz-Date", "js"),
            ("X-Amz-Security-Token", "js"),
            ("Authorization", "js"),
            ("x-plain", "kept"),
        ],
        None,
    );
    let (res, record) = fetch(&[dd, other], req).await;
    assert_clean(
        &res,
        &record,
        &["dd-k1-origin", "dd-k2-origin", "other-origin-key"],
    );
    ok(res);
    let second = &server.requests()[1];
    assert_eq!(second.host, "other.test");
    for h in [
        "dd-api-key",
        "dd-application-key",
        "x-amz-date",
        "x-amz-security-token",
        "authorization",
    ] {
        assert!(second.header(h).is_none(), "{h} crossed origins");
    }
    assert_eq!(second.header("x-plain"), Some("kept"));
    assert!(!second.contains("dd-k1-origin") && !second.contains("dd-k2-origin"));
}
