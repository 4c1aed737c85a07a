//! `cargo bench --bench engine`: the executor's speed and memory, printed as a table.
//!
//! Everything is measured in one run on this machine, so compare the rows with each other (the fetch
//! step beside raw reqwest on the same URL) rather than with figures from another machine.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use codestep::connector::{ConnectorSpec, Placement, Secret};
use codestep::engine::{Executor, ExecutorConfig, StepRequest};
use serde_json::json;
use support::{Reply, TestServer};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn timed<F: FnMut()>(n: usize, mut f: F) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let server =
        TestServer::start(|_| Reply::json(&json!({ "data": [{ "id": "ch_1", "amount": 100 }] })));
    let workers = std::thread::available_parallelism().map_or(2, |p| p.get());
    let exec = Arc::new(
        Executor::new(ExecutorConfig {
            workers,
            egress: server.egress_config(),
            ..Default::default()
        })
        .expect("executor"),
    );
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. A trivial step, one at a time: isolate from the snapshot, load, call, tear down.
    let trivial = "export default (input) => ({ n: input.n + 1 })";
    for _ in 0..20 {
        exec.run_blocking(StepRequest::new(trivial, json!({ "n": 1 })));
    }
    let lat = timed(n, || {
        let r = exec.run_blocking(StepRequest::new(trivial, json!({ "n": 1 })));
        assert!(r.ok);
    });
    rows.push((
        "trivial step, sequential: p50".into(),
        ms(percentile(&lat, 0.5)),
    ));
    rows.push((
        "trivial step, sequential: p99".into(),
        ms(percentile(&lat, 0.99)),
    ));

    // 2. Throughput with every worker busy.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let total = n * 2;
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..total {
            let exec = exec.clone();
            tasks.push(tokio::spawn(async move {
                exec.run(StepRequest::new(trivial, json!({ "n": i })))
                    .await
                    .ok
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
    });
    let rate = total as f64 / started.elapsed().as_secs_f64();
    rows.push((
        format!("trivial steps/s, pool of {workers} full"),
        format!("{rate:.0} steps/s"),
    ));

    // 3. One fetch to a loopback HTTPS server through a connector, beside raw reqwest on the same URL.
    let url = server.url("api.test", "/v1/charges?limit=1");
    let connector = ConnectorSpec {
        name: "stripe".into(),
        patterns: vec![server.pattern("api.test")],
        placement: Placement::Header {
            name: "Authorization".into(),
            template: "Bearer {{secret}}".into(),
        },
        scrub_echo: false,
    }
    .validate(Secret::new("sk_test_bench".into()))
    .unwrap();
    let fetch_step =
        "export default async ({ url }) => (await (await fetch(url)).json()).data.length";
    let run_fetch = || {
        let mut req = StepRequest::new(fetch_step, json!({ "url": url }));
        req.connectors = vec![connector.clone()];
        let r = exec.run_blocking(req);
        assert!(r.ok, "{:?}", r.error);
    };
    for _ in 0..20 {
        run_fetch();
    }
    let step_fetch = timed(n, run_fetch);

    let client = {
        let mut b = reqwest::Client::builder().no_proxy();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&support::ca_pem()).unwrap());
        b = b.resolve("api.test", server.addr);
        b.build().unwrap()
    };
    let raw_once = || {
        rt.block_on(async {
            let r = client
                .get(&url)
                .header("authorization", "Bearer sk_test_bench")
                .send()
                .await
                .unwrap();
            let _ = r.bytes().await.unwrap();
        })
    };
    for _ in 0..20 {
        raw_once();
    }
    let raw = timed(n, raw_once);
    let (p_step, p_raw) = (percentile(&step_fetch, 0.5), percentile(&raw, 0.5));
    rows.push(("step with one HTTPS fetch: p50".into(), ms(p_step)));
    rows.push(("raw reqwest, same URL: p50".into(), ms(p_raw)));
    rows.push((
        "  step-with-fetch minus raw fetch (p50)".into(),
        ms(p_step.saturating_sub(p_raw)),
    ));
    rows.push((
        "peak RSS of this process".into(),
        format!("{:.0} MiB", peak_rss_mib()),
    ));

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("\ncodestep engine benchmark (n = {n}, {workers} workers)\n");
    println!("| {:<width$} | {:>16} |", "measure", "value");
    println!("|{:-<w2$}|{:->18}|", "", "", w2 = width + 2);
    for (k, v) in rows {
        println!("| {k:<width$} | {v:>16} |");
    }
}
