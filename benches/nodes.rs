//! `cargo bench --bench nodes`: runs per second, and the store's time per run, with 1, 2 and 3
//! `codestep serve` nodes on one PostgreSQL.
//!
//! Each node runs one worker; client threads spread runs that make one fetch (to a local HTTPS server,
//! through a connector) over the nodes for `BENCH_SECS` seconds (default 10) per node count. The
//! store's time per run is what each node reports in the run's `Server-Timing` header (`store`): the
//! reads and writes a run makes, authentication included. The database comes from
//! `CODESTEP_TEST_PG_URL`, or from `scripts/pg-test-server`, which starts a throwaway one.
//!
//! On a 2-core machine the nodes share the cores with the database and the clients, so runs/s shows
//! the cost of more nodes as much as their gain; the store times show whether the shared store holds up.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::serve::{Serve, OP};
use support::{Reply, TestServer};

fn pg_url() -> String {
    if let Ok(url) = std::env::var("CODESTEP_TEST_PG_URL") {
        return url;
    }
    let out = Command::new("scripts/pg-test-server")
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/pg-test-server");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export CODESTEP_TEST_PG_URL="))
        .expect("scripts/pg-test-server printed no URL")
        .trim_matches('\'')
        .to_string()
}

fn fresh_schema(url: &str, rt: &tokio::runtime::Runtime) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    let schema = format!(
        "bench_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// The `store` duration of a `Server-Timing` header, in milliseconds.
fn store_ms(headers: &reqwest::header::HeaderMap) -> Option<f64> {
    let v = headers.get("server-timing")?.to_str().ok()?;
    v.split(',').find_map(|m| {
        let m = m.trim();
        let rest = m.strip_prefix("store")?;
        rest.split(';')
            .find_map(|p| p.trim().strip_prefix("dur="))?
            .parse()
            .ok()
    })
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let url = pg_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let upstream = TestServer::start(|_| Reply::ok("{}"));
    let (net, _ca) = upstream.cli_net_args();
    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    for count in 1..=3usize {
        let db = fresh_schema(&url, &rt);
        let nodes: Vec<Serve> = (0..count).map(|_| Serve::start(&db, &net)).collect();
        let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        rt.block_on(async {
            let ws = http
                .post(format!("{}/v1/workspaces", bases[0]))
                .bearer_auth(OP)
                .header("content-type", "application/json")
                .body(json!({ "name": "bench" }).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(ws.status(), 201);
            let c = http
                .post(format!("{}/v1/workspaces/bench/connectors", bases[0]))
                .bearer_auth(OP)
                .header("content-type", "application/json")
                .body(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")], "placement": { "type": "header", "name": "Authorization", "template": "Bearer {{secret}}" }, "secret": "bench-secret-123456" }).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(c.status(), 201);
        });
        let body = json!({
            "code": "export default async ({ u }) => (await fetch(u)).status",
            "input": { "u": upstream.url("api.test", "/x") },
            "connectors": ["svc"],
        });
        let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
        let store: Arc<Mutex<Vec<f64>>> = Arc::default();
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..clients)
                .map(|c| {
                    let (http, bases, body) = (http.clone(), bases.clone(), body.clone());
                    let (latencies, store) = (latencies.clone(), store.clone());
                    tokio::spawn(async move {
                        let mut i = c;
                        while Instant::now() < deadline {
                            i += 1;
                            let t = Instant::now();
                            let res = http
                                .post(format!(
                                    "{}/v1/workspaces/bench/runs",
                                    bases[i % bases.len()]
                                ))
                                .bearer_auth(OP)
                                .header("content-type", "application/json")
                                .body(body.to_string())
                                .send()
                                .await
                                .unwrap();
                            let s = store_ms(res.headers());
                            let status = res.status();
                            let v: Value =
                                serde_json::from_str(&res.text().await.unwrap_or_default())
                                    .unwrap_or(Value::Null);
                            if status == 429 {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                continue;
                            }
                            assert!(status.is_success() && v["ok"] == json!(true), "{v}");
                            latencies
                                .lock()
                                .unwrap()
                                .push(t.elapsed().as_secs_f64() * 1000.0);
                            if let Some(s) = s {
                                store.lock().unwrap().push(s);
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        let mut lat = latencies.lock().unwrap().clone();
        let mut st = store.lock().unwrap().clone();
        rows.push((
            count,
            lat.len() as f64 / elapsed,
            percentile(&mut lat, 0.5),
            percentile(&mut st, 0.5),
            percentile(&mut st, 0.99),
        ));
        drop(nodes);
    }
    println!(
        "\ncodestep nodes benchmark: one-fetch runs through serve (1 worker per node), {clients} clients, {secs} s per row, PostgreSQL\n"
    );
    println!("| nodes | runs/s | run p50 | store time per run p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (n, rate, p50, s50, s99) in rows {
        println!("| {n} | {rate:.0} | {p50:.2} ms | {s50:.2} ms | {s99:.2} ms |");
    }
}
