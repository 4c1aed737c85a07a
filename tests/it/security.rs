//! The security model, end to end: hostile steps run in real isolates against local HTTPS servers, and
//! after each one the secret's bytes must be absent from the step's output, logs, fetch records, error
//! and heap (the engine's heap audit takes a V8 heap snapshot and searches it).

use codestep::connector::{Connector, ConnectorSpec, Placement, Secret};
use codestep::engine::{ErrorKind, Executor, ExecutorConfig, StepRequest, StepResult};
use serde_json::{json, Value};

use crate::support::{assert_no_secret, process_mode, Reply, TestServer};

const SECRET: &str = "sk_live_51HnSecretXyZ0123456789abcdef";
const OTHER_SECRET: &str = "ghp_0therSecretQwErTy9876543210zz";

fn executor(server: &TestServer) -> Executor {
    Executor::new(ExecutorConfig {
        workers: 1,
        egress: server.egress_config(),
        audit_heap: true,
        mode: process_mode(),
        ..Default::default()
    })
    .expect("executor")
}

fn connector(
    name: &str,
    patterns: Vec<String>,
    placement: Placement,
    scrub_echo: bool,
    secret: &str,
) -> Connector {
    ConnectorSpec {
        name: name.into(),
        patterns,
        placement,
        scrub_echo,
    }
    .validate(Secret::new(secret.into()))
    .expect("valid connector")
}

fn bearer(name: &str, pattern: String, secret: &str) -> Connector {
    connector(
        name,
        vec![pattern],
        Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
        false,
        secret,
    )
}

fn query(name: &str, pattern: String, secret: &str) -> Connector {
    connector(
        name,
        vec![pattern],
        Placement::query("api_key".into()),
        false,
        secret,
    )
}

fn run(exec: &Executor, code: &str, input: Value, connectors: Vec<Connector>) -> StepResult {
    let mut req = StepRequest::new(code, input);
    req.connectors = connectors;
    exec.run_blocking(req)
}

/// The invariant: nothing the step or its caller can see holds a secret, and neither does the heap.
fn assert_clean(res: &StepResult) {
    let visible = serde_json::to_vec(res).unwrap();
    for secret in [SECRET, OTHER_SECRET] {
        assert_no_secret(
            &visible,
            secret,
            "the step result (output, logs, fetch records, error)",
        );
    }
    // A worker killed for its memory leaves no heap to search; any other step's heap is searched.
    let killed = res
        .error
        .as_ref()
        .is_some_and(|e| e.kind == ErrorKind::Memory && e.message.contains("its worker"));
    if !killed {
        assert_eq!(
            res.stats.secret_in_heap,
            Some(false),
            "a connector secret was found in the step's V8 heap"
        );
    }
}

fn output(res: &StepResult) -> Value {
    assert!(res.ok, "step failed: {:?}", res.error);
    res.output_value().unwrap()
}

#[test]
fn header_secret_is_injected_by_rust_and_invisible_to_js() {
    let server = TestServer::start(|_| Reply::json(&json!({ "data": [] })));
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ url }) => {
            const req = new Request(url, { headers: { "x-trace": "1" } });
            const res = await fetch(req);
            return { status: res.status, reqAuth: req.headers.get("authorization"), resHeaders: [...res.headers], body: await res.json() };
        }"#,
        json!({ "url": server.url("api.test", "/v1/charges?limit=3") }),
        vec![bearer("stripe", server.pattern("api.test"), SECRET)],
    );
    let out = output(&res);
    assert_eq!(out["status"], 200);
    assert_eq!(out["reqAuth"], Value::Null);
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(seen[0].header("x-trace"), Some("1"));
    assert_clean(&res);
}

#[test]
fn query_secret_is_not_in_response_url() {
    let server = TestServer::start(|_| Reply::ok("{}"));
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { const r = await fetch(url); return [r.url, r.redirected, r.type]; }",
        json!({ "url": server.url("api.test", "/v1/weather?city=Paris") }),
        vec![query("weather", server.pattern("api.test"), SECRET)],
    );
    let out = output(&res);
    assert_eq!(
        out[0],
        json!(server.url("api.test", "/v1/weather?city=Paris"))
    );
    let seen = server.requests();
    assert!(seen[0]
        .query_pairs()
        .contains(&("api_key".to_string(), SECRET.to_string())));
    assert!(seen[0]
        .query_pairs()
        .contains(&("city".to_string(), "Paris".to_string())));
    assert_clean(&res);
}

#[test]
fn js_set_credentials_are_replaced_not_kept() {
    let server = TestServer::start(|_| Reply::ok("ok"));
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ url }) => {
            const r = await fetch(url + "&api_key=mine", { headers: { Authorization: "Bearer js-value", AUTHORIZATION: "again" } });
            return r.status;
        }"#,
        json!({ "url": server.url("api.test", "/x?a=1") }),
        vec![connector(
            "both",
            vec![server.pattern("api.test")],
            Placement::header("authorization".into(), "Token {{secret}}".into()),
            false,
            SECRET,
        )],
    );
    assert_eq!(output(&res), json!(200));
    let seen = &server.requests()[0];
    assert_eq!(
        seen.header_all("authorization"),
        vec![format!("Token {SECRET}")]
    );
    assert_clean(&res);
}

#[test]
fn echoing_server_with_scrubbing_leaks_nothing() {
    let server = TestServer::start(|req| {
        Reply::echo(req).header("x-echo-auth", req.header("authorization").unwrap_or(""))
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ url }) => {
            const r = await fetch(url, { method: "POST", body: JSON.stringify({ hello: "world" }), headers: { "content-type": "application/json" } });
            const text = await r.text();
            console.log(text, r.headers.get("x-echo-auth"));
            return { text, echoed: r.headers.get("x-echo-auth") };
        }"#,
        json!({ "url": server.url("api.test", "/echo") }),
        vec![connector(
            "echo",
            vec![server.pattern("api.test")],
            Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
            true,
            SECRET,
        )],
    );
    let out = output(&res);
    assert!(out["text"].as_str().unwrap().contains("[redacted]"));
    assert!(out["echoed"].as_str().unwrap().contains("[redacted]"));
    assert_clean(&res);
}

#[test]
fn response_headers_never_carry_the_secret_even_without_scrubbing() {
    let server = TestServer::start(|req| {
        Reply::ok("fine")
            .header("x-debug", req.header("authorization").unwrap_or(""))
            .header("set-cookie", "session=abc")
            .header("set-cookie2", "old=1")
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { const r = await fetch(url); return { h: [...r.headers], cookies: r.headers.getSetCookie() }; }",
        json!({ "url": server.url("api.test", "/") }),
        vec![bearer("api", server.pattern("api.test"), SECRET)],
    );
    let out = output(&res);
    assert_eq!(out["cookies"], json!([]));
    let names: Vec<&str> = out["h"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"set-cookie") && !names.contains(&"set-cookie2"),
        "{names:?}"
    );
    assert_clean(&res);
}

#[test]
fn cookies_js_sets_are_stripped() {
    let server = TestServer::start(|_| Reply::ok(""));
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => (await fetch(url, { headers: { Cookie: 'a=b', Cookie2: 'c=d' } })).status",
        json!({ "url": server.url("api.test", "/") }),
        vec![bearer("api", server.pattern("api.test"), SECRET)],
    );
    assert_eq!(output(&res), json!(200));
    let seen = &server.requests()[0];
    assert_eq!(seen.header("cookie"), None);
    assert_eq!(seen.header("cookie2"), None);
}

#[test]
fn redirect_to_another_host_is_blocked_and_gets_no_secret() {
    let server = TestServer::start(|req| {
        if req.host.starts_with("api.test") {
            Reply::redirect(302, &format!("https://evil.test:{}/steal", req.port))
        } else {
            Reply::ok("stolen")
        }
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { try { await fetch(url); return 'followed' } catch (e) { return [e.name, e.message] } }",
        json!({ "url": server.url("api.test", "/start") }),
        vec![bearer("api", server.pattern("api.test"), SECRET)],
    );
    let out = output(&res);
    assert_eq!(out[0], "TypeError");
    assert!(out[1].as_str().unwrap().contains("evil.test"), "{out}");
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "the blocked hop must not reach any server");
    assert_clean(&res);
}

#[test]
fn redirect_to_a_host_of_another_connector_carries_only_that_connectors_secret() {
    let server = TestServer::start(|req| {
        if req.host.starts_with("api.test") {
            Reply::redirect(307, &format!("https://other.test:{}/next", req.port))
        } else {
            Reply::ok("landed")
        }
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { const r = await fetch(url, { method: 'POST', body: 'x', headers: { authorization: 'Bearer js' } }); return [r.status, r.redirected, r.url, await r.text()] }",
        json!({ "url": server.url("api.test", "/start") }),
        vec![
            bearer("api", server.pattern("api.test"), SECRET),
            connector(
                "other",
                vec![server.pattern("other.test")],
                Placement::header("X-Api-Key".into(), "{{secret}}".into()),
                false,
                OTHER_SECRET,
            ),
        ],
    );
    let out = output(&res);
    assert_eq!(
        out,
        json!([200, true, server.url("other.test", "/next"), "landed"])
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        !seen[1].contains(SECRET),
        "the second hop carried the first connector's secret"
    );
    assert_eq!(seen[1].header("x-api-key"), Some(OTHER_SECRET));
    assert_eq!(
        seen[1].header("authorization"),
        None,
        "JS credentials are dropped when the origin changes"
    );
    assert_clean(&res);
}

#[test]
fn redirect_to_a_non_matching_path_is_blocked() {
    let server = TestServer::start(|req| {
        if req.path.starts_with("/v1/") {
            Reply::redirect(301, "/admin/secrets")
        } else {
            Reply::ok("admin")
        }
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { try { await fetch(url); return 'followed' } catch (e) { return e.message } }",
        json!({ "url": server.url("api.test", "/v1/x") }),
        vec![bearer("api", server.url("api.test", "/v1/*"), SECRET)],
    );
    assert!(
        output(&res).as_str().unwrap().contains("no connector"),
        "{:?}",
        res.output
    );
    assert_eq!(server.requests().len(), 1);
    assert_clean(&res);
}

#[test]
fn manual_redirect_location_hides_the_injected_parameter() {
    let server = TestServer::start(|req| {
        let q = req.query.clone().unwrap_or_default();
        Reply::redirect(302, &format!("/next?{q}"))
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { const r = await fetch(url, { redirect: 'manual' }); return [r.status, r.headers.get('location')] }",
        json!({ "url": server.url("api.test", "/a?page=2") }),
        vec![query("q", server.pattern("api.test"), SECRET)],
    );
    let out = output(&res);
    assert_eq!(out[0], 302);
    assert!(out[1].as_str().unwrap().contains("page=2"));
    assert_clean(&res);
}

#[test]
fn network_errors_do_not_leak_the_query_or_secret() {
    // A port where nothing listens: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start(|_| Reply::ok(""));
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { try { await fetch(url); return 'no' } catch (e) { console.error(e); return [e.name, e.message, String(e.stack), String(e.cause)] } }",
        json!({ "url": format!("https://api.test:{port}/v1?private=yes") }),
        vec![query("q", format!("https://api.test:{port}/*"), SECRET)],
    );
    let out = output(&res);
    assert_eq!(out[0], "TypeError");
    assert!(
        !out.to_string().contains("private=yes"),
        "the query leaked into an error: {out}"
    );
    assert_clean(&res);
}

#[test]
fn direct_op_calls_and_internals_are_unreachable() {
    let server = TestServer::start(|_| Reply::ok(""));
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default () => {
            const found = [];
            const probes = {
                Deno: () => globalThis.Deno,
                bootstrap: () => globalThis.__bootstrap,
                infra: () => globalThis.__infra,
                runner: () => globalThis.__codestepRunStep,
                fnThis: () => Function("return this")().Deno,
                sloppyThis: () => (function () { return this })()?.Deno,
                symbolCore: () => globalThis[Symbol.for("Deno.core")],
                symbolInternal: () => globalThis[Symbol.for("Deno.internal")],
                fetchProps: () => Object.getOwnPropertyNames(fetch).filter(n => !["length", "name", "prototype"].includes(n)).join(),
                ops: () => { try { return eval("Deno.core.ops") } catch { return undefined } },
            };
            for (const [name, probe] of Object.entries(probes)) {
                let v; try { v = probe(); } catch { v = undefined; }
                if (v !== undefined && v !== null && v !== "") found.push(name);
            }
            for (const k of Reflect.ownKeys(globalThis)) {
                if (typeof k === "symbol") found.push(String(k));
                if (/^(op_|__|Deno)/.test(String(k))) found.push(String(k));
            }
            return found;
        }"#,
        Value::Null,
        vec![bearer("api", server.pattern("api.test"), SECRET)],
    );
    assert_eq!(output(&res), json!([]));
    assert_clean(&res);
}

#[test]
fn prototype_tampering_cannot_capture_the_secret() {
    let server =
        TestServer::start(|req| Reply::json(&json!({ "ok": true, "len": req.body.len() })));
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ url }) => {
            const seen = [];
            const apply = Reflect.apply, stringify = JSON.stringify, push = Array.prototype.push;
            let busy = false;
            const spy = (obj, name) => {
                const orig = obj[name];
                if (typeof orig !== "function") return;
                obj[name] = function (...args) {
                    if (!busy) { busy = true; try { apply(push, seen, [stringify(args)]); } catch {} busy = false; }
                    return apply(orig, this, args);
                };
            };
            for (const [obj, names] of [
                [Headers.prototype, ["set", "append", "get", "has", "forEach", "entries"]],
                [Array.prototype, ["push", "map", "join", "concat", "slice", "forEach", "filter"]],
                [Object, ["entries", "keys", "assign", "defineProperty", "freeze"]],
                [String.prototype, ["toLowerCase", "split", "replace", "concat", "trim"]],
                [Map.prototype, ["set", "get"]],
                [Promise.prototype, ["then", "catch"]],
                [Uint8Array.prototype, ["set", "slice", "subarray"]],
                [TextDecoder.prototype, ["decode"]],
                [TextEncoder.prototype, ["encode"]],
                [URL.prototype, ["toString"]],
                [URLSearchParams.prototype, ["append", "set", "toString"]],
                [JSON, ["parse"]],
                [Reflect, ["apply", "get", "set"]],
            ]) for (const n of names) spy(obj, n);
            Object.defineProperty(Object.prototype, "headers", { set(v) { seen.push("set headers"); this._h = v; }, get() { return this._h; }, configurable: true });
            const r = await fetch(url, { method: "POST", body: "payload", headers: { "content-type": "text/plain" } });
            const body = await r.json();
            delete Object.prototype.headers;
            return { status: r.status, body, spied: seen.length };
        }"#,
        json!({ "url": server.url("api.test", "/v1/tamper?x=1") }),
        vec![
            query("q", server.pattern("api.test"), SECRET),
            bearer("h", server.pattern("api.test"), OTHER_SECRET),
        ],
    );
    let out = output(&res);
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"]["len"], 7);
    // The query connector is listed first, so it wins; its secret reached the server.
    let seen = &server.requests()[0];
    assert!(seen
        .query_pairs()
        .contains(&("api_key".to_string(), SECRET.to_string())));
    assert_eq!(
        seen.header("authorization"),
        None,
        "only the first matching connector is used"
    );
    assert_clean(&res);
}

/// URL tricks: each is fetched by the step; the table says whether it may reach the server.
#[test]
fn url_tricks_are_normalised_or_refused() {
    let server = TestServer::start(|_| Reply::ok("reached"));
    let port = server.port();
    let exec = executor(&server);
    let cases: Vec<(String, bool)> = vec![
        (format!("https://user:pass@api.test:{port}/v1/a"), false),
        (format!("https://api.test:{port}/v1/../admin"), false),
        (format!("https://api.test:{port}/v1/%2e%2e/admin"), false),
        (format!("https://api.test:{port}/v1/%2E%2E/admin"), false),
        (format!("https://api.test:{port}/v1/a%2fb"), false),
        (format!("https://api.test:{port}/v1/a%5cb"), false),
        (format!("https://api.test:{port}/v1evil"), false),
        (format!("https://xn--pi-7ld.test:{port}/v1/a"), false), // "аpi.test" with a Cyrillic а
        (format!("https://\u{0430}pi.test:{port}/v1/a"), false),
        (format!("https://api.test.evil.test:{port}/v1/a"), false),
        (format!("http://api.test:{port}/v1/a"), false),
        (format!("HTTPS://API.TEST:{port}/v1/a"), true),
        (format!("https://api.test.:{port}/v1/a"), true),
        (format!("https://api.test:{port}/v1/b/../c"), true),
    ];
    let urls: Vec<&String> = cases.iter().map(|c| &c.0).collect();
    let res = run(
        &exec,
        r#"export default async ({ urls }) => {
            const out = [];
            for (const u of urls) {
                try { const r = await fetch(u); out.push({ ok: true, status: r.status, url: r.url }); }
                catch (e) { out.push({ ok: false, name: e.name, message: e.message }); }
            }
            return out;
        }"#,
        json!({ "urls": urls }),
        vec![query("q", server.url("api.test", "/v1/*"), SECRET)],
    );
    let out = output(&res).as_array().unwrap().clone();
    let mut reached = 0;
    for ((url, allowed), got) in cases.iter().zip(&out) {
        assert_eq!(got["ok"].as_bool().unwrap(), *allowed, "{url}: {got}");
        if !allowed {
            assert_eq!(got["name"], "TypeError", "{url}");
        } else {
            reached += 1;
        }
    }
    let seen = server.requests();
    assert_eq!(seen.len(), reached);
    for r in &seen {
        assert!(r.path.starts_with("/v1/"), "{}", r.path);
        assert!(r.host.starts_with("api.test"), "{}", r.host);
    }
    assert_clean(&res);
}

#[test]
fn first_listed_connector_wins() {
    let server = TestServer::start(|_| Reply::ok(""));
    let exec = executor(&server);
    for (order, expected) in [(["a", "b"], SECRET), (["b", "a"], OTHER_SECRET)] {
        let a = bearer("a", server.pattern("api.test"), SECRET);
        let b = bearer("b", server.url("api.test", "/v1/*"), OTHER_SECRET);
        let connectors = order
            .iter()
            .map(|n| if *n == "a" { a.clone() } else { b.clone() })
            .collect();
        let res = run(
            &exec,
            "export default async ({ url }) => (await fetch(url)).status",
            json!({ "url": server.url("api.test", "/v1/x") }),
            connectors,
        );
        assert_eq!(output(&res), json!(200));
        assert_eq!(res.requests[0].connector.as_deref(), Some(order[0]));
        let last = server.requests().pop().unwrap();
        assert_eq!(
            last.header("authorization"),
            Some(format!("Bearer {expected}").as_str())
        );
    }
}

#[test]
fn every_fetch_yields_a_record_without_query_or_secret() {
    let server = TestServer::start(|req| {
        if req.path == "/v1/fail" {
            Reply::status(503)
        } else {
            Reply::ok("")
        }
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ ok, fail, blocked }) => {
            await fetch(ok, { method: "PUT", body: "x" });
            await fetch(fail);
            try { await fetch(blocked) } catch {}
        }"#,
        json!({
            "ok": server.url("api.test", "/v1/ok?token=abc"),
            "fail": server.url("api.test", "/v1/fail?token=abc"),
            "blocked": server.url("evil.test", "/v1/x?token=abc"),
        }),
        vec![query("q", server.pattern("api.test"), SECRET)],
    );
    assert!(res.ok, "{:?}", res.error);
    let recs = &res.requests;
    assert_eq!(recs.len(), 3);
    assert_eq!(
        (
            recs[0].connector.as_deref(),
            recs[0].method.as_str(),
            recs[0].path.as_str(),
            recs[0].status
        ),
        (Some("q"), "PUT", "/v1/ok", Some(200))
    );
    assert_eq!((recs[1].status, recs[1].blocked), (Some(503), false));
    assert!(recs[2].blocked);
    assert_eq!(recs[2].connector, None);
    assert!(recs[2].host.starts_with("evil.test"));
    let text = serde_json::to_string(recs).unwrap();
    assert!(!text.contains("token=abc"), "a record holds the query");
    assert_clean(&res);
}

#[test]
fn ssrf_guard_blocks_loopback_without_the_operator_setting() {
    let server = TestServer::start(|_| Reply::ok("internal"));
    let mut egress = server.egress_config();
    egress.allow_private.clear();
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        egress,
        audit_heap: true,
        mode: process_mode(),
        ..Default::default()
    })
    .unwrap();
    let res = run(
        &exec,
        "export default async ({ url }) => { try { await fetch(url); return 'reached' } catch (e) { return [e.name, e.message] } }",
        json!({ "url": server.url("api.test", "/") }),
        vec![bearer("api", server.pattern("api.test"), SECRET)],
    );
    let out = output(&res);
    assert_eq!(out[0], "TypeError");
    assert_eq!(server.requests().len(), 0);
    assert!(res.requests[0].blocked);
    assert_clean(&res);
}

/// The control for every `assert_clean` above: when a secret does reach JS (here an echoing upstream
/// without scrubbing, which the model leaves to the upstream), the heap audit must see it.
#[test]
fn heap_audit_finds_a_secret_that_did_reach_js() {
    let server = TestServer::start(Reply::echo);
    let exec = executor(&server);
    let res = run(
        &exec,
        "export default async ({ url }) => { globalThis.keep = await (await fetch(url)).text(); return 'done' }",
        json!({ "url": server.url("api.test", "/") }),
        vec![bearer("api", server.pattern("api.test"), SECRET)],
    );
    assert!(res.ok, "{:?}", res.error);
    assert_eq!(res.stats.secret_in_heap, Some(true));
}

/// A compressed response hides the echoed secret from body scrubbing, and JS can inflate it itself: the
/// step must not be able to ask for a content coding (here gzip, which a real echoing upstream honours).
#[test]
fn js_cannot_ask_for_a_compressed_echo_that_scrubbing_cannot_see() {
    use std::io::{Read, Write};
    let server = TestServer::start(|req| {
        // Repetitive enough that gzip compresses it rather than storing it as is.
        let echo = format!("you sent: {}\n", req.header("authorization").unwrap_or("")).repeat(20);
        if req
            .header("accept-encoding")
            .is_some_and(|a| a.contains("gzip"))
        {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(echo.as_bytes()).unwrap();
            Reply::ok(gz.finish().unwrap()).header("content-encoding", "gzip")
        } else {
            Reply::ok(echo)
        }
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ url }) => {
            const r = await fetch(url, { headers: { "Accept-Encoding": "gzip" } });
            return { encoding: r.headers.get("content-encoding"), body: Array.from(new Uint8Array(await r.arrayBuffer())) };
        }"#,
        json!({ "url": server.url("api.test", "/echo") }),
        vec![connector(
            "echo",
            vec![server.pattern("api.test")],
            Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
            true,
            SECRET,
        )],
    );
    let out = output(&res);
    let bytes: Vec<u8> = out["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    // What JS can recover from what it got: gzip is a few lines of JS to undo.
    let plain = if out["encoding"] == "gzip" {
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut s)
            .unwrap();
        s
    } else {
        bytes
    };
    assert_no_secret(&plain, SECRET, "the (decompressed) body JS received");
    assert!(String::from_utf8_lossy(&plain).contains("[redacted]"));
    assert_clean(&res);
}

/// Response bodies arrive in chunks made outside V8's heap; what JS reads must still count against
/// the step's memory limit, or a 16 MiB step can hold a hundred 10 MiB bodies.
#[test]
fn response_bodies_count_against_the_memory_limit() {
    let server = TestServer::start(|_| Reply::ok(vec![b'a'; 8 << 20]));
    let exec = executor(&server);
    let mut req = StepRequest::new(
        r#"export default async ({ url }) => {
            const keep = [];
            for (let i = 0; i < 12; i++) keep.push(await (await fetch(url)).arrayBuffer());
            return keep.length;
        }"#,
        json!({ "url": server.url("api.test", "/big") }),
    );
    req.connectors = vec![bearer("api", server.pattern("api.test"), SECRET)];
    req.limits.memory_mb = Some(16);
    let res = exec.run_blocking(req);
    assert!(
        !res.ok,
        "a 16 MiB step held 96 MiB of bodies: {:?}",
        res.output
    );
    assert_eq!(
        res.error.as_ref().unwrap().kind,
        ErrorKind::Memory,
        "{:?}",
        res.error
    );
    assert_clean(&res);
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Response headers never carry the secret, whatever spelling upstream echoes it in: percent-encoding
/// with lowercase hex (.NET's `HttpUtility.UrlEncode`), partial encoding (Python's `quote`, which keeps
/// `/`), or a lowercased copy (a host name).
#[test]
fn response_headers_hide_every_spelling_of_the_secret() {
    const B64: &str = "AKIAx+Yz/Q9w8e7R6t5Y4u3I2o1P0aZ==";
    fn enc(s: &str, keep: &[u8], lower: bool) -> String {
        s.bytes()
            .map(|c| {
                if c.is_ascii_alphanumeric() || b"-._~".contains(&c) || keep.contains(&c) {
                    (c as char).to_string()
                } else if lower {
                    format!("%{c:02x}")
                } else {
                    format!("%{c:02X}")
                }
            })
            .collect()
    }
    let server = TestServer::start(|req| {
        let key = req.header("x-api-key").unwrap_or("").to_string();
        Reply::status(302)
            .header("x-lower", &enc(&key, b"", true))
            .header("x-python", &enc(&key, b"/", false))
            .header("location", &format!("/next?k={}", enc(&key, b"", true)))
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ url }) => {
            const r = await fetch(url, { redirect: "manual" });
            return [...r.headers];
        }"#,
        json!({ "url": server.url("api.test", "/echo") }),
        vec![connector(
            "aws",
            vec![server.pattern("api.test")],
            Placement::header("X-Api-Key".into(), "{{secret}}".into()),
            false,
            B64,
        )],
    );
    let out = output(&res);
    assert_eq!(server.requests()[0].header("x-api-key"), Some(B64));
    for pair in out.as_array().unwrap() {
        let value = pair[1].as_str().unwrap();
        assert_no_secret(
            &percent_decode(value),
            B64,
            &format!("response header {} (percent-decoded)", pair[0]),
        );
    }
    assert_clean(&res);
}

/// An upstream that redirects to a host made of the secret, and names a header after it: URL parsers
/// and `HeaderName` lowercase those, so the exact spelling is gone, but a lowercased secret must not
/// reach JS's error, the records, a manual Location or the header names either.
#[test]
fn a_secret_in_a_redirect_host_or_a_header_name_is_hidden() {
    let server = TestServer::start(|req| {
        let auth = req.header("authorization").unwrap_or("");
        let key = auth.strip_prefix("Bearer ").unwrap_or("");
        Reply::redirect(302, &format!("https://{key}.evil.test:{}/x", req.port))
            .header(&format!("x-{key}"), "1")
    });
    let exec = executor(&server);
    let res = run(
        &exec,
        r#"export default async ({ url }) => {
            const out = [];
            try { await fetch(url); out.push("followed") } catch (e) { out.push(e.message) }
            const r = await fetch(url, { redirect: "manual" });
            out.push(r.headers.get("location"), [...r.headers.keys()]);
            return out;
        }"#,
        json!({ "url": server.url("api.test", "/") }),
        vec![bearer("api", server.pattern("api.test"), SECRET)],
    );
    assert!(res.ok, "{:?}", res.error);
    let visible = serde_json::to_string(&res).unwrap().to_lowercase();
    assert_no_secret(
        visible.as_bytes(),
        &SECRET.to_lowercase(),
        "the step result, lowercased",
    );
    assert_clean(&res);
}

/// The placements beyond header and query, end to end in a worker process: a path secret, a Basic
/// password and AWS keys, against an upstream that echoes the request everywhere it can (headers,
/// body, a redirect to a URL holding the placed path). The step gathers everything it can see, tries a
/// forbidden method and a path the webhook does not serve; none of it, nor its heap, holds a secret.
#[test]
fn path_basic_and_sigv4_secrets_stay_out_of_js() {
    let server = TestServer::start(|r| {
        let echo = |reply: Reply| {
            reply
                .header("x-echo-path", &r.path)
                .header("x-echo-auth", r.header("authorization").unwrap_or(""))
        };
        if r.path.ends_with("/hop") {
            echo(Reply::redirect(
                302,
                &format!(
                    "https://api.test:{}{}",
                    r.port,
                    r.path.replace("/hop", "/landed")
                ),
            ))
        } else if r.path.ends_with("/away") {
            echo(Reply::redirect(
                302,
                &format!("https://other.test:{}{}", r.port, r.path),
            ))
        } else {
            echo(Reply::echo(r))
        }
    });
    let exec = executor(&server);
    let path = |template: &str| -> Placement {
        serde_json::from_str(&format!(
            r#"{{"type":"path","template":"{template}","methods":["GET"]}}"#
        ))
        .unwrap()
    };
    let tg = connector(
        "tg",
        vec![server.pattern("api.test")],
        path("/bot{{secret}}{{path}}"),
        true,
        SECRET,
    );
    let basic = connector(
        "basic",
        vec![server.pattern("other.test")],
        serde_json::from_str(r#"{"type":"basic","username":"user"}"#).unwrap(),
        true,
        OTHER_SECRET,
    );
    let mut aws_secrets = codestep::connector::Secrets::new();
    aws_secrets.insert("access_key_id", Secret::new("AKIDSECURITYTEST01".into()));
    aws_secrets.insert(
        "secret_access_key",
        Secret::new(format!("{OTHER_SECRET}/aws")),
    );
    let aws = ConnectorSpec {
        name: "aws".into(),
        patterns: vec![server.pattern("a.wild.test")],
        placement: serde_json::from_str(
            r#"{"type":"aws_sigv4","region":"us-east-1","service":"sts"}"#,
        )
        .unwrap(),
        scrub_echo: true,
    }
    .validate(aws_secrets)
    .unwrap();
    let res = run(
        &exec,
        r#"export default async ({ base, other, wild }) => {
            const seen = [];
            const look = async (p) => {
                try {
                    const r = await p;
                    seen.push(r.url, [...r.headers], await r.text());
                } catch (e) { seen.push(String(e)); }
            };
            await look(fetch(base + "/getMe"));
            await look(fetch(base + "/hop"));
            await look(fetch(base + "/hop", { redirect: "manual" }));
            await look(fetch(base + "/away"));
            await look(fetch(base + "/getMe", { method: "POST", body: "x" }));
            await look(fetch(other + "/x", { headers: { authorization: "Basic bogus" } }));
            await look(fetch(wild + "/?Action=GetCallerIdentity", { headers: { "x-amz-date": "1", authorization: "x" } }));
            return seen;
        }"#,
        json!({
            "base": server.url("api.test", ""),
            "other": server.url("other.test", ""),
            "wild": server.url("a.wild.test", ""),
        }),
        vec![tg, basic, aws],
    );
    let out = output(&res);
    let text = out.to_string();
    assert!(
        text.contains("/landed"),
        "the followed redirect shows the logical path"
    );
    assert!(text.contains("does not allow the method POST"), "{text}");
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("user:{OTHER_SECRET}"),
    );
    assert_no_secret(text.as_bytes(), &b64, "the step output (Basic credential)");
    assert_no_secret(
        text.as_bytes(),
        "AKIDSECURITYTEST01",
        "the step output (AWS key id)",
    );
    let seen = server.requests();
    assert!(seen.iter().any(|r| r.path == format!("/bot{SECRET}/getMe")));
    assert!(
        !seen
            .iter()
            .any(|r| r.host == "other.test" && r.path.contains("bot")),
        "the path never went to another host"
    );
    assert_clean(&res);
}
