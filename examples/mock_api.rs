//! A stand-in for the Stripe API on this machine, for `scripts/demo` (no network needed).
//!
//! It serves HTTPS with the test CA on `--bind` (default 127.0.0.1:443), writes the CA certificate to
//! `--ca-out`, and answers only requests that carry `Authorization: Bearer $MOCK_EXPECTED_KEY`: so a
//! 200 proves codestep injected the key, which the step itself never had.
//!
//! `cargo run --example mock_api -- --bind 127.0.0.1:443 --ca-out target/demo/ca.pem --seconds 60`

#[path = "../tests/it/support/mod.rs"]
mod support;

use serde_json::json;
use support::{RecordedRequest, Reply, TestServer};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn customers() -> Vec<serde_json::Value> {
    (1..=5).map(|i| json!({ "id": format!("cus_{i:03}"), "object": "customer", "email": format!("user{i}@example.com") })).collect()
}

fn handle(req: &RecordedRequest, expected: &str) -> Reply {
    if req.header("authorization") != Some(format!("Bearer {expected}").as_str()) {
        return Reply::json(&json!({ "error": { "type": "invalid_request_error", "message": "Invalid API Key provided" } }))
            .with_status(401);
    }
    let q: std::collections::HashMap<String, String> = req.query_pairs().into_iter().collect();
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/charges") => {
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(10)
                .min(100);
            let data: Vec<_> = (0..limit.min(7))
                .map(|i| {
                    json!({ "id": format!("ch_{i:03}"), "object": "charge", "amount": 1000 + i * 250,
                            "currency": if i % 3 == 0 { "eur" } else { "usd" },
                            "status": if i == 4 { "failed" } else { "succeeded" } })
                })
                .collect();
            Reply::json(&json!({ "object": "list", "data": data, "has_more": false }))
        }
        ("GET", "/v1/customers") => {
            let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
            let all = customers();
            let start = q
                .get("starting_after")
                .and_then(|after| {
                    all.iter()
                        .position(|c| c["id"] == after.as_str())
                        .map(|p| p + 1)
                })
                .unwrap_or(0);
            let page: Vec<_> = all.iter().skip(start).take(limit).cloned().collect();
            let has_more = start + page.len() < all.len();
            Reply::json(&json!({ "object": "list", "data": page, "has_more": has_more }))
        }
        ("POST", "/v1/customers") => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
            Reply::json(&json!({ "id": "cus_new001", "object": "customer", "email": body["email"], "name": body["name"] }))
                .with_status(201)
        }
        _ => Reply::json(&json!({ "error": { "message": "Unrecognized request URL" } }))
            .with_status(404),
    }
}

fn main() {
    let bind = arg("--bind").unwrap_or_else(|| "127.0.0.1:443".into());
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(600);
    let expected = std::env::var("MOCK_EXPECTED_KEY").unwrap_or_else(|_| "sk_test_demo".into());
    let server = TestServer::start_on(&bind, move |req| handle(req, &expected));
    if let Some(path) = arg("--ca-out") {
        if let Some(dir) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(dir).expect("create the CA output folder");
        }
        std::fs::write(&path, &server.ca_pem).expect("write the CA certificate");
    }
    println!(
        "mock Stripe API on https://api.stripe.com (bound to {})",
        server.addr
    );
    std::thread::sleep(std::time::Duration::from_secs(seconds));
}
