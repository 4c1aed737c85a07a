//! `cargo bench --bench monitoring`: the monitoring reads of the store on a large fetch log, printed as
//! a markdown table.
//!
//! Fills a SQLite store (a temporary file) with `BENCH_ROWS` fetch attempts (default 2 000 000) spread
//! over 30 days and 20 connectors, then times the 24 h counts read from the per-minute buckets beside
//! the naive `COUNT(*)` over the attempts for the same window, a connector's series, the first page of
//! a connector's error log and of the blocked list, a write, and retention. When `CODESTEP_TEST_PG_URL`
//! is set, does the same on PostgreSQL (in a throwaway schema) with `BENCH_PG_ROWS` rows (default
//! 500 000). Ends with the query plans of the reads.

use std::time::{Duration, Instant};

use codestep::store::{
    FetchAttempt, FetchLogQuery, Millis, Outcome, PostgresStore, SqliteStore, Store,
};

const CONNECTORS: usize = 20;
const DAY: Millis = 24 * 3_600_000;
const BATCH: usize = 5_000;
const ERRORS_SQL: &str = "outcome IN ('http_error', 'network_error', 'timeout')";

fn env_rows(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as Millis
}

/// A cheap deterministic generator (xorshift), so every run fills the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Attempt `i` of `n`, spread evenly over the 30 days before `now`: 20 connectors (the first ones
/// busier), about 3 % errors of the three kinds and 1 % blocked.
fn synthetic(i: usize, n: usize, now: Millis, rng: &mut Rng) -> FetchAttempt {
    let span = 30 * DAY;
    let at = now - span + (i as i128 * span as i128 / n as i128) as Millis;
    let r = rng.next();
    let connector = ((r % 1000) * (r % 1000) / 50_000) as usize % CONNECTORS;
    let roll = (r >> 20) % 1000;
    let (status, error, blocked) = match roll {
        0..=9 => (None, Some("blocked"), true),
        10..=29 => (Some(500 + (roll % 4) as u16), None, false),
        30..=34 => (None, Some("network_error"), false),
        35..=39 => (None, Some("timeout"), false),
        _ => (Some(200), None, false),
    };
    FetchAttempt {
        at_ms: at,
        run_id: Some(format!("run-{}", i / 4)),
        connector: (!blocked).then(|| format!("conn-{connector:02}")),
        method: if roll.is_multiple_of(3) {
            "POST"
        } else {
            "GET"
        }
        .into(),
        host: format!("api{connector}.example.com"),
        path: "/v1/resources".into(),
        status,
        error: error.map(str::to_string),
        blocked,
        redirects: 0,
        status_text: None,
        error_excerpt: None,
        duration_ms: (r % 400) as f64 / 3.0,
    }
}

async fn fill(store: &dyn Store, workspace_id: &str, rows: usize, now: Millis, label: &str) {
    let started = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let progress = (rows / 8).max(100_000);
    let mut done = 0;
    while done < rows {
        let n = BATCH.min(rows - done);
        let batch: Vec<FetchAttempt> = (done..done + n)
            .map(|i| synthetic(i, rows, now, &mut rng))
            .collect();
        store
            .record_fetch_attempts(Some(workspace_id), &batch)
            .await
            .unwrap();
        let before = done;
        done += n;
        if done / progress != before / progress || done == rows {
            eprintln!(
                "{label}: {done} / {rows} attempts recorded ({:.0} rows/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.3} ms")
    } else {
        format!("{v:.1} ms")
    }
}

struct Row {
    backend: &'static str,
    rows: usize,
    what: String,
    median: Duration,
    p95: Duration,
    note: String,
}

/// Runs `f` `n` times (after one warm-up) and records its median and 95th percentile.
async fn time<F, Fut>(
    out: &mut Vec<Row>,
    backend: &'static str,
    rows: usize,
    what: &str,
    n: usize,
    mut f: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut note = f().await;
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        note = f().await;
        d.push(t.elapsed());
    }
    d.sort();
    out.push(Row {
        backend,
        rows,
        what: what.into(),
        median: percentile(&d, 0.5),
        p95: percentile(&d, 0.95),
        note,
    });
}

fn error_log_query() -> FetchLogQuery {
    FetchLogQuery {
        connector: Some("conn-03".into()),
        only_errors: true,
        limit: 50,
        ..Default::default()
    }
}

/// The reads every backend is timed on.
async fn common_reads(
    out: &mut Vec<Row>,
    backend: &'static str,
    rows: usize,
    store: &dyn Store,
    now: Millis,
) {
    let since = now - DAY;
    time(
        out,
        backend,
        rows,
        "`connector_counts` 24 h (bucket sum)",
        20,
        || async {
            let c = store.connector_counts("bench", since).await.unwrap();
            let (r, e) = c
                .values()
                .fold((0, 0), |(r, e), c| (r + c.requests, e + c.errors));
            format!("{} connectors, {r} requests, {e} errors", c.len())
        },
    )
    .await;
    time(
        out,
        backend,
        rows,
        "`connector_series` 24 h hourly, one connector",
        20,
        || async {
            let s = store
                .connector_series("bench", "conn-03", since, 3_600_000)
                .await
                .unwrap();
            format!(
                "{} points, {} requests",
                s.len(),
                s.iter().map(|p| p.requests).sum::<u64>()
            )
        },
    )
    .await;
    time(out, backend, rows, "`blocked_count` 24 h", 20, || async {
        format!(
            "{} blocked",
            store.blocked_count("bench", since).await.unwrap()
        )
    })
    .await;
    let q = error_log_query();
    time(
        out,
        backend,
        rows,
        "`fetch_log` first page: one connector, only errors (50)",
        20,
        || async {
            let p = store.fetch_log("bench", &q).await.unwrap();
            format!("{} entries", p.items.len())
        },
    )
    .await;
    // Ten pages in: the cursor keeps it an index range scan.
    let mut deep = q.clone();
    for _ in 0..10 {
        deep.before = store.fetch_log("bench", &deep).await.unwrap().next;
    }
    time(
        out,
        backend,
        rows,
        "`fetch_log` 11th page of the same (cursor)",
        20,
        || async {
            let p = store.fetch_log("bench", &deep).await.unwrap();
            format!("{} entries", p.items.len())
        },
    )
    .await;
    let timeouts_week_ago = FetchLogQuery {
        connector: Some("conn-03".into()),
        outcome: Some(Outcome::Timeout),
        since: Some(now - 8 * DAY),
        until: Some(now - 7 * DAY),
        limit: 50,
        ..Default::default()
    };
    time(
        out,
        backend,
        rows,
        "`fetch_log` one connector, timeouts, one day a week ago",
        10,
        || async {
            let p = store.fetch_log("bench", &timeouts_week_ago).await.unwrap();
            format!("{} entries", p.items.len())
        },
    )
    .await;
    let blocked = FetchLogQuery {
        blocked_only: true,
        limit: 50,
        ..Default::default()
    };
    time(
        out,
        backend,
        rows,
        "`fetch_log` first page: blocked (50)",
        20,
        || async {
            let p = store.fetch_log("bench", &blocked).await.unwrap();
            format!("{} entries", p.items.len())
        },
    )
    .await;
}

/// Times one small run's write (10 attempts, buckets included) on the full store.
async fn time_write(
    out: &mut Vec<Row>,
    backend: &'static str,
    rows: usize,
    store: &dyn Store,
    ws_id: &str,
) {
    let mut rng = Rng(7);
    time(
        out,
        backend,
        rows,
        "`record_fetch_attempts`: one run of 10 attempts",
        30,
        || {
            let batch: Vec<FetchAttempt> = (0..10)
                .map(|i| synthetic(rows - 1 - i, rows, now_ms(), &mut rng))
                .collect();
            async move {
                store
                    .record_fetch_attempts(Some(ws_id), &batch)
                    .await
                    .unwrap();
                "one transaction".to_string()
            }
        },
    )
    .await;
}

/// Prunes the oldest day while another connection records a run every 5 ms; reports the prune and
/// the slowest of those writes.
async fn time_prune(
    out: &mut Vec<Row>,
    backend: &'static str,
    rows: usize,
    store: &dyn Store,
    writer: std::sync::Arc<dyn Store>,
    ws_id: String,
    now: Millis,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writes = tokio::spawn(async move {
        let mut lat = Vec::new();
        let mut rng = Rng(11);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let batch: Vec<FetchAttempt> = (0..5)
                .map(|i| synthetic(rows - 1 - i, rows, now_ms(), &mut rng))
                .collect();
            let t = Instant::now();
            writer
                .record_fetch_attempts(Some(&ws_id), &batch)
                .await
                .unwrap();
            lat.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lat.sort();
        lat
    });
    let t = Instant::now();
    let deleted = store
        .prune_fetch_attempts(now - 29 * DAY, 1_000)
        .await
        .unwrap();
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lat = writes.await.unwrap();
    out.push(Row {
        backend,
        rows,
        what: "`prune_fetch_attempts`: the oldest day, batches of 1000".into(),
        median: took,
        p95: took,
        note: format!(
            "{deleted} deleted ({:.0} rows/s); {} concurrent runs recorded meanwhile, slowest {} (median {})",
            deleted as f64 / took.as_secs_f64(),
            lat.len(),
            ms(*lat.last().unwrap_or(&Duration::ZERO)),
            ms(percentile(&lat, 0.5)),
        ),
    });
}

async fn bench_sqlite(out: &mut Vec<Row>, plans: &mut Vec<(String, String)>) {
    let rows = env_rows("BENCH_ROWS", 2_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let ws = store
        .create_workspace("bench", &codestep::store::Actor::named("bench"))
        .await
        .unwrap();
    let now = now_ms();
    let t = Instant::now();
    fill(&store, &ws.id, rows, now, "sqlite").await;
    let fill_time = t.elapsed();
    out.push(Row {
        backend: "SQLite",
        rows,
        what: "fill (`record_fetch_attempts`, runs of 5000)".into(),
        median: fill_time,
        p95: fill_time,
        note: format!(
            "{:.0} rows/s; file {:.0} MiB",
            rows as f64 / fill_time.as_secs_f64(),
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
        ),
    });
    common_reads(out, "SQLite", rows, &store, now).await;

    // The naive way: count the attempts themselves over the same window.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let since = codestep::store::window_start(now - DAY);
    for (label, hint) in [("via the `at` index", ""), ("full scan", "NOT INDEXED")] {
        let sql = format!(
            "SELECT connector, COUNT(*), SUM({ERRORS_SQL}) FROM fetch_attempts {hint}
             WHERE workspace_id = ?1 AND at >= ?2 AND outcome <> 'blocked' GROUP BY connector"
        );
        let n = if hint.is_empty() { 10 } else { 3 };
        let (raw, ws_id) = (&raw, &ws.id);
        time(
            out,
            "SQLite",
            rows,
            &format!("naive `COUNT(*)` 24 h over the attempts, {label}"),
            n,
            || {
                let sql = sql.clone();
                async move {
                    let mut stmt = raw.prepare_cached(&sql).unwrap();
                    let got: Vec<(String, i64, i64)> = stmt
                        .query_map(rusqlite::params![ws_id, since], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    let (r, e) = got.iter().fold((0, 0), |(r, e), g| (r + g.1, e + g.2));
                    format!("{} connectors, {r} requests, {e} errors", got.len())
                }
            },
        )
        .await;
    }
    drop(raw);
    time_write(out, "SQLite", rows, &store, &ws.id).await;
    for (name, plan) in store
        .monitoring_plans("bench", &error_log_query())
        .await
        .unwrap()
    {
        plans.push((format!("SQLite `{name}`"), plan));
    }
    let blocked = FetchLogQuery {
        blocked_only: true,
        ..Default::default()
    };
    let (_, plan) = store
        .monitoring_plans("bench", &blocked)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.0 == "fetch_log")
        .unwrap();
    plans.push(("SQLite `fetch_log` (blocked)".into(), plan));
    let writer: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
    time_prune(out, "SQLite", rows, &store, writer, ws.id.clone(), now).await;
}

async fn bench_postgres(url: &str, out: &mut Vec<Row>, plans: &mut Vec<(String, String)>) {
    let rows = env_rows("BENCH_PG_ROWS", 500_000);
    let (admin, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let schema = format!("bench_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let location = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let store = PostgresStore::open(&location).await.unwrap();
    let ws = store
        .create_workspace("bench", &codestep::store::Actor::named("bench"))
        .await
        .unwrap();
    let now = now_ms();
    let t = Instant::now();
    fill(&store, &ws.id, rows, now, "postgres").await;
    let fill_time = t.elapsed();
    admin
        .batch_execute(&format!("SET search_path = {schema}; ANALYZE"))
        .await
        .unwrap();
    out.push(Row {
        backend: "PostgreSQL",
        rows,
        what: "fill (`record_fetch_attempts`, runs of 5000), then ANALYZE".into(),
        median: fill_time,
        p95: fill_time,
        note: format!("{:.0} rows/s", rows as f64 / fill_time.as_secs_f64()),
    });
    common_reads(out, "PostgreSQL", rows, &store, now).await;
    let since = codestep::store::window_start(now - DAY);
    let sql = format!(
        "SELECT connector, COUNT(*), COUNT(*) FILTER (WHERE {ERRORS_SQL}) FROM fetch_attempts
         WHERE workspace_id = $1 AND at >= $2 AND outcome <> 'blocked' GROUP BY connector"
    );
    let (admin_ref, ws_id) = (&admin, &ws.id);
    time(
        out,
        "PostgreSQL",
        rows,
        "naive `COUNT(*)` 24 h over the attempts",
        10,
        || {
            let sql = sql.clone();
            async move {
                let got = admin_ref.query(&sql, &[ws_id, &since]).await.unwrap();
                let r: i64 = got.iter().map(|r| r.get::<_, i64>(1)).sum();
                let e: i64 = got.iter().map(|r| r.get::<_, i64>(2)).sum();
                format!("{} connectors, {r} requests, {e} errors", got.len())
            }
        },
    )
    .await;
    time_write(out, "PostgreSQL", rows, &store, &ws.id).await;
    for (name, plan) in store
        .monitoring_plans("bench", &error_log_query(), false)
        .await
        .unwrap()
    {
        plans.push((format!("PostgreSQL `{name}`"), plan));
    }
    let writer: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(PostgresStore::open(&location).await.unwrap());
    time_prune(out, "PostgreSQL", rows, &store, writer, ws.id.clone(), now).await;
    drop(store);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let mut out = Vec::new();
        let mut plans = Vec::new();
        bench_sqlite(&mut out, &mut plans).await;
        match std::env::var("CODESTEP_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => bench_postgres(&url, &mut out, &mut plans).await,
            _ => eprintln!("CODESTEP_TEST_PG_URL is not set: skipping PostgreSQL"),
        }
        println!("| backend | rows | operation | median | p95 | result |");
        println!("|---|---:|---|---:|---:|---|");
        for r in &out {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.backend,
                r.rows,
                r.what,
                ms(r.median),
                ms(r.p95),
                r.note
            );
        }
        println!();
        println!("Query plans:");
        println!();
        for (name, plan) in plans {
            println!("- {name}: `{plan}`");
        }
        println!();
        println!("Total {:.0} s.", started.elapsed().as_secs_f64());
    });
}
