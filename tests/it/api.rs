//! `codestep serve`'s HTTP API, in-process on a real SQLite file (and across two real processes on
//! PostgreSQL): auth and workspace isolation, connector management with write-only secrets, runs and
//! their monitoring, bad input, back-pressure, graceful shutdown and the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use codestep::api::{self, ServeOptions};
use codestep::engine::{Executor, ExecutorConfig};
use codestep::vault::{Keyring, MasterKey, Vault};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{Reply, TestServer};

const SECRET: &str = "sk_live_api_TestSecret_9f8e7d6c5b4a";
const OP_TOKEN: &str = "operator-token-for-tests-0123456789";

pub struct Api {
    pub base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    /// A server on 127.0.0.1:0 with a fresh SQLite store, serving in the background.
    pub fn start(workers: usize, queue: usize, upstream: Option<&TestServer>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let egress = upstream.map(|s| s.egress_config()).unwrap_or_default();
        let executor = Arc::new(
            Executor::new(ExecutorConfig {
                workers,
                egress,
                ..Default::default()
            })
            .unwrap(),
        );
        let db = dir.path().join("codestep.db");
        let base = rt.block_on(async {
            let store = codestep::store::open(db.to_str().unwrap()).await.unwrap();
            let vault = Vault::new(Keyring::new(vec![MasterKey::generate(1).unwrap()]).unwrap());
            let opts = ServeOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                queue,
                retention_days: 30,
                retention_every: std::time::Duration::from_secs(300),
                max_body_bytes: 64 * 1024,
            };
            let state = api::state(store, vault, executor, OP_TOKEN, &opts);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = api::router(state, opts.max_body_bytes);
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .await
                .unwrap()
            });
            format!("http://{addr}")
        });
        Api {
            base,
            rt,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.raw(
            method,
            path,
            token,
            body.map(|b| ("application/json", b.to_string().into_bytes())),
        )
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        self.rt.block_on(async {
            let mut req = self
                .client
                .request(method.parse().unwrap(), format!("{}{path}", self.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some((ct, bytes)) = body {
                req = req.header("content-type", ct).body(bytes);
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            let text = res.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// Creates a workspace and a token for it; returns the token.
    /// The bytes of the store's files (the database and its WAL), as they are on disk now.
    pub fn store_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for name in ["codestep.db", "codestep.db-wal"] {
            if let Ok(b) = std::fs::read(self._dir.path().join(name)) {
                out.extend(b);
            }
        }
        out
    }

    pub fn workspace(&self, name: &str) -> String {
        let (s, _) = self.call(
            "POST",
            "/v1/workspaces",
            Some(OP_TOKEN),
            Some(json!({ "name": name })),
        );
        assert_eq!(s, StatusCode::CREATED);
        let (s, body) = self.call(
            "POST",
            &format!("/v1/workspaces/{name}/tokens"),
            Some(OP_TOKEN),
            Some(json!({ "label": "tests", "scopes": ["run", "read", "manage"] })),
        );
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }
}

fn no_secret(v: &Value) {
    assert!(
        !v.to_string().contains(SECRET),
        "a response carries the secret"
    );
}

#[test]
fn tokens_and_workspace_isolation() {
    let api = Api::start(1, 4, None);
    let acme = api.workspace("acme");
    let beta = api.workspace("beta");
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&acme),
        Some(json!({ "name": "stripe", "preset": "stripe", "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::CREATED);

    assert_eq!(
        api.call("GET", "/v1/workspaces/acme/connectors", None, None)
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call(
            "GET",
            "/v1/workspaces/acme/connectors",
            Some("cst_wrong"),
            None
        )
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call("GET", "/v1/me", Some(&acme), None).1,
        json!({ "kind": "workspace", "workspace": "acme", "label": "tests", "scopes": ["run", "read", "manage"] })
    );

    // Every workspace endpoint, called by beta's token on acme's workspace: 404, with nothing of acme in it.
    let cross: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/v1/workspaces/acme/connectors", None),
        (
            "POST",
            "/v1/workspaces/acme/connectors",
            Some(json!({ "name": "x", "preset": "stripe", "secret": "s" })),
        ),
        ("GET", "/v1/workspaces/acme/connectors/stripe", None),
        (
            "PATCH",
            "/v1/workspaces/acme/connectors/stripe",
            Some(json!({ "secret": "new" })),
        ),
        ("DELETE", "/v1/workspaces/acme/connectors/stripe", None),
        ("GET", "/v1/workspaces/acme/connectors/stripe/stats", None),
        ("GET", "/v1/workspaces/acme/connectors/stripe/errors", None),
        ("GET", "/v1/workspaces/acme/blocked", None),
        ("GET", "/v1/workspaces/acme/runs", None),
        ("GET", "/v1/workspaces/acme/runs/some-run", None),
        (
            "POST",
            "/v1/workspaces/acme/runs",
            Some(json!({ "code": "export default () => 1", "connectors": ["stripe"] })),
        ),
    ];
    for (method, path, body) in &cross {
        let (s, v) = api.call(method, path, Some(&beta), body.clone());
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert!(
            !v.to_string().contains("stripe\","),
            "{method} {path} leaked: {v}"
        );
        // The same answer as for a workspace that does not exist.
        let ghost = path.replace("/acme/", "/ghost/");
        assert_eq!(
            api.call(method, &ghost, Some(&beta), body.clone()).0,
            StatusCode::NOT_FOUND,
            "{ghost}"
        );
    }
    // The connector is untouched.
    let (s, v) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/stripe",
        Some(&acme),
        None,
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "stripe");

    // Operator endpoints refuse workspace tokens.
    for (method, path, body) in [
        ("GET", "/v1/workspaces", None),
        ("POST", "/v1/workspaces", Some(json!({ "name": "evil" }))),
        ("DELETE", "/v1/workspaces/acme", None),
    ] {
        assert_eq!(
            api.call(method, path, Some(&beta), body).0,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
}

#[test]
fn connector_crud_keeps_the_secret_write_only() {
    let api = Api::start(1, 4, None);
    let t = api.workspace("acme");
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "weather", "patterns": ["https://API.weather.example./v1/*"], "placement": { "type": "query", "param": "appid" }, "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["patterns"],
        json!(["https://api.weather.example/v1/*"]),
        "patterns are normalised when saved"
    );
    no_secret(&v);
    assert_eq!(
        api.call(
            "POST",
            "/v1/workspaces/acme/connectors",
            Some(&t),
            Some(json!({ "name": "WEATHER", "preset": "stripe", "secret": "x" }))
        )
        .0,
        StatusCode::CONFLICT
    );

    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme/connectors/weather",
        Some(&t),
        Some(json!({ "secret": "rotated-secret-value" })),
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["patterns"],
        json!(["https://api.weather.example/v1/*"]),
        "rotating the secret changes nothing else"
    );
    // Where the secret goes is only changed by who holds it (security model, "Who decides where a
    // secret goes"): a token alone cannot re-point the stored secret at another host.
    for change in [
        json!({ "patterns": ["https://attacker.example/*"] }),
        json!({ "placement": { "type": "header", "name": "X-Key", "template": "{{secret}}" } }),
    ] {
        let (s, v) = api.call(
            "PATCH",
            "/v1/workspaces/acme/connectors/weather",
            Some(&t),
            Some(change.clone()),
        );
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{change}: {v}");
        assert_eq!(v["error"]["field"], "secret", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("needs its secret again"),
            "{v}"
        );
    }
    let (_, still) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/weather",
        Some(&t),
        None,
    );
    assert_eq!(
        still["patterns"],
        json!(["https://api.weather.example/v1/*"])
    );
    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme/connectors/weather",
        Some(&t),
        Some(
            json!({ "placement": { "type": "header", "name": "X-Key", "template": "{{secret}}" }, "secret": "rotated-secret-value" }),
        ),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["placement"]["name"], "X-Key");

    let (_, list) = api.call("GET", "/v1/workspaces/acme/connectors", Some(&t), None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["items"][0]["stats"],
        json!({ "requests_24h": 0, "errors_24h": 0, "error_rate_24h": 0.0, "alert": false, "health": "idle",
                "recent_requests": 0, "recent_errors": 0, "last_error_at": null })
    );
    no_secret(&list);
    assert!(!list.to_string().contains("rotated-secret-value"));

    assert_eq!(
        api.call(
            "DELETE",
            "/v1/workspaces/acme/connectors/weather",
            Some(&t),
            None
        )
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(
            "GET",
            "/v1/workspaces/acme/connectors/weather",
            Some(&t),
            None
        )
        .0,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn bad_input_gets_a_4xx_that_names_the_problem() {
    let api = Api::start(1, 4, None);
    let t = api.workspace("acme");
    let path = "/v1/workspaces/acme/connectors";
    // (body with its content type, expected status, words the error must contain)
    type Case<'a> = (Option<(&'a str, Vec<u8>)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (Some(("application/json", b"{not json".to_vec())), StatusCode::BAD_REQUEST, "malformed"),
        (Some(("text/plain", b"{}".to_vec())), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported"),
        (Some(("application/json", br#"{"name":"a","preset":"stripe","secret":"s","colour":"red"}"#.to_vec())), StatusCode::UNPROCESSABLE_ENTITY, "colour"),
        (Some(("application/json", br#"{"name":"a","patterns":["http://x.example/*"],"placement":{"type":"query","param":"k"},"secret":"s"}"#.to_vec())), StatusCode::UNPROCESSABLE_ENTITY, "https"),
        (Some(("application/json", br#"{"name":"a","preset":"nope","secret":"s"}"#.to_vec())), StatusCode::UNPROCESSABLE_ENTITY, "preset"),
        (Some(("application/json", br#"{"name":"a","patterns":[],"placement":{"type":"query","param":"k"},"secret":"s"}"#.to_vec())), StatusCode::UNPROCESSABLE_ENTITY, "patterns"),
        (Some(("application/json", br#"{"name":"a","patterns":["https://x.example/*"],"placement":{"type":"header","name":"Authorization","template":"Bearer"},"secret":"s"}"#.to_vec())), StatusCode::UNPROCESSABLE_ENTITY, "{{secret}}"),
        (Some(("application/json", vec![b' '; 100 * 1024])), StatusCode::PAYLOAD_TOO_LARGE, "length limit"),
    ];
    for (body, status, needle) in cases {
        let (s, v) = api.raw("POST", path, Some(&t), body);
        assert_eq!(s, status, "{v}");
        let said = format!(
            "{} {}",
            v["error"]["code"].as_str().unwrap_or_default(),
            v["error"]["message"].as_str().unwrap_or_default()
        );
        assert!(said.contains(needle), "expected {needle:?} in {said:?}");
    }
    let (s, v) = api.raw("POST", path, Some(&t), Some(("application/json", br#"{"name":"a","patterns":["ftp://x.example/*"],"placement":{"type":"query","param":"k"},"secret":"s"}"#.to_vec())));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "patterns[0]", "{v}");
    let (s, v) = api.call(
        "POST",
        path,
        Some(&t),
        Some(json!({ "name": "a", "preset": "stripe" })),
    );
    assert_eq!(
        (s, v["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("secret")),
        "{v}"
    );
    assert_eq!(
        api.call(
            "GET",
            "/v1/workspaces/acme/connectors/x/errors?limit=0",
            Some(&t),
            None
        )
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.call("GET", "/v1/nowhere", Some(&t), None).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("PUT", "/v1/workspaces/acme/connectors", Some(&t), None)
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces/acme/runs",
        Some(&t),
        Some(json!({ "code": "x", "connectors": ["missing"] })),
    );
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[test]
fn runs_are_recorded_and_monitored() {
    let upstream = TestServer::start(|req| match req.path.as_str() {
        "/fail" => Reply::status(500),
        "/missing" => Reply::status(404),
        _ => Reply::json(&json!({ "ok": true })),
    });
    let api = Api::start(2, 8, Some(&upstream));
    let t = api.workspace("acme");
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")], "placement": { "type": "header", "name": "Authorization", "template": "Bearer {{secret}}" }, "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::CREATED);
    let step = r#"export default async ({ urls }) => { const out = []; for (const u of urls) { try { out.push((await fetch(u)).status) } catch (e) { out.push(e.name) } } return out }"#;
    let urls = json!([
        upstream.url("api.test", "/ok?q=1"),
        upstream.url("api.test", "/fail"),
        upstream.url("api.test", "/missing"),
        upstream.url("evil.test", "/x"),
    ]);
    let (s, run) = api.call(
        "POST",
        "/v1/workspaces/acme/runs",
        Some(&t),
        Some(json!({ "code": step, "input": { "urls": urls }, "connectors": ["svc"] })),
    );
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["ok"], true);
    assert_eq!(run["output"], json!([200, 500, 404, "TypeError"]));
    assert!(run["run_id"].as_str().unwrap().len() >= 16);
    no_secret(&run);
    assert_eq!(
        upstream.requests()[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );

    // The run is in the history, with its requests and who asked; its id leads there.
    let id = run["run_id"].as_str().unwrap().to_string();
    let (s, list) = api.call("GET", "/v1/workspaces/acme/runs", Some(&t), None);
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["id"], json!(id), "{list}");
    assert_eq!(list["items"][0]["outcome"], "ok");
    assert_eq!(list["items"][0]["fetches"], 4);
    assert_eq!(list["items"][0]["token"], "tests", "{list}");
    let (s, detail) = api.call(
        "GET",
        &format!("/v1/workspaces/acme/runs/{id}"),
        Some(&t),
        None,
    );
    assert_eq!(s, StatusCode::OK, "{detail}");
    assert_eq!(detail["requests"].as_array().unwrap().len(), 4, "{detail}");
    assert_eq!(detail["requests"][3]["blocked"], true, "{detail}");
    no_secret(&detail);
    assert!(
        !detail.to_string().contains("q=1"),
        "a query in the history"
    );
    let (s, _) = api.call(
        "GET",
        "/v1/workspaces/acme/runs?outcome=exploded",
        Some(&t),
        None,
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Concurrent runs: the counts must add up.
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                let (s, v) = api.call("POST", "/v1/workspaces/acme/runs", Some(&t), Some(json!({ "code": step, "input": { "urls": [upstream.url("api.test", "/ok")] }, "connectors": ["svc"] })));
                assert_eq!(s, StatusCode::OK, "{v}");
            });
        }
    });

    let (_, list) = api.call("GET", "/v1/workspaces/acme/connectors", Some(&t), None);
    let st = &list["items"][0]["stats"];
    assert_eq!(
        (&st["requests_24h"], &st["errors_24h"], &st["alert"]),
        (&json!(9), &json!(2), &json!(true)),
        "{st}"
    );
    // Two errors among its last nine requests: some errors, not failing.
    assert_eq!(st["health"], "some_errors", "{st}");
    assert_eq!(
        (&st["recent_requests"], &st["recent_errors"]),
        (&json!(9), &json!(2))
    );
    assert!((st["error_rate_24h"].as_f64().unwrap() - 2.0 / 9.0).abs() < 1e-9);
    assert!(st["last_error_at"].as_str().unwrap().ends_with('Z'), "{st}");
    let (_, stats) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/svc/stats",
        Some(&t),
        None,
    );
    let series = stats["series"].as_array().unwrap();
    assert_eq!(series.len(), 24);
    assert_eq!(
        series
            .iter()
            .map(|p| p["requests"].as_u64().unwrap())
            .sum::<u64>(),
        9
    );
    assert_eq!(series[23]["errors"], 2);

    let (_, errors) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/svc/errors?limit=1",
        Some(&t),
        None,
    );
    let first = &errors["items"][0];
    assert_eq!(
        (
            first["status"].clone(),
            first["method"].clone(),
            first["path"].clone(),
            first["outcome"].clone()
        ),
        (
            json!(404),
            json!("GET"),
            json!("/missing"),
            json!("http_error")
        )
    );
    assert!(first["host"].as_str().unwrap().starts_with("api.test"));
    let next = errors["next"].as_str().expect("a second page");
    let (_, page2) = api.call(
        "GET",
        &format!("/v1/workspaces/acme/connectors/svc/errors?limit=1&before={next}"),
        Some(&t),
        None,
    );
    assert_eq!(page2["items"][0]["status"], 500);
    let (_, none) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/svc/errors?outcome=timeout",
        Some(&t),
        None,
    );
    assert_eq!(none["items"], json!([]));
    let (_, future) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/svc/errors?since=2100-01-01T00:00:00Z",
        Some(&t),
        None,
    );
    assert_eq!(future["items"], json!([]));

    let (_, blocked) = api.call("GET", "/v1/workspaces/acme/blocked", Some(&t), None);
    assert_eq!(blocked["count_24h"], 1);
    assert!(blocked["items"][0]["host"]
        .as_str()
        .unwrap()
        .starts_with("evil.test"));

    let (s, metrics) = api.call("GET", "/metrics", None, None);
    assert_eq!(s, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("codestep_runs_total{outcome=\"ok\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("codestep_fetches_total{outcome=\"blocked\"} 1"),
        "{text}"
    );
    // From the client library: histograms, HTTP requests by route template, gauges, process, build.
    for wanted in [
        "codestep_run_duration_seconds_bucket{le=\"0.005\"}",
        "codestep_run_duration_seconds_count 7",
        "codestep_run_queue_wait_seconds_count 7",
        "codestep_fetch_duration_seconds_count{outcome=\"blocked\"} 1",
        "codestep_http_requests_total{method=\"POST\",route=\"/v1/workspaces/{ws}/runs\",status=\"200\"} 7",
        "codestep_workers_idle ",
        "codestep_queue_depth 0",
        "process_resident_memory_bytes",
        "codestep_build_info{version=",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
    }
    assert!(!text.contains("acme"), "a workspace name became a label");
    assert!(!text.contains(SECRET));
}

#[test]
fn a_saturated_pool_answers_429_with_retry_after() {
    let api = Api::start(1, 0, None);
    let t = api.workspace("acme");
    let slow = json!({ "code": "export default () => new Promise(r => setTimeout(() => r('done'), 3000))" });
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            api.call(
                "POST",
                "/v1/workspaces/acme/runs",
                Some(&t),
                Some(slow.clone()),
            )
        });
        // Wait until the first run holds the only slot.
        let mut rejected = None;
        for _ in 0..250 {
            std::thread::sleep(Duration::from_millis(20));
            let (s, v) = api.call(
                "POST",
                "/v1/workspaces/acme/runs",
                Some(&t),
                Some(json!({ "code": "export default () => 1" })),
            );
            if s == StatusCode::TOO_MANY_REQUESTS {
                rejected = Some(v);
                break;
            }
        }
        let v = rejected.expect("no 429 while the only worker was busy");
        assert_eq!(v["error"]["code"], "busy");
        let (s, v) = first.join().unwrap();
        assert_eq!((s, v["output"].clone()), (StatusCode::OK, json!("done")));
    });
    // The Retry-After header itself.
    let res = api.rt.block_on(async {
        let c = api.client.clone();
        let base = api.base.clone();
        let t2 = t.clone();
        let slow_call = tokio::spawn(async move {
            c.post(format!("{base}/v1/workspaces/acme/runs"))
                .bearer_auth(&t2)
                .header("content-type", "application/json")
                .body(
                    json!({ "code": "export default () => new Promise(r => setTimeout(r, 3000))" })
                        .to_string(),
                )
                .send()
                .await
        });
        let mut last = None;
        for _ in 0..250 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let r = api
                .client
                .post(format!("{}/v1/workspaces/acme/runs", api.base))
                .bearer_auth(&t)
                .header("content-type", "application/json")
                .body(json!({ "code": "export default () => 1" }).to_string())
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                last = Some(r);
                break;
            }
        }
        slow_call.await.unwrap().unwrap();
        last
    });
    let res = res.expect("429");
    assert_eq!(res.headers().get("retry-after").unwrap(), "1");
}

#[test]
fn health_and_openapi_document() {
    let api = Api::start(1, 1, None);
    let (s, h) = api.call("GET", "/health", None, None);
    assert_eq!((s, h["status"].clone()), (StatusCode::OK, json!("ok")));
    let (s, doc) = api.call("GET", "/openapi.json", None, None);
    assert_eq!(s, StatusCode::OK);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/v1/workspaces/{ws}/runs",
        "/v1/workspaces/{ws}/connectors",
        "/v1/workspaces/{ws}/connectors/{name}",
        "/v1/workspaces/{ws}/connectors/{name}/stats",
        "/v1/workspaces/{ws}/connectors/{name}/errors",
        "/v1/workspaces/{ws}/blocked",
        "/v1/workspaces",
        "/v1/workspaces/{ws}/tokens",
        "/v1/me",
        "/health",
        "/metrics",
    ] {
        assert!(
            paths.iter().any(|x| x.as_str() == p),
            "{p} missing from the OpenAPI document"
        );
    }
    // Every documented operation is routed: none of them falls through to the 404 fallback.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{ws}", "nows").replace("{name}", "noname");
            let (_, v) = api.call(
                &method.to_uppercase(),
                &concrete,
                Some(OP_TOKEN),
                Some(json!({})),
            );
            assert_ne!(
                v["error"]["message"], "no such endpoint",
                "{method} {path} is documented but not routed"
            );
        }
    }
    let (s, page) = api.raw("GET", "/", None, None);
    assert_eq!(s, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("<html"));
}

/// The statuses the OpenAPI document lists for one operation.
fn documented(doc: &Value, method: &str, template: &str) -> Vec<String> {
    doc["paths"][template][method.to_lowercase()]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {template} is not documented"))
        .keys()
        .cloned()
        .collect()
}

/// An error response as the API promises it: `{"error":{"code","message"}}`.
fn json_error(v: &Value) -> bool {
    v["error"]["code"].is_string() && v["error"]["message"].is_string()
}

#[test]
fn every_status_bad_input_gets_is_documented_and_is_json() {
    let api = Api::start(1, 4, None);
    let t = api.workspace("acme");
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "stripe", "preset": "stripe", "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::CREATED);
    let (_, doc) = api.call("GET", "/openapi.json", None, None);

    // Operation ids name one operation each (generated clients depend on it).
    let mut ids = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_string());
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "duplicate operationId in {ids:?}");

    let mut checked = 0;
    let mut check = |method: &str,
                     template: &str,
                     path: &str,
                     token: Option<&str>,
                     body: Option<(&str, Vec<u8>)>| {
        let (s, v) = api.raw(method, path, token, body);
        assert!(s.is_client_error(), "{method} {path}: {s} {v}");
        assert!(
            json_error(&v),
            "{method} {path}: {s}: not a JSON error: {v}"
        );
        let listed = documented(&doc, method, template);
        assert!(
            listed.contains(&s.as_str().to_string()),
            "{method} {template} answered {s}, which the document does not list ({listed:?}): {v}"
        );
        checked += 1;
    };
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let path = template.replace("{ws}", "acme").replace("{name}", "stripe");
            // `security: [{}]` (health, metrics) means no token is needed.
            let needs_token = op["security"].as_array().is_some_and(|reqs| {
                reqs.iter()
                    .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
            });
            if needs_token {
                check(&method, template, &path, None, None);
            }
            if op.get("requestBody").is_some() {
                check(
                    &method,
                    template,
                    &path,
                    Some(OP_TOKEN),
                    Some(("application/json", b"{not json".to_vec())),
                );
                check(
                    &method,
                    template,
                    &path,
                    Some(OP_TOKEN),
                    Some(("text/plain", b"{}".to_vec())),
                );
                check(
                    &method,
                    template,
                    &path,
                    Some(OP_TOKEN),
                    Some(("application/json", vec![b' '; 100 * 1024])),
                );
            }
            if template.contains('{') {
                // Not UTF-8 once decoded.
                let odd = template.replace("{ws}", "%FF").replace("{name}", "%FF");
                check(&method, template, &odd, Some(OP_TOKEN), None);
            }
        }
    }
    // Operator endpoints, called with a workspace token.
    for (method, template, path) in [
        ("GET", "/v1/workspaces", "/v1/workspaces"),
        ("POST", "/v1/workspaces", "/v1/workspaces"),
        ("DELETE", "/v1/workspaces/{ws}", "/v1/workspaces/acme"),
    ] {
        let body = Some((
            "application/json",
            br#"{"name":"x","label":"x","scopes":["run"]}"#.to_vec(),
        ));
        check(method, template, path, Some(&t), body);
    }
    // Query strings that do not parse, and a token label that breaks the rules.
    let errors = "/v1/workspaces/{ws}/connectors/{name}/errors";
    let blocked = "/v1/workspaces/{ws}/blocked";
    for (template, query) in [
        (errors, "limit=abc"),
        (errors, "limit=-1"),
        (errors, "limit=1&limit=2"),
        (errors, "colour=red"),
        (errors, "outcome=nope"),
        (blocked, "limit=99999999999"),
        (blocked, "before=abc"),
        (blocked, "colour=red"),
    ] {
        let path = template.replace("{ws}", "acme").replace("{name}", "stripe");
        check("GET", template, &format!("{path}?{query}"), Some(&t), None);
    }
    let body = Some((
        "application/json",
        br#"{"label":"","scopes":["run"]}"#.to_vec(),
    ));
    check(
        "POST",
        "/v1/workspaces/{ws}/tokens",
        "/v1/workspaces/acme/tokens",
        Some(OP_TOKEN),
        body,
    );
    // Another workspace's (or no workspace's) connectors, with a body that is fine.
    let body = br#"{"name":"x","preset":"stripe","secret":"s"}"#;
    for token in [&t, OP_TOKEN] {
        let body = Some(("application/json", body.to_vec()));
        let (template, path) = (
            "/v1/workspaces/{ws}/connectors",
            "/v1/workspaces/ghost/connectors",
        );
        check("POST", template, path, Some(token), body);
    }
    assert!(checked > 40, "only {checked} cases");

    // A bad query parameter is named, as a bad body field is.
    let (_, v) = api.call(
        "GET",
        "/v1/workspaces/acme/blocked?limit=abc",
        Some(&t),
        None,
    );
    assert_eq!(v["error"]["field"], "limit", "{v}");
    let (_, v) = api.call(
        "GET",
        "/v1/workspaces/acme/blocked?colour=red",
        Some(&t),
        None,
    );
    assert_eq!(v["error"]["field"], "colour", "{v}");

    // The 429 documents its Retry-After header; a step's input is any JSON value, as the handler takes.
    let run = &doc["paths"]["/v1/workspaces/{ws}/runs"]["post"];
    assert!(
        run["responses"]["429"]["headers"]["Retry-After"].is_object(),
        "{}",
        run["responses"]["429"]
    );
    let input = &doc["components"]["schemas"]["RunBody"]["properties"]["input"];
    assert_eq!(
        input["type"],
        json!(["object", "array", "string", "number", "boolean", "null"]),
        "input is documented as {input}"
    );
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/runs",
        Some(&t),
        Some(json!({ "code": "export default (i) => i.length", "input": [1, 2, 3] })),
    );
    assert_eq!((s, v["output"].clone()), (StatusCode::OK, json!(3)), "{v}");
}

/// The field of a validation error comes typed from the store, whatever its message looks like: a
/// connector name with `": ` in it once made the message unreadable for a field.
#[test]
fn validation_errors_carry_their_field_typed() {
    let api = Api::start(1, 4, None);
    let t = api.workspace("acme");
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "a\": b", "preset": "stripe", "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "name", "{v}");
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(
            json!({ "name": "x", "patterns": ["https://a.example/*", "http://b.example/*"],
                     "placement": {"type": "query", "param": "k"}, "secret": SECRET }),
        ),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "patterns[1]", "{v}");
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/tokens",
        Some(OP_TOKEN),
        Some(json!({ "label": "", "scopes": ["run"] })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "label", "{v}");
}

#[test]
fn odd_times_in_the_error_log_filters_get_a_400() {
    let api = Api::start(1, 4, None);
    let t = api.workspace("acme");
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "stripe", "preset": "stripe", "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::CREATED);
    // A multi-byte character where the offset's colon goes; and other near-misses.
    for since in [
        "2026-11-25T14:00:00%2B0%C3%A900",
        "2026-11-25T14:00:00%2B%C3%A9:00",
        "2026-11-25T14:00:00.%C3%A9Z",
        "2026-11-25T14:00:00%2B01:0%C3%A9",
        "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
        "2026-11-25T14:00:00%2B99:99",
    ] {
        let path = format!("/v1/workspaces/acme/connectors/stripe/errors?since={since}");
        let (s, v) = api.call("GET", &path, Some(&t), None);
        assert_eq!(s, StatusCode::BAD_REQUEST, "{since}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("since:"),
            "{v}"
        );
    }
    // The server is still answering.
    let (s, _) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/stripe/errors?since=2026-11-25T14:00:00%2B01:00",
        Some(&t),
        None,
    );
    assert_eq!(s, StatusCode::OK);
}

#[test]
fn workspace_tokens_match_workspace_names_as_the_store_does() {
    let api = Api::start(1, 4, None);
    let acme = api.workspace("Acme");
    let beta = api.workspace("beta");
    // Names are unique regardless of case, so `ACME` and `acme` are the token's own workspace…
    for path in [
        "/v1/workspaces/acme/connectors",
        "/v1/workspaces/ACME/blocked",
    ] {
        let (s, v) = api.call("GET", path, Some(&acme), None);
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    // …and still not another token's.
    let (s, _) = api.call("GET", "/v1/workspaces/ACME/connectors", Some(&beta), None);
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The auth scheme is case-insensitive (RFC 9110 section 11.1).
    let s = api.rt.block_on(async {
        api.client
            .get(format!("{}/v1/me", api.base))
            .header("authorization", format!("bearer {acme}"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(s, StatusCode::OK);
    // Deleting the workspace ends its tokens: they reach nothing, not even a new workspace of that name.
    let (s, _) = api.call("DELETE", "/v1/workspaces/acme", Some(OP_TOKEN), None);
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces",
        Some(OP_TOKEN),
        Some(json!({ "name": "acme" })),
    );
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = api.call("GET", "/v1/workspaces/acme/connectors", Some(&acme), None);
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
}

/// The OpenAPI document lints clean under redocly's recommended rules (`scripts/lint-deps` installs
/// the linter and `scripts/test` says where it is).
#[test]
fn openapi_document_lints_clean() {
    let redocly = std::env::var("CODESTEP_TEST_REDOCLY").expect(
        "CODESTEP_TEST_REDOCLY is not set: the OpenAPI lint needs redocly. Install it with: eval \"$(scripts/lint-deps)\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&codestep::api::openapi()).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(redocly)
        .args(["lint", "--format=summary"])
        .arg(&path)
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "redocly lint failed:\n{text}");
    // Summary lines read `warning RULE: COUNT` (the banner about Node versions is not one).
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("warning ")),
        "redocly lint warns:\n{text}"
    );
}

#[test]
fn presets_are_listed_and_create_connectors_with_named_secrets() {
    let api = Api::start(1, 4, None);
    let t = api.workspace("acme");
    assert_eq!(
        api.call("GET", "/v1/presets", None, None).0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = api.call("GET", "/v1/presets", Some(&t), None);
    assert_eq!(s, StatusCode::OK);
    let items = v["items"].as_array().unwrap();
    assert!(items.len() >= 19);
    let dd = items.iter().find(|p| p["id"] == "datadog").unwrap();
    assert_eq!(dd["secrets"][1]["name"], "app_key");
    assert_eq!(dd["placement"]["headers"][0]["name"], "DD-API-KEY");
    let stripe = items.iter().find(|p| p["id"] == "stripe").unwrap();
    assert_eq!(stripe["check_url"], "https://api.stripe.com/v1/balance");

    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "dd", "preset": "datadog", "secrets": { "api_key": SECRET, "app_key": "app-key-value" } })),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    no_secret(&v);
    assert!(!v.to_string().contains("app-key-value"));
    // One missing secret is named; `secret` and `secrets` together are refused.
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "dd2", "preset": "datadog", "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "secrets.api_key", "{v}");
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "dd2", "preset": "datadog", "secret": "x", "secrets": {"api_key": "y"} })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "secrets", "{v}");
    // A preset parameter fills the patterns and placement.
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "aws", "preset": "aws", "params": {"region": "eu-west-1", "service": "sts"},
                     "secrets": { "access_key_id": "AKIDAPI", "secret_access_key": SECRET } })),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["placement"],
        json!({"type": "aws_sigv4", "region": "eu-west-1", "service": "sts"})
    );
    assert_eq!(v["patterns"][0], "https://sts.eu-west-1.amazonaws.com/*");
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "aws2", "preset": "aws", "secrets": { "access_key_id": "a", "secret_access_key": "b" } })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "preset", "{v}");
    // Restricting methods needs the whole set again; rotation replaces the whole set.
    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme/connectors/dd",
        Some(&t),
        Some(json!({ "placement": {"type": "header", "headers": [
            {"name": "DD-API-KEY", "template": "{{secret.api_key}}"},
            {"name": "DD-APPLICATION-KEY", "template": "{{secret.app_key}}"}], "methods": ["GET"]} })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "secret", "{v}");
    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme/connectors/dd",
        Some(&t),
        Some(json!({ "secrets": { "api_key": "rotated" } })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "secrets.app_key", "{v}");
    let (s, _) = api.call(
        "PATCH",
        "/v1/workspaces/acme/connectors/dd",
        Some(&t),
        Some(json!({ "secrets": { "api_key": "rotated", "app_key": "rotated-too" } })),
    );
    assert_eq!(s, StatusCode::OK);
}

fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Run input and output are stored only when the workspace opts in, and then sealed: the store's
/// file holds neither in plain text, and the run's page returns both. An upstream that answers 401
/// echoing the secret gets its status text and a short excerpt of its body into the history and the
/// error log, with the secret scrubbed although echo scrubbing is off for the connector.
#[test]
fn run_io_is_kept_only_on_opt_in_and_error_excerpts_are_scrubbed() {
    let upstream = TestServer::start(|req| match req.path.as_str() {
        "/denied" => Reply::ok(format!(
            "{{\"error\":\"bad credentials: {}\"}}",
            req.header("authorization").unwrap_or("")
        ))
        .with_status(401),
        _ => Reply::json(&json!({ "ok": true })),
    });
    let api = Api::start(1, 4, Some(&upstream));
    let t = api.workspace("acme");
    let other = api.workspace("other");
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(&t),
        Some(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")], "placement": { "type": "header", "name": "Authorization", "template": "Bearer {{secret}}" }, "secret": SECRET, "scrub_echo": false })),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let step = r#"export default async ({ url, marker }) => { const r = await fetch(url); await r.text(); return { seen: marker + "-out", status: r.status } }"#;
    let run = |marker: &str| {
        let (s, v) = api.call(
            "POST",
            "/v1/workspaces/acme/runs",
            Some(&t),
            Some(json!({ "code": step, "input": { "url": upstream.url("api.test", "/denied"), "marker": marker }, "connectors": ["svc"] })),
        );
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        v["run_id"].as_str().unwrap().to_string()
    };
    let detail = |id: &str| {
        let (s, v) = api.call(
            "GET",
            &format!("/v1/workspaces/acme/runs/{id}"),
            Some(&t),
            None,
        );
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    };

    // Off (the default): nothing of the input or output is stored.
    let off = run("plain-marker-kept-off");
    let d = detail(&off);
    assert_eq!(
        (
            d["io_kept"].clone(),
            d["input"].clone(),
            d["output"].clone()
        ),
        (json!(false), Value::Null, Value::Null),
        "{d}"
    );
    let bytes = api.store_bytes();
    assert!(!bytes.is_empty());
    assert!(
        !holds(&bytes, "plain-marker-kept-off"),
        "the input is in the store file"
    );

    // The workspace opts in: its own token may; another workspace's gets the same 404 as nothing.
    let (s, _) = api.call(
        "PATCH",
        "/v1/workspaces/acme",
        Some(&other),
        Some(json!({ "keep_run_io": true })),
    );
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme",
        Some(&t),
        Some(json!({ "keep_run_io": "yes" })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme",
        Some(&t),
        Some(json!({ "keep_run_io": true })),
    );
    assert_eq!(
        (s, v["keep_run_io"].clone()),
        (StatusCode::OK, json!(true)),
        "{v}"
    );

    let on = run("plain-marker-kept-on");
    let d = detail(&on);
    // Checked first, as a bool: the messages below print the run.
    no_secret(&d);
    assert_eq!(d["io_kept"], true, "{d}");
    assert_eq!(d["input"]["marker"], "plain-marker-kept-on", "{d}");
    assert_eq!(
        d["output"],
        json!({ "seen": "plain-marker-kept-on-out", "status": 401 }),
        "{d}"
    );
    let bytes = api.store_bytes();
    assert!(
        !holds(&bytes, "plain-marker-kept-on"),
        "the input or output is in the store file in plain text"
    );
    assert!(
        !holds(&bytes, SECRET),
        "the secret is in the store file in plain text"
    );

    // The 401's status text and excerpt, scrubbed although echo scrubbing is off.
    let req = &d["requests"][0];
    assert_eq!(
        (req["status"].clone(), req["status_text"].clone()),
        (json!(401), json!("Unauthorized")),
        "{req}"
    );
    let excerpt = req["error_excerpt"].as_str().unwrap_or_default();
    assert!(
        excerpt.starts_with("{\"error\":\"bad credentials: "),
        "the excerpt is not the body's start"
    );
    assert!(excerpt.contains("[redacted]"));
    let (_, errors) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/svc/errors",
        Some(&t),
        None,
    );
    no_secret(&errors);
    let first = &errors["items"][0];
    assert_eq!(first["status_text"], "Unauthorized");
    assert_eq!(first["error_excerpt"].as_str(), Some(excerpt));
    // The upstream did get the secret, and JS saw the echo (its business): the record did not keep it.
    assert_eq!(
        upstream.requests()[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );

    // Off again: later runs keep nothing; earlier ones keep what they had.
    let (s, _) = api.call(
        "PATCH",
        "/v1/workspaces/acme",
        Some(&t),
        Some(json!({ "keep_run_io": false })),
    );
    assert_eq!(s, StatusCode::OK);
    let later = run("plain-marker-off-again");
    assert_eq!(detail(&later)["io_kept"], false);
    assert_eq!(detail(&on)["input"]["marker"], "plain-marker-kept-on");
}

/// "Every schema is typed, with enums, formats and examples": walks the served document and lists
/// every property without a type (or a `$ref`, or typed alternatives), every timestamp-named
/// property or parameter that is neither `format: date-time` nor documented Unix milliseconds, every
/// operation whose 2xx JSON body has no example, and every operation id that does not say what it
/// does (`verb_noun`, unique).
#[test]
fn openapi_schemas_are_typed_with_formats_and_examples() {
    let api = Api::start(1, 4, None);
    let (s, doc) = api.call("GET", "/openapi.json", None, None);
    assert_eq!(s, StatusCode::OK);
    let schemas = doc["components"]["schemas"].as_object().unwrap().clone();
    let resolve = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
            None => v.clone(),
        }
    };
    let mut problems = Vec::new();

    fn typed(p: &Value) -> bool {
        if p.get("type").is_some() || p.get("$ref").is_some() {
            return true;
        }
        ["oneOf", "anyOf", "allOf"].iter().any(|k| {
            p[*k]
                .as_array()
                .is_some_and(|alts| !alts.is_empty() && alts.iter().all(typed))
        })
    }
    /// `type: object` and nothing said about what is in it: a value with a type left untyped.
    fn bare_object(p: &Value) -> bool {
        p["type"] == "object"
            && [
                "properties",
                "additionalProperties",
                "oneOf",
                "anyOf",
                "allOf",
                "$ref",
            ]
            .iter()
            .all(|k| p.get(*k).is_none())
    }
    fn timestamp_named(name: &str) -> bool {
        name.ends_with("_at") || ["timestamp", "time", "start", "since", "until"].contains(&name)
    }
    fn dated(p: &Value) -> bool {
        let is_date = |p: &Value| p["format"] == "date-time";
        let is_ms = |p: &Value| {
            p["type"].to_string().contains("integer")
                && p["description"]
                    .as_str()
                    .is_some_and(|d| d.to_lowercase().contains("milliseconds"))
        };
        is_date(p)
            || is_ms(p)
            || ["oneOf", "anyOf"].iter().any(|k| {
                p[*k]
                    .as_array()
                    .is_some_and(|alts| alts.iter().any(|a| is_date(a) || is_ms(a)))
            })
    }
    fn walk(at: &str, schema: &Value, problems: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (name, p) in props {
                let here = format!("{at}.{name}");
                if !typed(p) {
                    problems.push(format!("{here}: no type"));
                }
                if bare_object(p) {
                    problems.push(format!("{here}: an object without properties"));
                }
                if timestamp_named(name) && !dated(p) {
                    problems.push(format!(
                        "{here}: a time without format date-time or documented milliseconds"
                    ));
                }
                walk(&here, p, problems);
            }
        }
        if schema.get("items").is_some() {
            walk(&format!("{at}[]"), &schema["items"], problems);
        }
        for k in ["oneOf", "anyOf", "allOf"] {
            for (i, alt) in schema[k].as_array().into_iter().flatten().enumerate() {
                walk(&format!("{at}/{k}{i}"), alt, problems);
            }
        }
    }
    for (name, schema) in &schemas {
        walk(name, schema, &mut problems);
    }

    let mut ids = std::collections::HashSet::new();
    let id_shape = |id: &str| {
        let mut parts = id.split('_');
        parts.next().is_some_and(|verb| {
            [
                "get", "list", "create", "update", "delete", "run", "rotate", "test", "revoke",
            ]
            .contains(&verb)
        }) && parts.next().is_some()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{} {path}", method.to_uppercase());
            let id = op["operationId"].as_str().unwrap_or_default();
            if !id_shape(id) {
                problems.push(format!("{at}: operation id {id:?} is not verb_noun"));
            }
            if !ids.insert(id.to_string()) {
                problems.push(format!("{at}: operation id {id:?} is used twice"));
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                if !typed(&p["schema"]) {
                    problems.push(format!("{at}: parameter {name} has no type"));
                }
                if timestamp_named(name) && !dated(&p["schema"]) {
                    problems.push(format!(
                        "{at}: parameter {name} is a time without format date-time"
                    ));
                }
            }
            if let Some(body) = op["requestBody"]["content"]["application/json"].as_object() {
                let schema = resolve(&body["schema"]);
                if body.get("example").is_none() && schema.get("example").is_none() {
                    problems.push(format!("{at}: request body without an example"));
                }
            }
            for (status, resp) in op["responses"].as_object().unwrap() {
                if !status.starts_with('2') {
                    continue;
                }
                if let Some(body) = resp["content"]["application/json"].as_object() {
                    let schema = resolve(&body["schema"]);
                    if !typed(&body["schema"]) || bare_object(&schema) {
                        problems.push(format!("{at} {status}: untyped body"));
                    }
                    if body.get("example").is_none() && schema.get("example").is_none() {
                        problems.push(format!("{at} {status}: body without an example"));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_run_may_be_several_modules() {
    let api = Api::start(1, 4, None);
    let t = api.workspace("acme");
    let (s, run) = api.call(
        "POST",
        "/v1/workspaces/acme/runs",
        Some(&t),
        Some(json!({
            "main": "import { twice } from './lib/math.js'; export default (i) => twice(i.n);",
            "name": "main.js",
            "modules": { "./lib/math.js": "export const twice = (n) => { if (n < 0) throw new Error('negative'); return n * 2; };" },
            "input": { "n": 21 },
        })),
    );
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["output"], json!(42));
    // An error names the module as the run named it.
    let (_, run) = api.call(
        "POST",
        "/v1/workspaces/acme/runs",
        Some(&t),
        Some(json!({
            "code": "import { twice } from './lib/math.js'; export default () => twice(-1);",
            "modules": { "./lib/math.js": "export const twice = (n) => { if (n < 0) throw new Error('negative'); return n * 2; };" },
        })),
    );
    assert_eq!(run["error"]["location"], json!("lib/math.js:1:48"), "{run}");
    // Both forms at once, or a module name that leaves the step, are refused.
    for body in [
        json!({ "code": "export default () => 1", "main": "export default () => 2" }),
        json!({ "code": "export default () => 1", "modules": { "../escape.js": "export default 1" } }),
        json!({ "code": "export default () => 1", "modules": { "/etc/passwd": "x" } }),
        json!({ "input": 1 }),
    ] {
        let (s, err) = api.call(
            "POST",
            "/v1/workspaces/acme/runs",
            Some(&t),
            Some(body.clone()),
        );
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {err}");
    }
}
