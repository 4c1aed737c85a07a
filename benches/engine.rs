//! `cargo bench --bench engine`: the executor's speed and memory in its two modes, printed as a table.
//!
//! Process mode (steps in sandboxed worker processes, the default of `run` and `serve`) is measured
//! beside in-process mode (threads of this process) in one run, in interleaved rounds, so that a noisy
//! machine slows both alike. The cost of isolation is the median over rounds of (process − in-process).
//! `BENCH_N` sets the steps per measure (default 400), `BENCH_ROUNDS` the rounds (default 8).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use codestep::connector::{Connector, ConnectorSpec, Placement, Secret};
use codestep::engine::{Executor, ExecutorConfig, Mode, StepRequest};
use serde_json::json;
use support::{Reply, TestServer};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: f64) -> String {
    format!("{d:.2} ms")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Private memory (clean + dirty) of a process, from `smaps_rollup`.
fn private_mib(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kb: f64 = text
        .lines()
        .filter(|l| l.starts_with("Private_Clean:") || l.starts_with("Private_Dirty:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum();
    kb / 1024.0
}

const TRIVIAL: &str = "export default (input) => ({ n: input.n + 1 })";
const FETCH: &str =
    "export default async ({ url }) => (await (await fetch(url)).json()).data.length";

struct Bench {
    exec: Arc<Executor>,
    connector: Connector,
    url: String,
}

impl Bench {
    fn trivial(&self) -> Duration {
        let t = Instant::now();
        let r = self
            .exec
            .run_blocking(StepRequest::new(TRIVIAL, json!({ "n": 1 })));
        assert!(r.ok, "{:?}", r.error);
        t.elapsed()
    }

    fn fetch(&self) -> Duration {
        let mut req = StepRequest::new(FETCH, json!({ "url": self.url }));
        req.connectors = vec![self.connector.clone()];
        let t = Instant::now();
        let r = self.exec.run_blocking(req);
        assert!(r.ok, "{:?}", r.error);
        t.elapsed()
    }

    /// Steps per second with `count` steps submitted at once (the pool and its queue full).
    fn throughput(&self, rt: &tokio::runtime::Runtime, count: usize) -> f64 {
        let started = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..count)
                .map(|i| {
                    let exec = self.exec.clone();
                    tokio::spawn(async move {
                        exec.run(StepRequest::new(TRIVIAL, json!({ "n": i })))
                            .await
                            .ok
                    })
                })
                .collect();
            for t in tasks {
                assert!(t.await.unwrap());
            }
        });
        count as f64 / started.elapsed().as_secs_f64()
    }
}

#[derive(Default)]
struct Series {
    all: Vec<Duration>,
    round_p50: Vec<f64>,
}

impl Series {
    fn add_round(&mut self, mut round: Vec<Duration>) {
        round.sort();
        self.round_p50
            .push(percentile(&round, 0.5).as_secs_f64() * 1000.0);
        self.all.extend(round);
    }

    fn p(&mut self, q: f64) -> f64 {
        self.all.sort();
        percentile(&self.all, q).as_secs_f64() * 1000.0
    }
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
        .max(1);
    let per_round = (n / rounds).max(1);
    let server =
        TestServer::start(|_| Reply::json(&json!({ "data": [{ "id": "ch_1", "amount": 100 }] })));
    let workers = std::thread::available_parallelism().map_or(2, |p| p.get());
    let connector = ConnectorSpec {
        name: "stripe".into(),
        patterns: vec![server.pattern("api.test")],
        placement: Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
        scrub_echo: false,
    }
    .validate(Secret::new("sk_test_bench".into()))
    .unwrap();
    let url = server.url("api.test", "/v1/charges?limit=1");
    let make = |mode: Mode| Bench {
        exec: Arc::new(
            Executor::new(ExecutorConfig {
                workers,
                egress: server.egress_config(),
                mode,
                ..Default::default()
            })
            .expect("executor"),
        ),
        connector: connector.clone(),
        url: url.clone(),
    };
    let modes = [
        ("in-process", make(Mode::InProcess)),
        ("process", make(support::process_mode())),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Warm both up: the first steps of a worker pay for code that is then shared.
    for (_, b) in &modes {
        for _ in 0..30 {
            b.trivial();
            b.fetch();
        }
    }

    let mut trivial: [Series; 2] = Default::default();
    let mut fetch: [Series; 2] = Default::default();
    let mut rate: [Vec<f64>; 2] = Default::default();
    for round in 0..rounds {
        // Alternate which mode goes first, so neither always follows the other.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for &m in &order {
            let b = &modes[m].1;
            trivial[m].add_round((0..per_round).map(|_| b.trivial()).collect());
            fetch[m].add_round((0..per_round).map(|_| b.fetch()).collect());
            rate[m].push(b.throughput(&rt, per_round * 2));
        }
    }

    let diff = |s: &[Series; 2]| {
        median(
            s[1].round_p50
                .iter()
                .zip(&s[0].round_p50)
                .map(|(p, i)| p - i)
                .collect(),
        )
    };
    let trivial_cost = diff(&trivial);
    let fetch_cost = diff(&fetch);
    let idle_worker = modes[1]
        .1
        .exec
        .worker_pids()
        .iter()
        .map(|p| private_mib(*p))
        .collect::<Vec<_>>();

    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |name: &str, a: String, b: String, d: String| {
        rows.push([name.to_string(), a, b, d]);
    };
    let [t0, t1] = &mut trivial;
    row(
        "trivial step p50",
        ms(t0.p(0.5)),
        ms(t1.p(0.5)),
        format!("{:+.2} ms", trivial_cost),
    );
    row(
        "trivial step p99",
        ms(t0.p(0.99)),
        ms(t1.p(0.99)),
        String::new(),
    );
    let [f0, f1] = &mut fetch;
    row(
        "one-fetch step p50",
        ms(f0.p(0.5)),
        ms(f1.p(0.5)),
        format!("{:+.2} ms", fetch_cost),
    );
    row(
        "one-fetch step p99",
        ms(f0.p(0.99)),
        ms(f1.p(0.99)),
        String::new(),
    );
    row(
        "  fetch cost (fetch p50 - trivial p50)",
        ms(f0.p(0.5) - t0.p(0.5)),
        ms(f1.p(0.5) - t1.p(0.5)),
        format!("{:+.2} ms", fetch_cost - trivial_cost),
    );
    let (r0, r1) = (median(rate[0].clone()), median(rate[1].clone()));
    row(
        &format!("trivial steps/s, pool of {workers} full"),
        format!("{r0:.0}/s"),
        format!("{r1:.0}/s"),
        format!("{:+.0} %", (r1 / r0 - 1.0) * 100.0),
    );
    row(
        "private memory of an idle worker",
        "-".into(),
        idle_worker
            .iter()
            .map(|m| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
            + " MiB",
        String::new(),
    );

    println!(
        "\ncodestep engine benchmark: {rounds} interleaved rounds, {per_round} steps per measure and round, {workers} workers\n"
    );
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    println!(
        "| {:<w0$} | {:>12} | {:>16} | {:>22} |",
        "measure", "in-process", "process", "process - in-process"
    );
    println!(
        "|{:-<a$}|{:->14}|{:->18}|{:->24}|",
        "",
        "",
        "",
        "",
        a = w0 + 2
    );
    for r in rows {
        println!(
            "| {:<w0$} | {:>12} | {:>16} | {:>22} |",
            r[0], r[1], r[2], r[3]
        );
    }
    println!("\n(differences are medians of per-round differences of p50s)");
}
