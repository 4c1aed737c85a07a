//! `cargo bench --bench packages`: what importing a vendor SDK from the package directory costs a step.
//!
//! A step that imports the Stripe SDK (unbundled, as npm installed it: `scripts/sdk-deps`) and makes a
//! client, against a trivial step, in process mode with one worker. "First" is the first such step of
//! a fresh executor (the supervisor reads and resolves the package's files, the worker compiles them);
//! "steady" is the median after that (files resolved once, compiled code from the worker's cache).
//! With `--preload` (`ExecutorConfig::preload`), the worker evaluates the package into its own snapshot
//! at start ("worker start" is until its first step ran), and steps start from it.
//! `BENCH_N` sets the steps per measure (default 200); `BENCH_ONLY=stripe` skips the other imports.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use codestep::engine::modules::resolve::PackageDir;
use codestep::engine::{Executor, ExecutorConfig, StepRequest};
use serde_json::json;

const TRIVIAL: &str = "export default (input) => ({ n: input.n + 1 })";
const STRIPE: &str = r#"import Stripe from "stripe";
export default (input) => { const s = new Stripe("sk_test_placeholder"); return { n: input.n + 1, ok: typeof s.customers.create === "function" }; }"#;
const OPENAI: &str = r#"import OpenAI from "openai";
export default (input) => { const c = new OpenAI({ apiKey: "placeholder" }); return { n: input.n + 1, ok: typeof c.chat.completions.create === "function" }; }"#;

fn time(exec: &Executor, code: &str) -> Duration {
    let t = Instant::now();
    let r = exec.run_blocking(StepRequest::new(code, json!({ "n": 1 })));
    assert!(r.ok, "{:?}", r.error);
    t.elapsed()
}

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = std::env::var("CODESTEP_TEST_PACKAGES")
        .expect("CODESTEP_TEST_PACKAGES is not set: eval \"$(scripts/sdk-deps)\" first");
    let packages = Arc::new(PackageDir::open(std::path::Path::new(&dir)).expect("package dir"));
    let make = |preload: &[&str]| {
        let t = Instant::now();
        let exec = Executor::new(ExecutorConfig {
            workers: 1,
            mode: support::process_mode(),
            packages: Some(packages.clone()),
            preload: preload.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        })
        .expect("executor");
        // The worker is ready (its snapshot made) when its first step ran.
        time(&exec, TRIVIAL);
        (exec, t.elapsed().as_secs_f64() * 1000.0)
    };
    println!(
        "| step (process mode, 1 worker) | worker start | first | steady p50 | over trivial |"
    );
    println!("|---|---|---|---|---|");
    let (exec, start) = make(&[]);
    for _ in 0..20 {
        time(&exec, TRIVIAL);
    }
    let trivial = p50((0..n).map(|_| time(&exec, TRIVIAL)).collect());
    println!("| trivial | {start:.0} ms | - | {trivial:.2} ms | - |");
    drop(exec);
    // `BENCH_ONLY=stripe` measures only the steps whose name contains it (for a profiler).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (package, code) in [("stripe", STRIPE), ("openai", OPENAI)] {
        if !package.contains(&only) {
            continue;
        }
        for preload in [false, true] {
            let list = [package];
            let (exec, start) = make(if preload { &list[..] } else { &[] });
            let first = time(&exec, code).as_secs_f64() * 1000.0;
            for _ in 0..5 {
                time(&exec, code);
            }
            let steady = p50((0..n).map(|_| time(&exec, code)).collect());
            let how = if preload { " (--preload)" } else { "" };
            println!(
                "| import {package}{how} | {start:.0} ms | {first:.1} ms | {steady:.2} ms | {:+.2} ms |",
                steady - trivial
            );
            if preload {
                // A step that imports nothing still starts from the built-in snapshot.
                let plain = p50((0..n / 4).map(|_| time(&exec, TRIVIAL)).collect());
                println!(
                    "| trivial beside it | - | - | {plain:.2} ms | {:+.2} ms |",
                    plain - trivial
                );
            }
        }
    }
}
