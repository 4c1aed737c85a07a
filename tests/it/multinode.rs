//! Several `codestep serve` nodes on one PostgreSQL, under load, while one of them dies.
//!
//! For `CODESTEP_LOAD_SECS` (60 by default), client threads spread runs with fetches over three nodes,
//! another thread creates, rotates and deletes connectors, and every node prunes old fetch records
//! (seeded 40 days back) every second. Halfway through, one node is killed with SIGKILL. Afterwards,
//! every change and every run a node acknowledged must be in the store, and the 24 h counts the API
//! shows must equal the records.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::serve::{Serve, OP};
use crate::support::{Reply, TestServer};

/// One HTTP call that reports a dead node instead of panicking.
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new() -> Client {
        Client {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    fn call(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .bearer_auth(OP);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let res = req.send().await.ok()?;
            let status = res.status().as_u16();
            let text = res.text().await.ok()?;
            Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        })
    }
}

async fn sql(location: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(location, tokio_postgres::NoTls)
        .await
        .expect("connect to the test schema");
    tokio::spawn(conn);
    client
}

#[test]
fn three_nodes_share_one_store_under_load_and_survive_a_node_dying() {
    let secs: u64 = std::env::var("CODESTEP_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let location = crate::store::fresh_pg_location_blocking();
    let upstream = TestServer::start(|req| {
        if req.path == "/fail" {
            Reply::status(502)
        } else {
            Reply::ok("{}")
        }
    });
    let (mut args, _ca) = upstream.cli_net_args();
    args.extend(
        [
            "--workers",
            "1",
            "--retention-days",
            "30",
            "--retention-every-secs",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut nodes: Vec<Serve> = (0..3).map(|_| Serve::start(&location, &args)).collect();
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let client = Client::new();
    let (s, v) = client
        .call(
            &bases[0],
            "POST",
            "/v1/workspaces",
            Some(json!({ "name": "load" })),
        )
        .unwrap();
    assert_eq!(s, 201, "{v}");
    let (s, v) = client
        .call(
            &bases[1],
            "POST",
            "/v1/workspaces/load/connectors",
            Some(json!({ "name": "svc", "patterns": [upstream.pattern("api.test")], "placement": { "type": "query", "param": "key" }, "secret": "load-secret-0000" })),
        )
        .unwrap();
    assert_eq!(s, 201, "{v}");

    // Records from 40 days ago, for the nodes' retention to prune while the load runs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let old_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 40 * 24 * 3_600_000;
    rt.block_on(async {
        let db = sql(&location).await;
        db.execute(
            "INSERT INTO fetch_attempts (at, workspace_id, run_id, connector, connector_key, method, host, path, status, outcome, duration_ms)
             SELECT $1::BIGINT + g, 'seed', 'seed-' || g, 'svc', 'svc', 'GET', 'api.test', '/old', 200, 'ok', 1.0
             FROM generate_series(1, 20000) AS g",
            &[&old_at],
        )
        .await
        .unwrap();
    });

    let deadline = Instant::now() + Duration::from_secs(secs);
    let dead = Arc::new(AtomicBool::new(false));
    let acked_runs: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..6usize {
        let bases = bases.clone();
        let acked = acked_runs.clone();
        let refused = refused.clone();
        let dead = dead.clone();
        let ok_url = upstream.url("api.test", "/ok");
        let fail_url = upstream.url("api.test", "/fail");
        threads.push(std::thread::spawn(move || {
            let client = Client::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                i += 1;
                let node = (t + i) % 3;
                if node == 2 && dead.load(Ordering::Relaxed) {
                    continue;
                }
                let fail = i.is_multiple_of(4);
                let body = json!({
                    "code": "export default async ({ u }) => (await fetch(u)).status",
                    "input": { "u": if fail { &fail_url } else { &ok_url } },
                    "connectors": ["svc"],
                });
                match client.call(&bases[node], "POST", "/v1/workspaces/load/runs", Some(body)) {
                    Some((200, v)) => {
                        let want = if fail { 502 } else { 200 };
                        assert_eq!(v["output"], json!(want), "{v}");
                        acked
                            .lock()
                            .unwrap()
                            .push((v["run_id"].as_str().unwrap().to_string(), fail));
                    }
                    Some((429, _)) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Some((s, v)) => panic!("node {node} answered {s}: {v}"),
                    // The killed node, or one of its requests cut by the kill: not acknowledged.
                    None => {}
                }
            }
        }));
    }
    // Connector changes, spread over the nodes too.
    let changes = {
        let bases = bases.clone();
        let dead = dead.clone();
        let pattern = upstream.pattern("api.test");
        std::thread::spawn(move || {
            let client = Client::new();
            // Acknowledged creations not yet deleted, and names whose last change got no answer (the
            // node died, or the reply was lost): those may or may not be in the store.
            let mut live: BTreeSet<String> = BTreeSet::new();
            let mut unknown: BTreeSet<String> = BTreeSet::new();
            let mut rotated = 0usize;
            let mut i = 0usize;
            while Instant::now() < deadline {
                i += 1;
                let node = i % 3;
                if node == 2 && dead.load(Ordering::Relaxed) {
                    continue;
                }
                let base = &bases[node];
                let name = format!("c{i}");
                let created = client.call(
                    base,
                    "POST",
                    "/v1/workspaces/load/connectors",
                    Some(json!({ "name": name, "patterns": [pattern], "placement": { "type": "query", "param": "k" }, "secret": format!("secret-{i}-xxxxxxxx") })),
                );
                match created {
                    Some((201, _)) => {
                        live.insert(name.clone());
                    }
                    None => {
                        unknown.insert(name.clone());
                    }
                    Some((s, v)) => panic!("creating {name}: {s} {v}"),
                }
                if i.is_multiple_of(3) {
                    if let Some(victim) = live.iter().next().cloned() {
                        live.remove(&victim);
                        match client.call(
                            base,
                            "DELETE",
                            &format!("/v1/workspaces/load/connectors/{victim}"),
                            None,
                        ) {
                            Some((204, _)) => {}
                            None => {
                                unknown.insert(victim);
                            }
                            Some((s, v)) => panic!("deleting {victim}: {s} {v}"),
                        }
                    }
                }
                if i.is_multiple_of(5) {
                    if let Some(target) = live.iter().last().cloned() {
                        match client.call(
                            base,
                            "PATCH",
                            &format!("/v1/workspaces/load/connectors/{target}"),
                            Some(json!({ "secret": format!("rotated-{i}-xxxxxxxx") })),
                        ) {
                            Some((200, v)) => {
                                assert_eq!(v["name"], json!(target), "{v}");
                                rotated += 1;
                            }
                            None => {}
                            Some((s, v)) => panic!("rotating {target}: {s} {v}"),
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(rotated > 0, "no secret rotation was acknowledged");
            (live, unknown)
        })
    };
    std::thread::sleep(Duration::from_secs(secs / 2));
    nodes[2].child.kill().unwrap();
    nodes[2].child.wait().unwrap();
    dead.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (live, unknown) = changes.join().unwrap();
    let acked = acked_runs.lock().unwrap().clone();
    eprintln!(
        "multi-node load: {} runs acknowledged in {secs} s ({:.1}/s), {} turned away with 429, {} connectors left",
        acked.len(),
        acked.len() as f64 / secs as f64,
        refused.load(Ordering::Relaxed),
        live.len()
    );
    assert!(
        acked.len() > 20,
        "too few runs to say anything: {}",
        acked.len()
    );

    // Every acknowledged change is in the store.
    let (_, list) = client
        .call(&bases[0], "GET", "/v1/workspaces/load/connectors", None)
        .unwrap();
    let names: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .filter(|n| n != "svc")
        .collect();
    // Every acknowledged change is there; anything else in the store is a change whose answer was lost.
    assert!(
        live.is_subset(&names),
        "acknowledged connectors missing from the store: {:?}",
        live.difference(&names).collect::<Vec<_>>()
    );
    let extra: BTreeSet<&String> = names.difference(&live).collect();
    assert!(
        extra.iter().all(|n| unknown.contains(*n)),
        "the store holds connectors whose deletion was acknowledged: {extra:?}"
    );

    // Every acknowledged run's record is there, with its outcome.
    let (recorded, counts_ok) = rt.block_on(async {
        let db = sql(&location).await;
        let rows = db
            .query(
                "SELECT run_id, outcome FROM fetch_attempts WHERE connector_key = 'svc' AND run_id NOT LIKE 'seed-%'",
                &[],
            )
            .await
            .unwrap();
        let recorded: HashMap<String, String> =
            rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect();
        // Each run made one fetch: one record per run, never two (a retried write stored twice).
        assert_eq!(recorded.len(), rows.len(), "a run's fetch was recorded twice");
        let old: i64 = db
            .query_one("SELECT count(*) FROM fetch_attempts WHERE at < $1", &[&(old_at + 1_000_000)])
            .await
            .unwrap()
            .get(0);
        (recorded, old)
    });
    for (run_id, fail) in &acked {
        let outcome = recorded
            .get(run_id)
            .unwrap_or_else(|| panic!("acknowledged run {run_id} has no fetch record"));
        assert_eq!(
            outcome,
            if *fail { "http_error" } else { "ok" },
            "run {run_id}"
        );
    }
    assert_eq!(counts_ok, 0, "retention left records older than 30 days");

    // The 24 h counts equal the records, on every live node.
    let errors = recorded.values().filter(|o| *o != "ok").count();
    for base in &bases[..2] {
        let (_, list) = client
            .call(base, "GET", "/v1/workspaces/load/connectors", None)
            .unwrap();
        let svc = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "svc")
            .unwrap();
        assert_eq!(svc["stats"]["requests_24h"], json!(recorded.len()), "{svc}");
        assert_eq!(svc["stats"]["errors_24h"], json!(errors), "{svc}");
    }
}
