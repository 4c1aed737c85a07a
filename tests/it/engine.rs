//! The step contract, limits and isolation, through the public `Executor` API.

use std::sync::{Arc, OnceLock};

use codestep::engine::{
    ErrorKind, Executor, ExecutorConfig, LimitOverrides, StepRequest, StepResult,
};
use serde_json::{json, Value};

/// One executor shared by the tests in this file: making one per test would start V8 worker threads
/// over and over for nothing.
fn executor() -> &'static Executor {
    static EXEC: OnceLock<Executor> = OnceLock::new();
    EXEC.get_or_init(|| {
        Executor::new(ExecutorConfig {
            workers: 2,
            ..Default::default()
        })
        .expect("executor")
    })
}

fn run(code: &str, input: Value) -> StepResult {
    executor().run_blocking(StepRequest::new(code, input))
}

fn run_limited(code: &str, limits: LimitOverrides) -> StepResult {
    let mut req = StepRequest::new(code, Value::Null);
    req.limits = limits;
    executor().run_blocking(req)
}

fn error_kind(res: &StepResult) -> Option<ErrorKind> {
    res.error.as_ref().map(|e| e.kind)
}

#[test]
fn default_export_gets_input_and_ctx_and_may_be_async() {
    let res = run(
        "export default async (input, ctx) => ({ doubled: input.n * 2, ctxKeys: Object.keys(ctx).sort(), connectors: ctx.connectors })",
        json!({ "n": 21 }),
    );
    assert!(res.ok, "{:?}", res.error);
    assert_eq!(
        res.output_value(),
        Some(json!({ "doubled": 42, "ctxKeys": ["connectors", "stepId"], "connectors": [] }))
    );
}

#[test]
fn top_level_await_works() {
    let res = run(
        "const v = await new Promise(r => setTimeout(() => r(7), 5)); export default () => v",
        Value::Null,
    );
    assert_eq!(res.output_value(), Some(json!(7)));
}

#[test]
fn undefined_output_becomes_null_and_unserialisable_output_is_an_output_error() {
    assert_eq!(
        run("export default () => {}", Value::Null).output_value(),
        Some(Value::Null)
    );
    let res = run("export default () => 1n", Value::Null);
    assert_eq!(error_kind(&res), Some(ErrorKind::Output));
}

#[test]
fn a_module_without_default_function_is_a_clear_error() {
    let res = run("export const x = 1", Value::Null);
    assert_eq!(error_kind(&res), Some(ErrorKind::Error));
    assert!(res.error.unwrap().message.contains("export default"));
}

#[test]
fn thrown_errors_carry_message_and_stack() {
    let res = run(
        "export default () => { throw new RangeError('nope') }",
        Value::Null,
    );
    let err = res.error.expect("error");
    assert_eq!(err.kind, ErrorKind::Error);
    assert_eq!(err.message, "RangeError: nope");
    assert!(err.stack.unwrap_or_default().contains("step.js"));
}

#[test]
fn imports_that_cannot_be_served_fail_naming_the_module() {
    for (code, named) in [
        (
            "import x from 'https://example.com/x.js'; export default () => x",
            "https://example.com/x.js",
        ),
        (
            "import fs from 'node:fs'; export default () => 1",
            "node:fs",
        ),
        (
            "export default async () => { await import('./other.js') }",
            "./other.js",
        ),
    ] {
        let res = run(code, Value::Null);
        assert!(!res.ok, "{code}");
        assert!(res.error.unwrap().message.contains(named), "{code}");
    }
}

#[test]
fn console_goes_to_the_step_log_with_levels() {
    let res = run(
        "export default () => { console.log('a', {b: 1}); console.info('i'); console.warn('w'); console.error(new Error('e')); console.debug('d'); }",
        Value::Null,
    );
    let levels: Vec<String> = res
        .logs
        .iter()
        .map(|l| {
            serde_json::to_value(l.level)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(levels, ["log", "info", "warn", "error", "debug"]);
    assert_eq!(res.logs[0].message, "a { b: 1 }");
    assert!(res.logs[3].message.contains("Error: e"));
    assert!(res.logs.iter().all(|l| l.time > 1_600_000_000_000));
}

#[test]
fn console_log_is_capped() {
    let res = run(
        "export default () => { for (let i = 0; i < 5000; i++) console.log('x'.repeat(100), i) }",
        Value::Null,
    );
    assert!(res.ok);
    assert!(res.logs.len() <= 1000);
    assert!(res.stats.logs_dropped >= 4000);
}

#[test]
fn the_promised_globals_exist_and_internals_do_not() {
    let res = run(
        r#"export default () => {
            const want = ["fetch","Request","Response","Headers","FormData","URL","URLSearchParams","AbortController","AbortSignal",
              "DOMException","TextEncoder","TextDecoder","atob","btoa","setTimeout","clearTimeout","setInterval",
              "clearInterval","queueMicrotask","structuredClone","crypto","console","Blob","ReadableStream",
              "Buffer","process","global","self","navigator","setImmediate","clearImmediate"];
            const missing = want.filter(n => typeof globalThis[n] === "undefined");
            const present = ["Deno","__bootstrap","__infra","__codestepRunStep","require","module","exports","WebSocket","XMLHttpRequest","EventSource","BroadcastChannel","Worker"].filter(n => n in globalThis);
            return { missing, present, timeout: typeof AbortSignal.timeout, any: typeof AbortSignal.any,
                     uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()),
                     rnd: crypto.getRandomValues(new Uint8Array(32)).some(b => b !== 0) };
        }"#,
        Value::Null,
    );
    assert_eq!(
        res.output_value(),
        Some(
            json!({ "missing": [], "present": [], "timeout": "function", "any": "function", "uuid": true, "rnd": true })
        )
    );
}

#[test]
fn infinite_loop_times_out_and_the_next_step_runs() {
    let res = run_limited(
        "export default () => { while (true) {} }",
        LimitOverrides {
            timeout_ms: Some(300),
            ..Default::default()
        },
    );
    assert_eq!(error_kind(&res), Some(ErrorKind::Timeout));
    assert_eq!(
        run("export default () => 'alive'", Value::Null).output_value(),
        Some(json!("alive"))
    );
}

#[test]
fn a_step_idle_on_a_never_firing_timer_times_out() {
    let res = run_limited(
        "export default () => new Promise(r => setTimeout(r, 60_000))",
        LimitOverrides {
            timeout_ms: Some(300),
            ..Default::default()
        },
    );
    assert_eq!(error_kind(&res), Some(ErrorKind::Timeout));
}

#[test]
fn microtask_flood_times_out() {
    let res = run_limited(
        "export default async () => { for (;;) await null }",
        LimitOverrides {
            timeout_ms: Some(300),
            ..Default::default()
        },
    );
    assert_eq!(error_kind(&res), Some(ErrorKind::Timeout));
}

#[test]
fn heap_bomb_ends_with_memory_error_and_the_next_step_runs() {
    let res = run_limited(
        "export default () => { const a = []; for (;;) a.push({ x: Math.random(), y: [1, 2, 3] }) }",
        LimitOverrides { memory_mb: Some(32), ..Default::default() },
    );
    assert_eq!(error_kind(&res), Some(ErrorKind::Memory), "{:?}", res.error);
    assert_eq!(
        run("export default () => 1 + 1", Value::Null).output_value(),
        Some(json!(2))
    );
}

#[test]
fn promise_flood_ends_with_memory_error() {
    let res = run_limited(
        "export default () => { const ps = []; for (;;) ps.push(new Promise(() => {})) }",
        LimitOverrides {
            memory_mb: Some(32),
            ..Default::default()
        },
    );
    assert_eq!(error_kind(&res), Some(ErrorKind::Memory), "{:?}", res.error);
}

#[test]
fn array_buffer_bomb_is_capped_outside_the_heap() {
    let res = run_limited(
        "export default () => { const a = []; for (let i = 0; i < 100; i++) a.push(new Uint8Array(16 * 1024 * 1024)); return a.length }",
        LimitOverrides { memory_mb: Some(64), ..Default::default() },
    );
    assert_eq!(error_kind(&res), Some(ErrorKind::Memory), "{:?}", res.error);
}

#[test]
fn nothing_survives_from_one_step_to_the_next() {
    let first = run(
        "globalThis.leak = 'x'; Array.prototype.evil = 1; JSON.parse = () => 'tampered'; export default () => typeof leak",
        Value::Null,
    );
    assert_eq!(first.output_value(), Some(json!("string")));
    for _ in 0..4 {
        // Several runs so that both workers are exercised.
        let next = run(
            "export default () => [typeof globalThis.leak, [].evil === undefined, JSON.parse('1')]",
            Value::Null,
        );
        assert_eq!(next.output_value(), Some(json!(["undefined", true, 1])));
    }
}

/// The same in a worker process, where one worker runs every step beside the idle isolate that keeps
/// V8's per-process state alive: that isolate runs nothing, and each step still gets a fresh one.
#[test]
fn nothing_survives_from_one_step_to_the_next_in_a_worker_process() {
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: crate::support::process_mode(),
        ..Default::default()
    })
    .expect("executor");
    let run = |code: &str| exec.run_blocking(StepRequest::new(code, Value::Null));
    let first = run(
        "globalThis.leak = 'x'; Object.prototype.evil = 1; JSON.parse = () => 'tampered'; export default () => typeof leak",
    );
    assert_eq!(first.output_value(), Some(json!("string")));
    let pid = exec.worker_pids();
    for _ in 0..3 {
        let next = run(
            "export default () => [typeof globalThis.leak, ({}).evil === undefined, JSON.parse('1')]",
        );
        assert_eq!(next.output_value(), Some(json!(["undefined", true, 1])));
    }
    assert_eq!(exec.worker_pids(), pid, "the same worker ran every step");
}

fn seccomp_mode(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
}

/// A worker runs each step in a process it forks from itself, from an isolate made once: every step
/// process ends with its step, a new one waits for the next, and the worker and each step process are
/// confined.
#[test]
fn each_step_runs_in_a_process_of_its_own_and_ends_with_it() {
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: crate::support::process_mode(),
        ..Default::default()
    })
    .expect("executor");
    let run = || {
        let r = exec.run_blocking(StepRequest::new("export default () => 1", Value::Null));
        assert!(r.ok, "{r:?}");
    };
    // Before any step, the worker's one child is the first step process.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let worker = loop {
        if let Some(w) = exec.worker_pids().first() {
            break *w;
        }
        assert!(std::time::Instant::now() < deadline, "no worker started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        let waiting = crate::support::waiting_step_process(worker, &seen);
        assert_eq!(
            seccomp_mode(waiting).as_deref(),
            Some("2"),
            "the step process is confined"
        );
        assert_eq!(
            crate::support::child_processes(worker),
            vec![waiting],
            "one step process waits"
        );
        // The worker made its read-only file mappings writable for a moment before forking (to
        // have fork copy their page tables): they are read-only again, and none is writable code.
        let maps = std::fs::read_to_string(format!("/proc/{waiting}/maps")).unwrap();
        assert!(maps.contains("[stack]"), "unreadable maps: {maps:?}");
        for line in maps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || !f[5].starts_with('/') {
                continue;
            }
            assert!(
                !(f[1].contains('w') && f[1].contains('x')),
                "writable code: {line}"
            );
            assert!(
                !(f[2].trim_start_matches('0').is_empty() && f[1].contains('w')),
                "a file's first mapping (headers, constants) is writable: {line}"
            );
        }
        seen.push(waiting);
        run();
        // The process that ran the step is gone (reaped by the worker), and another waits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::path::Path::new(&format!("/proc/{}", seen[seen.len() - 1])).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the step process outlived its step"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    seen.dedup();
    assert_eq!(
        seen.len(),
        3,
        "each step had a process of its own: {seen:?}"
    );
    assert_eq!(exec.worker_pids(), vec![worker], "the worker itself stayed");
    assert_eq!(
        seccomp_mode(worker).as_deref(),
        Some("2"),
        "the worker is confined"
    );
}

/// An executor with one worker process running `program`, which has run a step, and that worker's pid.
fn one_worker_after_a_step(program: std::path::PathBuf) -> (Executor, u32) {
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: codestep::engine::Mode::Process {
            program: codestep::engine::WorkerProgram::Path(program),
            sandbox: true,
        },
        ..Default::default()
    })
    .expect("executor");
    let r = exec.run_blocking(StepRequest::new("export default () => 1", Value::Null));
    assert!(r.ok, "{r:?}");
    let worker = exec.worker_pids()[0];
    (exec, worker)
}

/// A worker's environment is emptied: whatever secrets the operator's environment holds stay in the
/// supervisor. It gets the time zone (V8 cannot open zoneinfo from the sandbox) and, when it forks a
/// process per step, an allocator setting (glibc's per-thread cache off: fewer heap pages copied).
#[test]
fn a_worker_gets_no_environment_but_its_time_zone_and_allocator_setting() {
    let (_exec, worker) = one_worker_after_a_step(crate::support::codestep_binary());
    let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
    let vars: std::collections::BTreeMap<String, String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let v = String::from_utf8_lossy(v);
            let (name, value) = v.split_once('=').unwrap_or((&v, ""));
            (name.to_string(), value.to_string())
        })
        .collect();
    assert!(
        std::env::vars_os().count() > 2,
        "this test's own environment has more to leak"
    );
    // Names only in the message: a leaked value could be a secret.
    assert_eq!(
        vars.keys().collect::<Vec<_>>(),
        vec!["GLIBC_TUNABLES", "TZ"]
    );
    let tz = std::env::var("TZ").unwrap_or_else(|_| "UTC".into());
    assert_eq!(vars["TZ"], tz);
    assert_eq!(vars["GLIBC_TUNABLES"], "glibc.malloc.tcache_count=0");
}

/// The supervisor caches the worker program's code in 2 MiB pages before starting workers, and the
/// binary is linked so that those can be mapped whole: a worker and its step processes then map their
/// code with one page-table entry per 2 MiB, which every fork and exit would otherwise pay for by the
/// thousand. This needs a kernel and file system with large folios in the page cache (ext4 on Linux
/// 6.x, as the servers and CI have).
///
/// The worker runs from a copy of the binary that no other process maps. The tests running beside
/// this one start workers and servers from the binary itself, and the page cache cannot drop (and
/// read again whole) a range another process has mapped in small pages, so with the binary itself
/// the result would depend on what else runs.
#[test]
fn the_worker_maps_its_code_in_2mib_pages() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let program = dir.path().join("codestep");
    std::fs::copy(crate::support::codestep_binary(), &program).unwrap();
    let (_exec, worker) = one_worker_after_a_step(program.clone());
    let program = program.to_str().unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{worker}/smaps")).unwrap();
    let (mut in_program, mut huge_kb) = (false, 0u64);
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("FilePmdMapped:") {
            if in_program {
                huge_kb += kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|r| r.contains('-') && !r.ends_with(':'))
        {
            in_program = line.ends_with(program);
        }
    }
    // A worker runs about 30 MiB of the binary's code and constants; reading a file into an empty
    // cache gives some 2 MiB pages by chance, and an unaligned binary none.
    assert!(
        huge_kb >= 16 << 10,
        "the worker maps {huge_kb} KiB of {program} in 2 MiB pages"
    );
}

/// `Math.random` is seeded for every step: steps forked from one prepared isolate would otherwise all
/// draw the same sequence (V8 seeds its own generator once per process).
#[test]
fn each_step_draws_its_own_random_numbers() {
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: crate::support::process_mode(),
        ..Default::default()
    })
    .expect("executor");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let r = exec.run_blocking(StepRequest::new(
            "export default () => [Math.random(), Math.random(), Math.random.name, Math.random.length]",
            Value::Null,
        ));
        let out = r.output_value().expect("output");
        assert_eq!(out[2], json!("random"));
        assert_eq!(out[3], json!(0));
        for v in [&out[0], &out[1]] {
            let x = v.as_f64().expect("a number");
            assert!((0.0..1.0).contains(&x), "{x}");
            assert!(seen.insert(x.to_bits()), "a number came twice: {x}");
        }
    }
}

#[test]
fn fetch_without_connectors_is_blocked_with_a_type_error() {
    let res = run(
        "export default async () => { try { await fetch('https://api.example.com/x?token=abc'); return 'sent' } catch (e) { return [e instanceof TypeError, e.message] } }",
        Value::Null,
    );
    let out = res.output_value().expect("output");
    assert_eq!(out[0], json!(true));
    let msg = out[1].as_str().unwrap();
    assert!(msg.contains("api.example.com"), "{msg}");
    assert!(
        !msg.contains("token=abc"),
        "the query must never appear in the message: {msg}"
    );
    assert_eq!(res.requests.len(), 1);
    assert!(res.requests[0].blocked);
}

#[test]
fn fetch_count_limit_ends_the_step_with_limit() {
    let res = run_limited(
        "export default async () => { for (let i = 0; i < 10; i++) { try { await fetch('https://blocked.example/') } catch {} } }",
        LimitOverrides { max_fetches: Some(3), ..Default::default() },
    );
    assert_eq!(error_kind(&res), Some(ErrorKind::Limit), "{:?}", res.error);
    assert_eq!(res.stats.fetches, 4);
}

#[test]
fn the_pool_runs_steps_concurrently() {
    let exec = Arc::new(
        Executor::new(ExecutorConfig {
            workers: 2,
            ..Default::default()
        })
        .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let spans = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let exec = exec.clone();
            tasks.push(tokio::spawn(async move {
                exec.run(StepRequest::new(
                    "export default async (i) => { const s = Date.now(); await new Promise(r => setTimeout(r, 200)); return [i, s, Date.now()] }",
                    json!(i),
                ))
                .await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            let v = t.await.unwrap().output_value().expect("output");
            out.push((v[0].as_i64().unwrap(), v[1].as_i64().unwrap(), v[2].as_i64().unwrap()));
        }
        out
    });
    assert_eq!(spans.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    // Two workers: some pair of steps must have been running at the same time.
    let overlap = spans
        .iter()
        .any(|a| spans.iter().any(|b| a.0 != b.0 && a.1 < b.2 && b.1 < a.2));
    assert!(overlap, "no two steps overlapped: {spans:?}");
}
