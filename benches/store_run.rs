//! `cargo bench --bench store_run`: the store's share of one API run with one fetch, printed as a
//! markdown table.
//!
//! One run asks the store to authenticate the caller's token, read the workspace and the run's
//! connectors (decrypting their secrets), and record the run's fetch. Timed sequentially (p50, p99 over
//! `BENCH_RUNS`, default 400) and with 8 callers at once (runs/s), on SQLite (a temporary file) and,
//! when `CODESTEP_TEST_PG_URL` is set, on PostgreSQL (a throwaway schema).

use std::sync::Arc;
use std::time::{Duration, Instant};

use codestep::connector::{ConnectorSpec, Placement, Secret};
use codestep::egress::FetchRecord;
use codestep::store::{self, FetchAttempt, Store};
use codestep::vault::{Keyring, MasterKey, Vault};

const CALLERS: usize = 8;

fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

struct Setup {
    store: Arc<dyn Store>,
    vault: Vault,
    token_hash: Vec<u8>,
}

const BENCH: store::Actor = store::Actor::named("bench");

async fn setup(location: &str) -> Setup {
    let store = store::open(location).await.unwrap();
    let vault = Vault::new(Keyring::new(vec![MasterKey::from_bytes(1, [7; 32])]).unwrap());
    store.create_workspace("acme", &BENCH).await.unwrap();
    for name in ["stripe", "weather"] {
        let spec = ConnectorSpec {
            name: name.into(),
            patterns: vec![format!("https://api.{name}.example/*")],
            placement: Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
            scrub_echo: false,
        };
        store::create_connector(
            &*store,
            &vault,
            "acme",
            &spec,
            &Secret::new("sk_bench_0123456789".into()),
            &BENCH,
        )
        .await
        .unwrap();
    }
    let (token, _) = store::create_api_token(
        &*store,
        "acme",
        "bench",
        &store::TokenGrant {
            scopes: store::Scopes::all(),
            expires_at: None,
        },
        &BENCH,
    )
    .await
    .unwrap();
    Setup {
        store,
        vault,
        token_hash: store::hash_api_token(token.expose()),
    }
}

/// The store calls of one run with one fetch, as the API handler makes them.
async fn one_run(s: &Setup, n: usize) {
    let caller = s.store.authenticate_api_token(&s.token_hash).await.unwrap();
    assert!(caller.is_some());
    let names = ["stripe".to_string()];
    let (workspace, connectors) = store::load_run(&*s.store, &s.vault, "acme", &names)
        .await
        .unwrap();
    assert_eq!(connectors.len(), 1);
    let mut record = FetchRecord::start("GET");
    record.connector = Some("stripe".into());
    record.host = "api.stripe.example".into();
    record.path = "/v1/balance".into();
    record.status = Some(200);
    record.duration_ms = 4.0;
    let run_id = format!("run-{n}");
    let attempt = FetchAttempt::from_record(&record, Some(&run_id));
    s.store
        .record_fetch_attempts(Some(&workspace.id), &[attempt])
        .await
        .unwrap();
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn measure(label: &str, location: &str) {
    let s = Arc::new(setup(location).await);
    for n in 0..20 {
        one_run(&s, n).await; // warm caches and connections
    }
    let mut times = Vec::with_capacity(runs());
    for n in 0..runs() {
        let t = Instant::now();
        one_run(&s, n).await;
        times.push(t.elapsed());
    }
    times.sort();
    let per_caller = runs() / CALLERS;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let s = s.clone();
            tokio::spawn(async move {
                for n in 0..per_caller {
                    one_run(&s, 1_000_000 + c * per_caller + n).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (per_caller * CALLERS) as f64 / started.elapsed().as_secs_f64();
    println!(
        "| {label} | {:.2} ms | {:.2} ms | {rate:.0} runs/s |",
        pct(&times, 0.5),
        pct(&times, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("| store | one-fetch run, store time p50 | p99 | {CALLERS} callers at once |");
    println!("|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    measure("SQLite", &path.to_string_lossy()).await;
    if let Ok(url) = std::env::var("CODESTEP_TEST_PG_URL") {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let schema = format!("bench_{}", std::process::id());
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        measure(
            "PostgreSQL",
            &format!("{url}{sep}options=-csearch_path%3D{schema}"),
        )
        .await;
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
