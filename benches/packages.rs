//! `cargo bench --bench packages`: what importing a vendor SDK from the package directory costs a step.
//!
//! A step that imports the Stripe SDK (or OpenAI's; unbundled, as npm installed them: `scripts/sdk-deps`)
//! and makes a client, against a trivial step, in process mode with one worker, on two servers side by
//! side: the default one, and one with `--preload` (`ExecutorConfig::preload`: the package evaluated
//! into the snapshot every isolate starts from). "Worker start" is until a server's first step ran;
//! "first import step" is the first step importing the package (the default server reads, resolves and
//! compiles its files then). Then rounds interleave the four kinds of step in rotated order; the
//! import cost is the median over rounds of (import step p50 - trivial step p50) on the same server.
//! `BENCH_N` sets the steps of each kind (default 200), `BENCH_ROUNDS` the rounds (default 10),
//! `BENCH_ONLY=stripe` skips the other package.

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let per_round: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        / rounds.max(1);
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
        // The worker is ready (with `preload`, its snapshot made) when its first step ran.
        time(&exec, TRIVIAL);
        (exec, t.elapsed().as_secs_f64() * 1000.0)
    };
    println!(
        "| package | server | worker start | first import step | trivial p50 | import step p50 | import cost |"
    );
    println!("|---|---|---|---|---|---|---|");
    // `BENCH_ONLY=stripe` measures only the packages whose name contains it (for a profiler).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (package, code) in [("stripe", STRIPE), ("openai", OPENAI)] {
        if !package.contains(&only) {
            continue;
        }
        // Two servers side by side, one worker each: without and with `--preload PACKAGE`.
        let list = [package];
        let servers = [make(&[]), make(&list)];
        let firsts: Vec<f64> = servers
            .iter()
            .map(|(exec, _)| time(exec, code).as_secs_f64() * 1000.0)
            .collect();
        for (exec, _) in &servers {
            for _ in 0..10 {
                time(exec, code);
                time(exec, TRIVIAL);
            }
        }
        // Rounds interleave the four kinds of step, in an order rotated each round; the import cost is
        // the median over rounds of (import step p50 - trivial step p50) on the same server.
        let mut trivial = [Vec::new(), Vec::new()];
        let mut imports = [Vec::new(), Vec::new()];
        let mut costs = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let mut p = [[0.0; 2]; 2];
            for k in 0..4 {
                let which = (k + round) % 4;
                let (server, step) = (which / 2, which % 2);
                let code = if step == 0 { TRIVIAL } else { code };
                let exec = &servers[server].0;
                p[server][step] = p50((0..per_round).map(|_| time(exec, code)).collect());
            }
            for server in 0..2 {
                trivial[server].push(p[server][0]);
                imports[server].push(p[server][1]);
                costs[server].push(p[server][1] - p[server][0]);
            }
        }
        for server in 0..2 {
            let how = if server == 0 {
                "default".to_string()
            } else {
                format!("--preload {package}")
            };
            println!(
                "| {package} | {how} | {:.0} ms | {:.1} ms | {:.2} ms | {:.2} ms | {:+.2} ms |",
                servers[server].1,
                firsts[server],
                median(trivial[server].clone()),
                median(imports[server].clone()),
                median(costs[server].clone()),
            );
        }
    }
}
