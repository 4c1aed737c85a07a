//! Who may do what through the API: every operation of `/openapi.json` against every scope, the
//! token lifecycle (scopes, expiry, revocation), the audit trail as the workspace reads it, and "test
//! connection" with its scrubbed report.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::Api;
use crate::support::{Reply, TestServer};

const SECRET: &str = "sk_live_gov_S3cretValue_a1b2c3d4e5";
const OP_TOKEN: &str = "operator-token-for-tests-0123456789";

/// What each operation needs, stated here independently of the server's table: a mismatch, or an
/// operation missing here, fails the test.
fn expected_rules() -> HashMap<(&'static str, &'static str), &'static str> {
    HashMap::from([
        (("GET", "/health"), "public"),
        (("GET", "/metrics"), "public"),
        (("GET", "/v1/me"), "any"),
        (("GET", "/v1/presets"), "any"),
        (("GET", "/v1/workspaces"), "operator"),
        (("POST", "/v1/workspaces"), "operator"),
        (("DELETE", "/v1/workspaces/{ws}"), "operator"),
        (("PATCH", "/v1/workspaces/{ws}"), "manage"),
        (("GET", "/v1/workspaces/{ws}/tokens"), "manage"),
        (("POST", "/v1/workspaces/{ws}/tokens"), "manage"),
        (("DELETE", "/v1/workspaces/{ws}/tokens/{id}"), "manage"),
        (("GET", "/v1/workspaces/{ws}/audit"), "read"),
        (("POST", "/v1/workspaces/{ws}/runs"), "run"),
        (("GET", "/v1/workspaces/{ws}/runs"), "run"),
        (("GET", "/v1/workspaces/{ws}/runs/{id}"), "run"),
        (("GET", "/v1/workspaces/{ws}/connectors"), "read"),
        (("POST", "/v1/workspaces/{ws}/connectors"), "manage"),
        (("GET", "/v1/workspaces/{ws}/connectors/{name}"), "read"),
        (("PATCH", "/v1/workspaces/{ws}/connectors/{name}"), "manage"),
        (
            ("DELETE", "/v1/workspaces/{ws}/connectors/{name}"),
            "manage",
        ),
        (
            ("POST", "/v1/workspaces/{ws}/connectors/{name}/test"),
            "manage",
        ),
        (
            ("GET", "/v1/workspaces/{ws}/connectors/{name}/stats"),
            "read",
        ),
        (
            ("GET", "/v1/workspaces/{ws}/connectors/{name}/errors"),
            "read",
        ),
        (("GET", "/v1/workspaces/{ws}/blocked"), "read"),
    ])
}

fn token(api: &Api, ws: &str, by: &str, label: &str, scopes: &[&str]) -> (String, String) {
    let (s, v) = api.call(
        "POST",
        &format!("/v1/workspaces/{ws}/tokens"),
        Some(by),
        Some(json!({ "label": label, "scopes": scopes })),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

fn no_secret(v: &Value) {
    assert!(
        !v.to_string().contains(SECRET),
        "a response held the secret"
    );
}

/// A workspace `acme` with a connector `svc` to `upstream`, and one run.
fn setup(api: &Api, upstream: &TestServer) -> String {
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces",
        Some(OP_TOKEN),
        Some(json!({ "name": "acme" })),
    );
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        Some(OP_TOKEN),
        Some(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")],
            "placement": { "type": "header", "name": "Authorization", "template": "Bearer {{secret}}" },
            "secret": SECRET })),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, run) = api.call(
        "POST",
        "/v1/workspaces/acme/runs",
        Some(OP_TOKEN),
        Some(json!({ "code": "export default () => 1", "input": {} })),
    );
    assert_eq!(s, StatusCode::OK, "{run}");
    run["run_id"].as_str().unwrap().to_string()
}

#[test]
fn every_operation_is_checked_against_every_scope() {
    let upstream = TestServer::start(|_| Reply::json(&json!({ "ok": true })));
    let api = Api::start(1, 4, Some(&upstream));
    let run_id = setup(&api, &upstream);
    let (run_t, _) = token(&api, "acme", OP_TOKEN, "run-only", &["run"]);
    let (read_t, _) = token(&api, "acme", OP_TOKEN, "read-only", &["read"]);
    let (manage_t, _) = token(&api, "acme", OP_TOKEN, "manage-only", &["manage"]);
    let (_, victim_id) = token(&api, "acme", OP_TOKEN, "victim", &["read"]);
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces",
        Some(OP_TOKEN),
        Some(json!({ "name": "beta" })),
    );
    assert_eq!(s, StatusCode::CREATED);
    let (beta_t, _) = token(
        &api,
        "beta",
        OP_TOKEN,
        "beta-all",
        &["run", "read", "manage"],
    );

    let (s, doc) = api.call("GET", "/openapi.json", None, None);
    assert_eq!(s, StatusCode::OK);
    let rules = expected_rules();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                continue;
            }
            let rule = rules
                .iter()
                .find(|((rm, rp), _)| *rm == m && *rp == path)
                .map(|(_, r)| *r)
                .unwrap_or_else(|| panic!("{m} {path}: this test states no scope for it"));
            ops.push((m, path.clone(), rule));
        }
    }
    assert_eq!(
        ops.len(),
        rules.len(),
        "every stated rule names an operation"
    );
    // Deletes last, so what they remove is there for everything else.
    ops.sort_by_key(|(m, p, _)| (m == "DELETE", p.contains("{name}"), p.clone()));

    for (method, template, rule) in &ops {
        let path = template
            .replace("{ws}", "acme")
            .replace("{name}", "svc")
            .replace(
                "{id}",
                if template.contains("/tokens/") {
                    &victim_id
                } else {
                    &run_id
                },
            );
        let body = matches!(method.as_str(), "POST" | "PATCH").then(|| json!({}));
        let call = |t: Option<&str>| api.call(method, &path, t, body.clone());
        let op = format!("{method} {template}");
        if *rule == "public" {
            assert_eq!(call(None).0, StatusCode::OK, "{op} is public");
            continue;
        }
        assert_eq!(
            call(None).0,
            StatusCode::UNAUTHORIZED,
            "{op} without a token"
        );
        // Another workspace's token learns nothing about this one.
        if template.starts_with("/v1/workspaces/{ws}") && *rule != "operator" {
            let (s, v) = call(Some(&beta_t));
            assert_eq!(s, StatusCode::NOT_FOUND, "{op} with beta's token: {v}");
        }
        for (t, scope) in [(&run_t, "run"), (&read_t, "read"), (&manage_t, "manage")] {
            let (s, v) = call(Some(t));
            let allowed = *rule == "any" || *rule == scope;
            if allowed {
                assert!(
                    s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                    "{op} with a {scope} token: {s} {v}"
                );
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{op} with a {scope} token: {v}");
                let msg = v["error"]["message"].as_str().unwrap_or_default();
                if *rule == "operator" {
                    assert!(msg.contains("operator"), "{op}: {msg}");
                } else {
                    assert!(msg.contains(&format!("`{rule}`")), "{op}: {msg}");
                }
            }
            no_secret(&v);
        }
        if !(method == "DELETE" && template == "/v1/workspaces/{ws}") {
            let (s, v) = call(Some(OP_TOKEN));
            assert!(
                s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                "{op} with the operator token: {s} {v}"
            );
        }
    }
}

#[test]
fn tokens_are_created_with_scopes_listed_without_secrets_and_revoked() {
    let upstream = TestServer::start(|_| Reply::json(&json!({ "ok": true })));
    let api = Api::start(1, 4, Some(&upstream));
    setup(&api, &upstream);
    let (manage_t, manage_id) = token(&api, "acme", OP_TOKEN, "admin", &["manage"]);

    // A manage token makes a run token for an orchestrator, with an expiry.
    let (s, made) = api.call(
        "POST",
        "/v1/workspaces/acme/tokens",
        Some(&manage_t),
        Some(json!({ "label": "orchestrator", "scopes": ["run"], "expires_at": "2099-01-01T00:00:00Z" })),
    );
    assert_eq!(s, StatusCode::CREATED, "{made}");
    assert_eq!(made["scopes"], json!(["run"]));
    assert_eq!(made["expires_at"], "2099-01-01T00:00:00Z");
    let run_t = made["token"].as_str().unwrap().to_string();
    let (s, me) = api.call("GET", "/v1/me", Some(&run_t), None);
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        me,
        json!({ "kind": "workspace", "workspace": "acme", "label": "orchestrator", "scopes": ["run"] })
    );
    // It runs steps, and cannot touch connectors or tokens.
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces/acme/runs",
        Some(&run_t),
        Some(json!({ "code": "export default () => 2", "input": {} })),
    );
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme/connectors/svc",
        Some(&run_t),
        Some(json!({ "patterns": ["https://attacker.example/*"], "secret": "guess" })),
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces/acme/tokens",
        Some(&run_t),
        Some(json!({ "label": "escalate", "scopes": ["manage"] })),
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "a run token cannot mint tokens");

    // The list shows label, scopes, dates and state; never a token.
    let (s, list) = api.call("GET", "/v1/workspaces/acme/tokens", Some(&manage_t), None);
    assert_eq!(s, StatusCode::OK, "{list}");
    let text = list.to_string();
    assert!(
        !text.contains(&run_t) && !text.contains(&manage_t),
        "a token was listed"
    );
    let orch = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "orchestrator")
        .expect("listed");
    assert_eq!(orch["scopes"], json!(["run"]));
    assert_eq!(orch["state"], "active");
    assert_eq!(orch["expires_at"], "2099-01-01T00:00:00Z");
    assert!(orch["last_used_at"].is_string(), "used above: {orch}");
    assert!(orch.get("token").is_none() && orch.get("token_hash").is_none());

    // Revoked: it stops working at once, and stays listed as revoked.
    let id = made["id"].as_str().unwrap();
    let (s, _) = api.call(
        "DELETE",
        &format!("/v1/workspaces/acme/tokens/{id}"),
        Some(&manage_t),
        None,
    );
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        api.call("GET", "/v1/me", Some(&run_t), None).0,
        StatusCode::UNAUTHORIZED
    );
    let (_, list) = api.call("GET", "/v1/workspaces/acme/tokens", Some(&manage_t), None);
    let orch = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "orchestrator")
        .unwrap();
    assert_eq!(orch["state"], "revoked");
    assert!(orch["revoked_at"].is_string());
    // Revoking twice, or another workspace's token id, is a 404.
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v1/workspaces/acme/tokens/{id}"),
            Some(&manage_t),
            None
        )
        .0,
        StatusCode::NOT_FOUND
    );

    // An expiry that has passed: the token no longer authenticates.
    let soon = time_in(1500);
    let (s, made) = api.call(
        "POST",
        "/v1/workspaces/acme/tokens",
        Some(&manage_t),
        Some(json!({ "label": "short", "scopes": ["read"], "expires_at": soon })),
    );
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let short = made["token"].as_str().unwrap().to_string();
    assert_eq!(
        api.call("GET", "/v1/me", Some(&short), None).0,
        StatusCode::OK
    );
    std::thread::sleep(std::time::Duration::from_millis(1800));
    assert_eq!(
        api.call("GET", "/v1/me", Some(&short), None).0,
        StatusCode::UNAUTHORIZED,
        "an expired token is refused"
    );
    let (_, list) = api.call("GET", "/v1/workspaces/acme/tokens", Some(&manage_t), None);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["label"] == "short" && t["state"] == "expired"));

    // Bad grants are refused, naming the field.
    for (body, field) in [
        (json!({ "label": "x", "scopes": [] }), "scopes"),
        (json!({ "label": "x", "scopes": ["admin"] }), "scopes"),
        (json!({ "label": "x" }), "scopes"),
        (
            json!({ "label": "x", "scopes": ["run"], "expires_at": "2001-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (
            json!({ "label": "x", "scopes": ["run"], "expires_at": "tomorrow" }),
            "expires_at",
        ),
    ] {
        let (s, v) = api.call(
            "POST",
            "/v1/workspaces/acme/tokens",
            Some(&manage_t),
            Some(body.clone()),
        );
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(
            v["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .contains(field)
                || v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(field),
            "{body}: {v}"
        );
    }
    // Another workspace's token id is not this workspace's to revoke: 404, and it keeps working.
    let (s, _) = api.call(
        "POST",
        "/v1/workspaces",
        Some(OP_TOKEN),
        Some(json!({ "name": "beta" })),
    );
    assert_eq!(s, StatusCode::CREATED);
    let (beta_t, beta_id) = token(&api, "beta", OP_TOKEN, "beta", &["read"]);
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v1/workspaces/acme/tokens/{beta_id}"),
            Some(&manage_t),
            None
        )
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", "/v1/me", Some(&beta_t), None).0,
        StatusCode::OK
    );
    // A manage token can revoke itself; then it is gone too.
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v1/workspaces/acme/tokens/{manage_id}"),
            Some(&manage_t),
            None
        )
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "/v1/workspaces/acme/tokens", Some(&manage_t), None)
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// Unix milliseconds (which the API takes as well as RFC 3339) for now plus `ms`.
fn time_in(ms: u128) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    (now + ms).to_string()
}

#[test]
fn the_audit_trail_says_who_what_and_from_where_newest_first() {
    let upstream = TestServer::start(|_| Reply::json(&json!({ "ok": true })));
    let api = Api::start(1, 4, Some(&upstream));
    setup(&api, &upstream);
    let (manage_t, _) = token(&api, "acme", OP_TOKEN, "deploy bot", &["manage"]);
    let (read_t, _) = token(&api, "acme", OP_TOKEN, "auditor", &["read"]);
    let (run_t, _) = token(&api, "acme", OP_TOKEN, "runner", &["run"]);
    let (s, v) = api.call(
        "PATCH",
        "/v1/workspaces/acme/connectors/svc",
        Some(&manage_t),
        Some(json!({ "secret": "rotated-value-77", "patterns": [upstream.pattern("api.test")] })),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = api.call(
        "DELETE",
        "/v1/workspaces/acme/connectors/svc",
        Some(&manage_t),
        None,
    );
    assert_eq!(s, StatusCode::NO_CONTENT);

    assert_eq!(
        api.call("GET", "/v1/workspaces/acme/audit", Some(&run_t), None)
            .0,
        StatusCode::FORBIDDEN,
        "the audit trail needs `read`"
    );
    let (s, page) = api.call("GET", "/v1/workspaces/acme/audit", Some(&read_t), None);
    assert_eq!(s, StatusCode::OK, "{page}");
    let text = page.to_string();
    assert!(
        !text.contains(SECRET) && !text.contains("rotated-value-77"),
        "the audit trail held a secret"
    );
    assert!(!text.contains(&manage_t), "the audit trail held a token");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items[0]["action"], "connector.delete", "{page}");
    assert_eq!(items[0]["who"], "token \"deploy bot\"");
    assert_eq!(items[0]["connector"], "svc");
    assert_eq!(items[0]["address"], "127.0.0.1");
    assert_eq!(items[1]["action"], "connector.update");
    assert!(items[1]["detail"].as_str().unwrap().contains("secret"));
    let ids: Vec<i64> = items.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(items
        .iter()
        .any(|e| e["action"] == "token.create" && e["who"] == "operator"));

    // Page by page, the same entries with no overlap.
    let mut seen = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let q = match before {
            Some(b) => format!("?limit=2&before={b}"),
            None => "?limit=2".to_string(),
        };
        let (s, p) = api.call(
            "GET",
            &format!("/v1/workspaces/acme/audit{q}"),
            Some(&read_t),
            None,
        );
        assert_eq!(s, StatusCode::OK, "{p}");
        let got: Vec<i64> = p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert!(got.len() <= 2);
        seen.extend(got);
        match p["next"].as_i64() {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids, "pages add up to the whole trail");
}

#[test]
fn test_connection_reports_the_status_and_a_scrubbed_upstream_error() {
    let upstream = TestServer::start(|req| match req.path.as_str() {
        // An upstream that quotes the credential it refused, as some do.
        "/v1/denied" => Reply::json(&json!({
            "error": format!("Invalid API key: {}", req.header("authorization").unwrap_or_default())
        }))
        .with_status(401),
        _ => Reply::json(&json!({ "ok": true })),
    });
    let api = Api::start(1, 4, Some(&upstream));
    setup(&api, &upstream);
    let (manage_t, _) = token(&api, "acme", OP_TOKEN, "admin", &["manage", "read"]);

    let (s, ok) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors/svc/test",
        Some(&manage_t),
        Some(json!({ "url": upstream.url("api.test", "/v1/balance?key=abc") })),
    );
    assert_eq!(s, StatusCode::OK, "{ok}");
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["status"], 200);
    assert!(ok["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(
        !ok["url"].as_str().unwrap().contains("key=abc"),
        "the query is not shown"
    );
    let sent = upstream.requests();
    assert!(
        sent[0].header("authorization") == Some(format!("Bearer {SECRET}").as_str()),
        "the secret was injected by Rust"
    );

    let (s, bad) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors/svc/test",
        Some(&manage_t),
        Some(json!({ "url": upstream.url("api.test", "/v1/denied") })),
    );
    assert_eq!(s, StatusCode::OK, "{bad}");
    no_secret(&bad);
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["status"], 401);
    assert_eq!(bad["status_text"], "Unauthorized");
    let excerpt = bad["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("Invalid API key"), "{excerpt}");
    assert!(excerpt.len() <= 300 + 3);

    // No URL: a connector that is not a preset's has no check URL to fall back on.
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors/svc/test",
        Some(&manage_t),
        Some(json!({})),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "url");
    // A URL outside the connector's patterns is refused before anything is sent.
    let before = upstream.requests().len();
    let (s, v) = api.call(
        "POST",
        "/v1/workspaces/acme/connectors/svc/test",
        Some(&manage_t),
        Some(json!({ "url": "https://attacker.example/collect" })),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "url");
    assert_eq!(upstream.requests().len(), before);

    // Both tests used the secret, and monitoring counts them.
    let (s, stats) = api.call(
        "GET",
        "/v1/workspaces/acme/connectors/svc/stats",
        Some(&manage_t),
        None,
    );
    assert_eq!(s, StatusCode::OK, "{stats}");
    assert_eq!(stats["requests_24h"], 2, "{stats}");
    assert_eq!(stats["errors_24h"], 1, "{stats}");
}
