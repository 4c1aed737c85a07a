//! The vendor SDKs, unbundled, imported by name from a package directory (installed by
//! `scripts/sdk-deps`, pinned by `tests/sdk-packages/package-lock.json`), each making a realistic call
//! against a local HTTPS server that impersonates the vendor. The SDK gets a placeholder key; a
//! connector puts the real secret on the request. Each test checks that the upstream got the secret and
//! that the step got the parsed result. The streaming tests check that the first event reaches the step
//! while the server still holds the stream open.
//!
//! These tests fail, rather than skip, when the package directory is missing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use codestep::connector::{Connector, ConnectorSpec, Placement, Secret};
use codestep::engine::modules::resolve::PackageDir;
use codestep::engine::{Executor, ExecutorConfig, StepRequest, StepResult};
use serde_json::{json, Value};

use crate::support::{self, process_mode, Reply, ReplyBody, TestServer};

const SECRET: &str = "sk_live_51RealSecretForTheSdkTests0123456789";

pub fn package_dir() -> Arc<PackageDir> {
    let dir = std::env::var("CODESTEP_TEST_PACKAGES").expect(
        "CODESTEP_TEST_PACKAGES is not set: the SDK tests need the vendor SDKs. Install them with: eval \"$(scripts/sdk-deps)\"",
    );
    Arc::new(PackageDir::open(std::path::Path::new(&dir)).expect("the SDK package directory"))
}

fn executor() -> Executor {
    Executor::new(ExecutorConfig {
        workers: 1,
        egress: support::egress_config(),
        mode: process_mode(),
        packages: Some(package_dir()),
        ..Default::default()
    })
    .expect("executor")
}

fn connector(host: &str, server: &TestServer, placement: Placement) -> Connector {
    ConnectorSpec {
        name: host.split('.').rev().nth(1).unwrap_or(host).into(),
        patterns: vec![server.pattern(host)],
        placement,
        scrub_echo: false,
    }
    .validate(Secret::new(SECRET.into()))
    .expect("valid connector")
}

fn header(name: &str, template: &str) -> Placement {
    Placement::header(name.into(), template.into())
}

fn run(step: &str, input: Value, connector: Connector) -> StepResult {
    let exec = executor();
    let mut req = StepRequest::new(step, input);
    req.connectors = vec![connector];
    let r = exec.run_blocking(req);
    assert!(r.ok, "{:?} {:?}", r.error, r.logs);
    r
}

#[test]
fn stripe_creates_a_customer() {
    let server = TestServer::start(|req| {
        if req.method == "POST" && req.path == "/v1/customers" {
            Reply::json(&json!({ "id": "cus_123", "object": "customer", "email": "a@example.com" }))
        } else {
            Reply::status(404)
        }
    });
    let step = r#"
        import Stripe from "stripe";
        export default async ({ port }) => {
          const stripe = new Stripe("sk_test_placeholder", { host: "api.stripe.com", port, protocol: "https" });
          const customer = await stripe.customers.create({ email: "a@example.com" });
          return { id: customer.id, email: customer.email };
        };
    "#;
    let c = connector(
        "api.stripe.com",
        &server,
        header("Authorization", "Bearer {{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(
        r.output_value(),
        Some(json!({ "id": "cus_123", "email": "a@example.com" }))
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(
        String::from_utf8_lossy(&reqs[0].body),
        "email=a%40example.com"
    );
}

fn chat_completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{ "index": 0, "finish_reason": "stop",
                      "message": { "role": "assistant", "content": "Hello there" } }],
        "usage": { "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3 }
    })
}

#[test]
fn openai_chat_completion() {
    let server = TestServer::start(|req| {
        if req.method == "POST" && req.path == "/v1/chat/completions" {
            Reply::json(&chat_completion())
        } else {
            Reply::status(404)
        }
    });
    let step = r#"
        import OpenAI from "openai";
        export default async ({ port }) => {
          const client = new OpenAI({ apiKey: "placeholder", baseURL: `https://api.openai.com:${port}/v1` });
          const res = await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] });
          return res.choices[0].message.content;
        };
    "#;
    let c = connector(
        "api.openai.com",
        &server,
        header("Authorization", "Bearer {{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(r.output_value(), Some(json!("Hello there")));
    let reqs = server.requests();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
}

/// A server whose `path` answers with a server-sent-events stream held open after `first` until the
/// step asks for `/ack`; it says whether the ack came before the wait ran out.
fn streaming_server(
    path: &'static str,
    first: String,
    rest: String,
) -> (TestServer, Arc<(tokio::sync::Notify, AtomicBool)>) {
    let gate = Arc::new((tokio::sync::Notify::new(), AtomicBool::new(false)));
    let g = gate.clone();
    let server = TestServer::start(move |req| {
        if req.path == "/ack" {
            g.0.notify_one();
            Reply::json(&json!({ "ok": true }))
        } else if req.method == "POST" && req.path == path {
            Reply {
                body: ReplyBody::Gated {
                    first: first.clone().into_bytes(),
                    rest: rest.clone().into_bytes(),
                    gate: g.clone(),
                },
                ..Reply::status(200)
            }
            .header("content-type", "text/event-stream")
        } else {
            Reply::status(404)
        }
    });
    (server, gate)
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

#[test]
fn openai_streams_the_first_event_before_the_stream_ends() {
    let chunk = |content: &str| {
        json!({ "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": null }] })
    };
    let first = sse(None, &chunk("Hel"));
    let rest = sse(None, &chunk("lo")) + "data: [DONE]\n\n";
    let (server, gate) = streaming_server("/v1/chat/completions", first, rest);
    let step = r#"
        import OpenAI from "openai";
        export default async ({ port }) => {
          const client = new OpenAI({ apiKey: "placeholder", baseURL: `https://api.openai.com:${port}/v1` });
          const stream = await client.chat.completions.create({ model: "m", stream: true, messages: [{ role: "user", content: "Hi" }] });
          const parts = [];
          for await (const chunk of stream) {
            parts.push(chunk.choices[0].delta.content);
            // Tell the server the first event arrived; it holds the rest of the stream until then.
            if (parts.length === 1) await fetch(`https://api.openai.com:${port}/ack`);
          }
          return parts.join("");
        };
    "#;
    let c = connector(
        "api.openai.com",
        &server,
        header("Authorization", "Bearer {{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(r.output_value(), Some(json!("Hello")));
    assert!(
        gate.1.load(Ordering::SeqCst),
        "the step saw the first event only after the stream ended"
    );
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
}

#[test]
fn anthropic_message() {
    let server = TestServer::start(|req| {
        if req.method == "POST" && req.path == "/v1/messages" {
            Reply::json(&json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{ "type": "text", "text": "Hi from Claude" }],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": { "input_tokens": 1, "output_tokens": 3 }
            }))
        } else {
            Reply::status(404)
        }
    });
    let step = r#"
        import Anthropic from "@anthropic-ai/sdk";
        export default async ({ port }) => {
          const client = new Anthropic({ apiKey: "placeholder", baseURL: `https://api.anthropic.com:${port}` });
          const msg = await client.messages.create({ model: "claude-x", max_tokens: 16, messages: [{ role: "user", content: "Hi" }] });
          return msg.content[0].text;
        };
    "#;
    // The SDK sends x-api-key itself; the connector's header replaces it.
    let c = connector(
        "api.anthropic.com",
        &server,
        header("x-api-key", "{{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(r.output_value(), Some(json!("Hi from Claude")));
    let reqs = server.requests();
    assert_eq!(reqs[0].header_all("x-api-key"), vec![SECRET]);
    assert!(reqs[0].header("anthropic-version").is_some());
}

#[test]
fn anthropic_streams_the_first_event_before_the_stream_ends() {
    let start = json!({ "type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": { "input_tokens": 1, "output_tokens": 0 } } });
    let first = sse(Some("message_start"), &start)
        + &sse(
            Some("content_block_start"),
            &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        )
        + &sse(
            Some("content_block_delta"),
            &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "Hel" } }),
        );
    let rest = sse(
        Some("content_block_delta"),
        &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "lo" } }),
    ) + &sse(
        Some("content_block_stop"),
        &json!({ "type": "content_block_stop", "index": 0 }),
    ) + &sse(
        Some("message_delta"),
        &json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": 2 } }),
    ) + &sse(Some("message_stop"), &json!({ "type": "message_stop" }));
    let (server, gate) = streaming_server("/v1/messages", first, rest);
    let step = r#"
        import Anthropic from "@anthropic-ai/sdk";
        export default async ({ port }) => {
          const client = new Anthropic({ apiKey: "placeholder", baseURL: `https://api.anthropic.com:${port}` });
          const stream = await client.messages.create({ model: "claude-x", max_tokens: 16, stream: true, messages: [{ role: "user", content: "Hi" }] });
          let text = "";
          let acked = false;
          for await (const event of stream) {
            if (event.type === "content_block_delta") {
              text += event.delta.text;
              if (!acked) {
                acked = true;
                await fetch(`https://api.anthropic.com:${port}/ack`);
              }
            }
          }
          return text;
        };
    "#;
    let c = connector(
        "api.anthropic.com",
        &server,
        header("x-api-key", "{{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(r.output_value(), Some(json!("Hello")));
    assert!(
        gate.1.load(Ordering::SeqCst),
        "the step saw the first event only after the stream ended"
    );
    assert_eq!(server.requests()[0].header_all("x-api-key"), vec![SECRET]);
}

#[test]
fn octokit_gets_a_repository() {
    let server = TestServer::start(|req| {
        if req.method == "GET" && req.path == "/repos/octo/hello" {
            Reply::json(&json!({ "id": 1, "full_name": "octo/hello", "stargazers_count": 42 }))
        } else {
            Reply::status(404)
        }
    });
    let step = r#"
        import { Octokit } from "@octokit/rest";
        export default async ({ port }) => {
          const octokit = new Octokit({ auth: "placeholder", baseUrl: `https://api.github.com:${port}` });
          const { data, status } = await octokit.rest.repos.get({ owner: "octo", repo: "hello" });
          return { status, name: data.full_name, stars: data.stargazers_count };
        };
    "#;
    let c = connector(
        "api.github.com",
        &server,
        header("Authorization", "Bearer {{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(
        r.output_value(),
        Some(json!({ "status": 200, "name": "octo/hello", "stars": 42 }))
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert!(reqs[0]
        .header("user-agent")
        .is_some_and(|ua| ua.contains("octokit")));
}

#[test]
fn slack_posts_a_message() {
    let server = TestServer::start(|req| {
        if req.method == "POST" && req.path == "/api/chat.postMessage" {
            Reply::json(&json!({ "ok": true, "channel": "C1", "ts": "1700000000.000100" }))
        } else {
            Reply::status(404)
        }
    });
    let step = r#"
        import { WebClient } from "@slack/web-api";
        export default async ({ port }) => {
          const slack = new WebClient("xoxb-placeholder", { slackApiUrl: `https://slack.com:${port}/api/`, retryConfig: { retries: 0 } });
          const res = await slack.chat.postMessage({ channel: "C1", text: "hello" });
          return { ok: res.ok, ts: res.ts };
        };
    "#;
    let c = connector(
        "slack.com",
        &server,
        header("Authorization", "Bearer {{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(
        r.output_value(),
        Some(json!({ "ok": true, "ts": "1700000000.000100" }))
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert!(String::from_utf8_lossy(&reqs[0].body).contains("hello"));
}

#[test]
fn twilio_sends_an_sms() {
    let server = TestServer::start(|req| {
        if req.method == "POST" && req.path.ends_with("/Messages.json") {
            Reply::json(
                &json!({ "sid": "SM123", "status": "queued", "to": "+15550001111", "body": "hi" }),
            )
            .with_status(201)
        } else {
            Reply::status(404)
        }
    });
    let step = r#"
        import twilio from "twilio";
        export default async ({ port }) => {
          const client = twilio("AC00000000000000000000000000000000", "placeholder");
          client.api.baseUrl = `https://api.twilio.com:${port}`;
          const msg = await client.messages.create({ to: "+15550001111", from: "+15550002222", body: "hi" });
          return { sid: msg.sid, status: msg.status };
        };
    "#;
    let c = connector(
        "api.twilio.com",
        &server,
        header("Authorization", "Basic {{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(
        r.output_value(),
        Some(json!({ "sid": "SM123", "status": "queued" }))
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[0].path,
        "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json"
    );
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Basic {SECRET}").as_str())
    );
    assert!(String::from_utf8_lossy(&reqs[0].body).contains("Body=hi"));
}

#[test]
fn google_sheets_reads_values() {
    let server = TestServer::start(|req| {
        if req.method == "GET" && req.path == "/v4/spreadsheets/sheet1/values/A1%3AB2" {
            Reply::json(
                &json!({ "range": "Sheet1!A1:B2", "majorDimension": "ROWS", "values": [["a", "b"], ["1", "2"]] }),
            )
        } else {
            Reply::status(404)
        }
    });
    let step = r#"
        import { sheets } from "@googleapis/sheets";
        export default async ({ port }) => {
          // Without a `window`, gaxios would load node-fetch (Node's http); it takes fetch when given it.
          const api = sheets({ version: "v4", auth: "placeholder", rootUrl: `https://sheets.googleapis.com:${port}/`, fetchImplementation: fetch });
          const res = await api.spreadsheets.values.get({ spreadsheetId: "sheet1", range: "A1:B2" });
          return res.data.values;
        };
    "#;
    let c = connector(
        "sheets.googleapis.com",
        &server,
        header("x-goog-api-key", "{{secret}}"),
    );
    let r = run(step, json!({ "port": server.port() }), c);
    assert_eq!(r.output_value(), Some(json!([["a", "b"], ["1", "2"]])));
    let reqs = server.requests();
    assert_eq!(reqs[0].header_all("x-goog-api-key"), vec![SECRET]);
}

/// Stripe's webhook check with Web Crypto (its `SubtleCryptoProvider`), against a signature header made
/// here in Rust the way Stripe documents it: `t=<time>,v1=<hex HMAC-SHA256 of "<time>.<payload>">`.
#[test]
fn stripe_verifies_a_webhook_signature_with_web_crypto() {
    use hmac::{KeyInit, Mac};
    let secret = "whsec_test_signing_secret";
    let payload = r#"{"id":"evt_123","object":"event","type":"customer.created"}"#;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let step = r#"
        import Stripe from "stripe";
        export default async ({ payload, header, secret }) => {
          const stripe = new Stripe("sk_test_placeholder");
          const provider = Stripe.createSubtleCryptoProvider();
          const event = await stripe.webhooks.constructEventAsync(payload, header, secret, undefined, provider);
          let tampered;
          try {
            await stripe.webhooks.constructEventAsync(payload.replace("evt_123", "evt_999"), header, secret, undefined, provider);
            tampered = "accepted";
          } catch (e) {
            tampered = e.type;
          }
          return { id: event.id, type: event.type, tampered };
        };
    "#;
    let r = executor().run_blocking(StepRequest::new(
        step,
        json!({ "payload": payload, "header": format!("t={t},v1={sig}"), "secret": secret }),
    ));
    assert!(r.ok, "{:?} {:?}", r.error, r.logs);
    assert_eq!(
        r.output_value(),
        Some(
            json!({ "id": "evt_123", "type": "customer.created", "tampered": "StripeSignatureVerificationError" })
        )
    );
}

/// `--preload stripe`: each worker evaluates Stripe into its own snapshot at start; a step importing it
/// starts from that snapshot, in a fresh isolate all the same, and a step importing nothing starts from
/// the built-in one.
#[test]
fn preloaded_packages_start_evaluated_and_steps_stay_apart() {
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: process_mode(),
        packages: Some(package_dir()),
        preload: vec!["stripe".into()],
        ..Default::default()
    })
    .expect("executor");
    let trivial = exec.run_blocking(StepRequest::new("export default () => 1", json!(null)));
    assert!(trivial.ok, "{:?}", trivial.error);
    let step = r#"
        import Stripe from "stripe";
        export default async ({ n }) => {
          const before = globalThis.leftBehind;
          globalThis.leftBehind = n;
          Stripe.prototype.leftBehind = n;
          const s = new Stripe("sk_test_placeholder");
          return { before: before ?? null, proto: Object.getPrototypeOf(s).leftBehind, ok: typeof s.customers.create };
        };
    "#;
    for n in 1..4 {
        let r = exec.run_blocking(StepRequest::new(step, json!({ "n": n })));
        assert!(r.ok, "{:?}", r.error);
        assert_eq!(
            r.output_value(),
            Some(json!({ "before": null, "proto": n, "ok": "function" }))
        );
    }
    // A package that was not preloaded still loads the ordinary way, beside the preloaded one.
    let r = exec.run_blocking(StepRequest::new(
        r#"import OpenAI from "openai";
           export default () => typeof new OpenAI({ apiKey: "placeholder" }).chat.completions.create;"#,
        json!(null),
    ));
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.output_value(), Some(json!("function")));
}

#[test]
fn preloading_refuses_what_it_cannot_preload_by_name() {
    let config = |preload: &[&str], packages: bool, mode| ExecutorConfig {
        workers: 1,
        mode,
        packages: packages.then(package_dir),
        preload: preload.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let refusal = |c: ExecutorConfig| match Executor::new(c) {
        Ok(_) => panic!("preloading was accepted"),
        Err(e) => e.to_string(),
    };
    let e = refusal(config(&["no-such-package"], true, process_mode()));
    assert!(e.contains("no-such-package"), "{e}");
    let e = refusal(config(&["node:crypto"], true, process_mode()));
    assert!(e.contains("node:crypto") && e.contains("built-in"), "{e}");
    let e = refusal(config(&["stripe"], false, process_mode()));
    assert!(e.contains("--packages"), "{e}");
    let e = refusal(config(&["stripe"], true, codestep::engine::Mode::InProcess));
    assert!(e.contains("worker processes"), "{e}");
}
