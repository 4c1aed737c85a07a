//! `codestep serve` as a real process: it drains running steps on SIGTERM, and two processes on one
//! PostgreSQL store see the same connectors and add up each other's counts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::{Reply, TestServer};

pub(crate) const OP: &str = "operator-token-for-serve-tests-42";

pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) base: String,
    _dir: Option<tempfile::TempDir>,
}

impl Serve {
    pub(crate) fn start(db: &str, extra: &[String]) -> Serve {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_codestep"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(if extra.iter().any(|a| a == "--workers") {
                &[][..]
            } else {
                &["--workers", "1"][..]
            })
            .args(extra)
            .env("CODESTEP_MASTER_KEY", key)
            .env("CODESTEP_OPERATOR_TOKEN", OP)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start codestep serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Serve {
            child,
            base,
            _dir: None,
        }
    }

    /// A server on a fresh SQLite file, with the workspace `acme`.
    pub(crate) fn with_acme(extra: &[String]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = Serve::start(dir.path().join("c.db").to_str().unwrap(), extra);
        serve._dir = Some(dir);
        let (status, body) = serve.call(
            "POST",
            "/v1/workspaces",
            OP,
            Some(json!({ "name": "acme" })),
        );
        assert_eq!(status, 201, "{body}");
        serve
    }

    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(&self.base, method, path, token, body)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (
            status,
            serde_json::from_str(&res.text().await.unwrap_or_default()).unwrap_or(Value::Null),
        )
    })
}

#[test]
fn sigterm_drains_running_steps_then_exits() {
    let mut serve = Serve::with_acme(&[]);
    let base = serve.base.clone();
    let running = std::thread::spawn(move || {
        call(
            &base,
            "POST",
            "/v1/workspaces/acme/runs",
            OP,
            Some(
                json!({ "code": "export default () => new Promise(r => setTimeout(() => r('finished'), 1500))" }),
            ),
        )
    });
    std::thread::sleep(Duration::from_millis(400));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGTERM) };
    let (status, body) = running.join().unwrap();
    assert_eq!(
        (status, body["output"].clone()),
        (200, json!("finished")),
        "the running step was cut short"
    );
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = serve.child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited.expect("serve did not exit after SIGTERM").success());
}

#[test]
fn two_nodes_on_one_postgres_share_connectors_and_counts() {
    let location = crate::store::fresh_pg_location_blocking();
    let upstream = TestServer::start(|req| {
        if req.path == "/fail" {
            Reply::status(502)
        } else {
            Reply::ok("{}")
        }
    });
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &upstream.ca_pem).unwrap();
    let net = vec![
        "--allow-private".to_string(),
        "127.0.0.1/32".to_string(),
        "--ca-cert".to_string(),
        ca.path().to_str().unwrap().to_string(),
        "--resolve".to_string(),
        "api.test:127.0.0.1".to_string(),
    ];
    let a = Serve::start(&location, &net);
    let b = Serve::start(&location, &net);
    assert_eq!(
        a.call(
            "POST",
            "/v1/workspaces",
            OP,
            Some(json!({ "name": "shared" }))
        )
        .0,
        201
    );
    let (s, v) = b.call(
        "POST",
        "/v1/workspaces/shared/connectors",
        OP,
        Some(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")], "placement": { "type": "query", "param": "key" }, "secret": "node-secret-123456" })),
    );
    assert_eq!(s, 201, "{v}");
    let (_, list) = a.call("GET", "/v1/workspaces/shared/connectors", OP, None);
    assert_eq!(
        list["items"][0]["name"], "svc",
        "node A sees the connector node B created"
    );

    let step = json!({ "code": "export default async ({ u }) => (await fetch(u)).status", "connectors": ["svc"] });
    let mut runs = Vec::new();
    for (node, path) in [
        (&a, "/ok"),
        (&b, "/ok"),
        (&a, "/fail"),
        (&b, "/fail"),
        (&b, "/ok"),
    ] {
        let mut body = step.clone();
        body["input"] = json!({ "u": upstream.url("api.test", path) });
        let (s, v) = node.call("POST", "/v1/workspaces/shared/runs", OP, Some(body));
        assert_eq!(s, 200, "{v}");
        runs.push(v["output"].clone());
    }
    assert_eq!(
        runs,
        vec![json!(200), json!(200), json!(502), json!(502), json!(200)]
    );
    for node in [&a, &b] {
        let (_, list) = node.call("GET", "/v1/workspaces/shared/connectors", OP, None);
        assert_eq!(
            list["items"][0]["stats"],
            json!({ "requests_24h": 5, "errors_24h": 2, "alert": true })
        );
    }
}

#[test]
fn operator_caps_bound_what_a_run_asks_for() {
    let serve = Serve::with_acme(&["--max-timeout-ms".to_string(), "300".to_string()]);
    let (status, body) = serve.call(
        "POST",
        "/v1/workspaces/acme/runs",
        OP,
        Some(json!({ "code": "export default () => { for (;;) {} }", "limits": { "timeout_ms": 60000 } })),
    );
    assert_eq!(status, 200);
    assert_eq!(body["error"]["kind"], "timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300 ms"),
        "{body}"
    );
}
