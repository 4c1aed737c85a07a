//! `codestep serve` as a real process: it drains running steps on SIGTERM, and two processes on one
//! PostgreSQL store see the same connectors and add up each other's counts.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::serve::{call, Serve, OP};
use crate::support::{Reply, TestServer};

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
    let (net, _ca) = upstream.cli_net_args();
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
        let st = &list["items"][0]["stats"];
        assert_eq!(
            (&st["requests_24h"], &st["errors_24h"], &st["alert"]),
            (&json!(5), &json!(2), &json!(true)),
            "{st}"
        );
        // Both nodes read the same newest attempts: two of five failed, so some errors, not failing.
        assert_eq!(
            (&st["health"], &st["recent_requests"], &st["recent_errors"]),
            (&json!("some_errors"), &json!(5), &json!(2)),
            "{st}"
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

/// A node started with another master key than the store's secrets were sealed with refuses to start,
/// naming the problem, instead of failing every run that needs a secret.
#[test]
fn serve_refuses_a_master_key_the_store_does_not_know() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let db = db.to_str().unwrap();
    {
        let serve = Serve::start(db, &[]);
        assert_eq!(
            serve
                .call(
                    "POST",
                    "/v1/workspaces",
                    OP,
                    Some(json!({ "name": "acme" }))
                )
                .0,
            201
        );
        let (s, v) = serve.call(
            "POST",
            "/v1/workspaces/acme/connectors",
            OP,
            Some(json!({ "name": "svc", "preset": "stripe", "secret": "sk_test_keycheck_123" })),
        );
        assert_eq!(s, 201, "{v}");
    }
    let other_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let out = std::process::Command::new(crate::support::codestep_binary())
        .args([
            "serve",
            "--create-store",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db,
        ])
        .env("CODESTEP_MASTER_KEY", other_key)
        .env("CODESTEP_OPERATOR_TOKEN", OP)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("master key version 1") && stderr.contains("not the key"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it must not listen");
}

/// The server's logs: JSON lines on a pipe, one access event per request with the client's request id
/// (or a fresh one, returned either way), one event per run, and a start-up event that says how the
/// server runs; never a token or a query value.
#[test]
fn logs_are_json_lines_with_access_run_and_start_events() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::support::codestep_binary())
        .args([
            "serve",
            "--create-store",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--db",
        ])
        .arg(dir.path().join("c.db"))
        .env("CODESTEP_MASTER_KEY", base64_key())
        .env("CODESTEP_OPERATOR_TOKEN", OP)
        .env_remove("CODESTEP_LOG")
        .env_remove("CODESTEP_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert_eq!(
        call(
            &base,
            "POST",
            "/v1/workspaces",
            OP,
            Some(json!({ "name": "acme" }))
        )
        .0,
        201
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (given, generated) = rt.block_on(async {
        let http = reqwest::Client::new();
        let given = http
            .post(format!(
                "{base}/v1/workspaces/acme/runs?token=query-value-not-for-logs"
            ))
            .bearer_auth(OP)
            .header("x-request-id", "req-1234")
            .header("content-type", "application/json")
            .body(json!({ "code": "export default () => 2" }).to_string())
            .send()
            .await
            .unwrap();
        let generated = http
            .get(format!("{base}/v1/workspaces/acme/connectors"))
            .bearer_auth(OP)
            .send()
            .await
            .unwrap();
        (
            given.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
            generated.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        )
    });
    assert_eq!(given, "req-1234");
    assert_eq!(generated.len(), 32, "a fresh id: {generated}");
    // SAFETY: signalling our own child process; it drains and exits.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    let events: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    let start = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("starting"))
        })
        .expect("a start-up event");
    assert_eq!(start["store"], "sqlite", "{start}");
    assert_eq!(start["workers"], 1, "{start}");
    assert_eq!(start["sandbox"], "seccomp", "{start}");
    assert!(
        start["version"].is_string() && start["listen"].is_string(),
        "{start}"
    );
    let access = events
        .iter()
        .find(|e| e["request_id"] == "req-1234")
        .expect("the access event of the run request");
    assert_eq!(access["route"], "/v1/workspaces/{ws}/runs", "{access}");
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["token"], "operator", "{access}");
    assert!(
        access["duration_ms"].is_number() && access["level"] == "INFO",
        "{access}"
    );
    assert!(events.iter().any(|e| e["request_id"] == generated.as_str()));
    let run = events
        .iter()
        .find(|e| e["message"] == "run")
        .expect("a run event");
    assert_eq!(run["workspace"], "acme", "{run}");
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["fetches"], 0, "{run}");
    assert!(
        !err.contains("query-value-not-for-logs"),
        "a query value was logged"
    );
    assert!(!err.contains(OP), "the operator token was logged");
}

fn base64_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}
