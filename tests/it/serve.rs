//! `codestep serve` as a real process: it drains running steps on SIGTERM, and two processes on one
//! PostgreSQL store see the same connectors and add up each other's counts.

use std::time::Duration;

use serde_json::json;

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
        .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
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
