//! The dashboard in a real headless Chromium, driven through WebDriver (chromedriver + fantoccini),
//! against a real `codestep serve` child process with a SQLite database in a temporary folder.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/browser-deps` installs them; the
//! test command runs it first). The flow: sign in with a workspace token, add connectors through the
//! UI (with a validation error first), run steps over the API that succeed, fail upstream and are
//! blocked, watch counts and the alert badge change, open the error log and the chart, edit, rotate
//! the secret, delete, sign out. Screenshots go to `target/artifacts/`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::{assert_no_secret, Reply, TestServer};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SECRET: &str = "sk_dash_first_5ecret_Q7m2xV9pL3";
const SECRET_ROTATED: &str = "sk_dash_rotated_5ecret_H4t8nK1wZ6";
const STRIPE_SECRET: &str = "sk_dash_stripe_5ecret_B2c5dR8yJ0";
/// How long the UI gets to show what the API already knows.
const UI_WAIT: Duration = Duration::from_secs(30);

/// A child process killed (and reaped) when dropped; on a failing test it prints its log.
struct ChildGuard {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&self.log) {
                let _ = f.read_to_string(&mut text);
            }
            let tail: String = {
                let start = text.len().saturating_sub(8000);
                let start = (start..text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                text[start..].to_string()
            };
            eprintln!(
                "----- {} log (tail) -----\n{tail}\n----- end of {} log -----",
                self.name, self.name
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("create target/artifacts");
    dir
}

/// Starts `codestep serve` on a free port; returns the guard and `http://127.0.0.1:PORT`.
fn start_codestep(dir: &Path, ca_file: &Path, operator_token: &str) -> (ChildGuard, String) {
    let log = dir.join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_codestep"))
        .arg("serve")
        .arg("--create-store")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(dir.join("c.db"))
        .args(["--allow-private", "127.0.0.1/32"])
        .arg("--ca-cert")
        .arg(ca_file)
        .args(["--resolve", "api.test:127.0.0.1"])
        .args(["--resolve", "other.test:127.0.0.1"])
        .env(
            "CODESTEP_MASTER_KEY",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .env("CODESTEP_OPERATOR_TOKEN", operator_token)
        .env_remove("CODESTEP_DB")
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn codestep serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    // Reads stdout for the "listening on" line, then keeps draining it so the server never blocks.
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(i) = line.find("listening on http://") {
                    let url = line[i + "listening on ".len()..].trim().to_string();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        }
    });
    let guard = ChildGuard {
        name: "codestep serve",
        child,
        log,
    };
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("codestep serve printed no `listening on http://…` line within 60 s");
    (guard, url.trim_end_matches('/').to_string())
}

/// Starts chromedriver on a free port and waits until it is ready; returns the guard and its URL.
async fn start_chromedriver(dir: &Path) -> (ChildGuard, String) {
    assert!(
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
        "{CHROMIUM} and {CHROMEDRIVER} are needed: run scripts/browser-deps"
    );
    let port = free_port();
    let log = dir.join("chromedriver.log");
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .expect("spawn chromedriver");
    let guard = ChildGuard {
        name: "chromedriver",
        child,
        log,
    };
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if let Ok(v) = serde_json::from_slice::<Value>(&r.bytes().await.unwrap_or_default()) {
                if v["value"]["ready"] == json!(true) {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (guard, url)
}

async fn browser(webdriver: &str, profile: &Path) -> Client {
    let args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1280,1000".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("WebDriver session with headless Chromium")
}

/// The workspace API over HTTP, as the test's own client (not the browser).
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    ws: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Runs a step over the API; returns the step result.
    async fn run_step(&self, code: &str, input: Value, connectors: &[&str]) -> Value {
        let (status, result) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/workspaces/{}/runs", self.ws),
                Some(
                    json!({ "code": code, "input": input, "connectors": connectors, "limits": {} }),
                ),
            )
            .await;
        assert_eq!(status, 200, "POST /runs: {result}");
        result
    }

    /// Runs a step that fetches `url` once through the workspace's connectors.
    async fn run_fetch(&self, url: &str, connectors: &[&str]) -> Value {
        let code = "export default async (input) => {\n\
                      try { const r = await fetch(input.url); await r.text(); return { status: r.status }; }\n\
                      catch (e) { return { failed: String(e && e.message || e) }; }\n\
                    }";
        self.run_step(code, json!({ "url": url }), connectors).await
    }
}

// ---------- browser helpers ----------

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(UI_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element `{css}` within {UI_WAIT:?}: {e}"))
}

async fn click(c: &Client, css: &str) {
    find(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let el = find(c, css).await;
    el.clear()
        .await
        .unwrap_or_else(|e| panic!("clear `{css}`: {e}"));
    el.send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
}

/// Picks an option of a `<select>` by its value.
async fn select(c: &Client, css: &str, value: &str) {
    find(c, css)
        .await
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("select {value:?} in `{css}`: {e}"));
}

async fn value_of(c: &Client, css: &str) -> String {
    find(c, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The visible text of the first match, or `None` when nothing matches.
async fn text_now(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(el) => el.text().await.ok().map(|t| t.trim().to_string()),
        Err(_) => None,
    }
}

async fn displayed(c: &Client, css: &str) -> bool {
    match c.find(Locator::Css(css)).await {
        Ok(el) => el.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

/// Waits until the text of `css` satisfies `ok`, clicking `refresh` (when given) between looks.
async fn wait_text(
    c: &Client,
    css: &str,
    refresh: Option<&str>,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let now = text_now(c, css).await;
        if let Some(t) = &now {
            if ok(t) {
                return t.clone();
            }
        }
        if Instant::now() > deadline {
            panic!("`{css}` never showed {what} within {UI_WAIT:?}; last text: {now:?}");
        }
        if let Some(r) = refresh {
            if let Ok(el) = c.find(Locator::Css(r)).await {
                let _ = el.click().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// Waits until `cond` holds (polled with a clone of the client), clicking `refresh` between looks.
async fn wait_until<F, Fut>(c: &Client, refresh: Option<&str>, what: &str, cond: F)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + UI_WAIT;
    while !cond(c.clone()).await {
        assert!(
            Instant::now() < deadline,
            "never saw {what} within {UI_WAIT:?}"
        );
        if let Some(r) = refresh {
            if let Ok(el) = c.find(Locator::Css(r)).await {
                let _ = el.click().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

fn row(name: &str, inner: &str) -> String {
    format!("tr[data-testid=\"connector-row\"][data-name=\"{name}\"] {inner}")
}

/// Nothing the browser holds (DOM, input values, storage) may contain a secret.
async fn assert_page_has_no_secret(c: &Client, what: &str) {
    let html = c.source().await.expect("page source");
    let values = c
        .execute(
            "return JSON.stringify({ inputs: Array.from(document.querySelectorAll('input, textarea')).map(e => e.value), \
             session: Object.assign({}, sessionStorage), local: Object.assign({}, localStorage) });",
            vec![],
        )
        .await
        .expect("read inputs and storage");
    let hay = format!("{html}\n{values}");
    for s in [SECRET, SECRET_ROTATED, STRIPE_SECRET] {
        assert_no_secret(hay.as_bytes(), s, what);
    }
}

async fn screenshot(c: &Client, file: &str) -> PathBuf {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    let path = artifacts_dir().join(file);
    std::fs::write(&path, png).expect("write screenshot");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();

    // Upstream: /ok answers 200, /fail 500; the test server records what it gets (to check the secret).
    let upstream = TestServer::start(|req| match req.path.as_str() {
        p if p.starts_with("/fail") => Reply::status(500),
        _ => Reply::json(&json!({ "ok": true })),
    });
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &upstream.ca_pem).unwrap();

    let operator_token = format!("op_{:032x}", rand::random::<u128>());
    let (_serve, base) = start_codestep(dir.path(), &ca_file, &operator_token);

    // A workspace and a token, with the operator token.
    let http = reqwest::Client::new();
    let operator = Api {
        http: http.clone(),
        base: base.clone(),
        token: operator_token.clone(),
        ws: String::new(),
    };
    let (st, body) = operator
        .call(
            reqwest::Method::POST,
            "/v1/workspaces",
            Some(json!({ "name": "acme" })),
        )
        .await;
    assert_eq!(st, 201, "create workspace: {body}");
    let (st, body) = operator
        .call(
            reqwest::Method::POST,
            "/v1/workspaces/acme/tokens",
            Some(json!({ "label": "dashboard test", "scopes": ["run", "read", "manage"] })),
        )
        .await;
    assert_eq!(st, 201, "create token");
    let token = body["token"]
        .as_str()
        .expect("token in the answer")
        .to_string();
    let api = Api {
        http: http.clone(),
        base: base.clone(),
        token: token.clone(),
        ws: "acme".into(),
    };

    // The dashboard's own files are served by the binary.
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "javascript"),
        ("/style.css", "text/css"),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.contains(kind), "GET {path}: content-type {ct:?}");
    }

    let (_driver, webdriver) = start_chromedriver(dir.path()).await;
    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let c = browser(&webdriver, &profile).await;

    // ---- sign in: a bad token first, then the real one ----
    c.goto(&format!("{base}/"))
        .await
        .expect("open the dashboard");
    type_into(&c, "[data-testid=token-input]", "cs_not_a_real_token").await;
    click(&c, "[data-testid=signin-submit]").await;
    wait_text(
        &c,
        "[data-testid=signin-error]",
        None,
        "a sign-in error",
        |t| !t.is_empty(),
    )
    .await;
    assert!(
        !displayed(&c, "#view-list").await,
        "a bad token must not sign in"
    );

    type_into(&c, "[data-testid=token-input]", &token).await;
    click(&c, "[data-testid=signin-submit]").await;
    wait_text(
        &c,
        "[data-testid=workspace-name]",
        None,
        "the workspace name",
        |t| t == "acme",
    )
    .await;
    find(&c, "[data-testid=connectors-table]").await;
    wait_text(
        &c,
        "[data-testid=blocked-count]",
        None,
        "a blocked count",
        |t| t == "0",
    )
    .await;
    assert_eq!(
        value_of(&c, "[data-testid=token-input]").await,
        "",
        "the token input is cleared"
    );

    // ---- add a custom connector, with a validation error first ----
    let api_pattern = upstream.pattern("api.test");
    click(&c, "[data-testid=add-connector]").await;
    type_into(&c, "[data-testid=f-name]", "api").await;
    select(&c, "[data-testid=f-kind]", "custom").await;
    type_into(&c, "[data-testid=f-patterns]", "http://api.test/*").await;
    click(&c, "[data-testid=f-placement-header]").await;
    type_into(&c, "[data-testid=f-header-name]", "Authorization").await;
    type_into(&c, "[data-testid=f-template]", "Bearer {{secret}}").await;
    type_into(&c, "[data-testid=f-secret]", SECRET).await;
    click(&c, "[data-testid=form-submit]").await;
    let form_error = wait_text(
        &c,
        "[data-testid=form-error]",
        None,
        "the API's validation error",
        |t| !t.is_empty(),
    )
    .await;
    assert!(
        form_error.contains("patterns[0]"),
        "the error names the field: {form_error:?}"
    );
    let field_error = text_now(&c, "[data-testid=f-patterns-error]")
        .await
        .unwrap_or_default();
    assert!(
        !field_error.is_empty(),
        "the error shows next to the patterns input"
    );
    assert_eq!(
        find(&c, "[data-testid=f-patterns]")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        value_of(&c, "[data-testid=f-secret]").await,
        "",
        "the secret input is cleared after submit"
    );
    assert_page_has_no_secret(&c, "the page after a failed add").await;
    screenshot(&c, "dashboard-form-error.png").await;

    type_into(&c, "[data-testid=f-patterns]", &api_pattern).await;
    type_into(&c, "[data-testid=f-secret]", SECRET).await;
    click(&c, "[data-testid=form-submit]").await;
    find(&c, &row("api", "")).await;
    assert!(
        !displayed(&c, "[data-testid=connector-dialog]").await,
        "the dialog closes"
    );
    assert_eq!(value_of(&c, "[data-testid=f-secret]").await, "");
    assert_eq!(
        text_now(&c, &row("api", "[data-testid=placement]"))
            .await
            .as_deref(),
        Some("header Authorization: Bearer {{secret}}")
    );
    let patterns_cell = text_now(&c, &row("api", "td:nth-of-type(1)"))
        .await
        .unwrap_or_default();
    assert_eq!(patterns_cell, api_pattern);
    assert_eq!(
        text_now(&c, &row("api", "[data-testid=requests-24h]"))
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        text_now(&c, &row("api", "[data-testid=errors-24h]"))
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(count(&c, &row("api", "[data-testid=alert-badge]")).await, 0);

    // ---- add a Stripe preset connector ----
    click(&c, "[data-testid=add-connector]").await;
    type_into(&c, "[data-testid=f-name]", "stripe").await;
    select(&c, "[data-testid=f-kind]", "stripe").await;
    assert!(
        !displayed(&c, "[data-testid=f-patterns]").await,
        "the preset hides the custom fields"
    );
    type_into(&c, "[data-testid=f-secret]", STRIPE_SECRET).await;
    click(&c, "[data-testid=form-submit]").await;
    find(&c, &row("stripe", "")).await;
    assert_eq!(
        text_now(&c, &row("stripe", "td:nth-of-type(1)"))
            .await
            .as_deref(),
        Some("https://api.stripe.com/*")
    );
    assert_eq!(
        text_now(&c, &row("stripe", "[data-testid=placement]"))
            .await
            .as_deref(),
        Some("header Authorization: Bearer {{secret}}")
    );
    assert_page_has_no_secret(&c, "the connectors page").await;

    // ---- traffic: two successes, then the counts change but no alert ----
    for _ in 0..2 {
        let res = api
            .run_fetch(&upstream.url("api.test", "/ok?q=1"), &["api"])
            .await;
        assert_eq!(res["ok"], json!(true), "step result: {res}");
        assert_eq!(res["output"]["status"], json!(200), "step result: {res}");
    }
    let seen = upstream.requests();
    assert!(
        seen.iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {SECRET}")[..])),
        "the connector sent the secret it was given in the UI"
    );
    wait_text(
        &c,
        &row("api", "[data-testid=requests-24h]"),
        Some("[data-testid=refresh]"),
        "2 requests",
        |t| t == "2",
    )
    .await;
    assert_eq!(
        text_now(&c, &row("api", "[data-testid=errors-24h]"))
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        count(&c, &row("api", "[data-testid=alert-badge]")).await,
        0,
        "no alert without errors"
    );

    // ---- an upstream 500 and a request blocked by policy ----
    let res = api
        .run_fetch(&upstream.url("api.test", "/fail"), &["api"])
        .await;
    assert_eq!(res["output"]["status"], json!(500), "step result: {res}");
    let res = api
        .run_fetch(&upstream.url("other.test", "/not-allowed"), &["api"])
        .await;
    assert!(
        res["output"]["failed"].is_string() || res["ok"] == json!(false),
        "blocked step: {res}"
    );
    assert!(
        upstream.requests().iter().all(|r| r.host != "other.test"),
        "a blocked request never reaches the network"
    );

    wait_text(
        &c,
        &row("api", "[data-testid=errors-24h]"),
        Some("[data-testid=refresh]"),
        "1 error",
        |t| t == "1",
    )
    .await;
    assert_eq!(
        text_now(&c, &row("api", "[data-testid=requests-24h]"))
            .await
            .as_deref(),
        Some("3")
    );
    find(&c, &row("api", "[data-testid=alert-badge]")).await;
    assert_eq!(
        count(&c, &row("stripe", "[data-testid=alert-badge]")).await,
        0,
        "the badge is per connector"
    );
    assert_eq!(
        text_now(&c, &row("stripe", "[data-testid=requests-24h]"))
            .await
            .as_deref(),
        Some("0")
    );
    wait_text(
        &c,
        "[data-testid=blocked-count]",
        Some("[data-testid=refresh]"),
        "1 blocked request",
        |t| t == "1",
    )
    .await;

    // The blocked list: the request that no connector allowed.
    click(&c, "[data-testid=blocked-toggle]").await;
    let blocked_row = find(&c, "[data-testid=blocked-row]").await;
    let blocked_text = blocked_row.text().await.unwrap();
    assert!(
        blocked_text.contains("other.test"),
        "blocked row: {blocked_text:?}"
    );
    assert!(
        blocked_text.contains("/not-allowed"),
        "blocked row: {blocked_text:?}"
    );
    assert!(
        blocked_text.contains("GET"),
        "blocked row: {blocked_text:?}"
    );
    assert_eq!(count(&c, "[data-testid=blocked-row]").await, 1);

    // Auto-refresh: more traffic shows up without a click (the page polls every ~10 s).
    api.run_fetch(&upstream.url("api.test", "/ok"), &["api"])
        .await;
    wait_text(
        &c,
        &row("api", "[data-testid=requests-24h]"),
        None,
        "4 requests by auto-refresh",
        |t| t == "4",
    )
    .await;

    let shot = screenshot(&c, "dashboard.png").await;
    eprintln!("screenshot: {}", shot.display());

    // ---- the connector's detail: error log and chart ----
    click(&c, &row("api", "[data-testid=connector-link]")).await;
    wait_text(
        &c,
        "[data-testid=detail-name]",
        None,
        "the connector's name",
        |t| t == "api",
    )
    .await;
    let status = wait_text(
        &c,
        "[data-testid=error-status]",
        Some("[data-testid=detail-refresh]"),
        "a logged error",
        |t| !t.is_empty(),
    )
    .await;
    assert_eq!(status, "500");
    assert_eq!(
        count(&c, "[data-testid=error-row]").await,
        1,
        "only the failure is in the error log"
    );
    assert_eq!(
        text_now(&c, "[data-testid=error-method]").await.as_deref(),
        Some("GET")
    );
    let host = text_now(&c, "[data-testid=error-host]")
        .await
        .unwrap_or_default();
    assert!(
        host == "api.test" || host == format!("api.test:{}", upstream.port()),
        "host: {host:?}"
    );
    assert_eq!(
        text_now(&c, "[data-testid=error-path]").await.as_deref(),
        Some("/fail")
    );
    assert_eq!(
        text_now(&c, "[data-testid=error-outcome]").await.as_deref(),
        Some("http_error")
    );
    let when = find(&c, "[data-testid=error-row] time")
        .await
        .attr("datetime")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        when.contains('T') && when.len() >= 20,
        "an RFC 3339 timestamp: {when:?}"
    );
    assert!(
        !displayed(&c, "[data-testid=log-more]").await,
        "one page only"
    );
    find(&c, "[data-testid=detail-alert]").await;
    assert!(
        displayed(&c, "[data-testid=detail-alert]").await,
        "the alert shows in the detail too"
    );
    wait_text(
        &c,
        "[data-testid=detail-requests]",
        Some("[data-testid=detail-refresh]"),
        "4 requests",
        |t| t == "4",
    )
    .await;
    assert_eq!(
        text_now(&c, "[data-testid=detail-errors]").await.as_deref(),
        Some("1")
    );

    // The chart: 24 hourly buckets that add up to the totals.
    let buckets = c
        .find_all(Locator::Css("[data-testid=chart-svg] g.bucket"))
        .await
        .unwrap();
    assert_eq!(buckets.len(), 24, "24 hourly bars");
    let (mut req_sum, mut err_sum) = (0u64, 0u64);
    for b in &buckets {
        req_sum += b
            .attr("data-requests")
            .await
            .unwrap()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap();
        err_sum += b
            .attr("data-errors")
            .await
            .unwrap()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(
        (req_sum, err_sum),
        (4, 1),
        "the chart adds up to the 24 h counts"
    );

    // Filters: no timeouts; a window in the past has nothing; clearing brings the 500 back.
    find(&c, "[data-testid=filter-outcome]")
        .await
        .select_by_value("timeout")
        .await
        .unwrap();
    click(&c, "[data-testid=filter-apply]").await;
    wait_until(
        &c,
        None,
        "an empty log for outcome=timeout",
        |c| async move {
            displayed(&c, "[data-testid=log-empty]").await
                && count(&c, "[data-testid=error-row]").await == 0
        },
    )
    .await;
    find(&c, "[data-testid=filter-outcome]")
        .await
        .select_by_value("http_error")
        .await
        .unwrap();
    click(&c, "[data-testid=filter-apply]").await;
    wait_until(&c, None, "the 500 for outcome=http_error", |c| async move {
        count(&c, "[data-testid=error-row]").await == 1
    })
    .await;
    c.execute(
        "document.getElementById('filter-until').value = '2001-01-01T00:00:00'; return true;",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "[data-testid=filter-apply]").await;
    wait_until(&c, None, "an empty log before 2001", |c| async move {
        count(&c, "[data-testid=error-row]").await == 0
            && displayed(&c, "[data-testid=log-empty]").await
    })
    .await;
    click(&c, "[data-testid=filter-reset]").await;
    wait_until(
        &c,
        None,
        "the 500 after clearing the filters",
        |c| async move { count(&c, "[data-testid=error-row]").await == 1 },
    )
    .await;
    screenshot(&c, "dashboard-detail.png").await;

    // ---- edit: add a second pattern ----
    click(&c, "[data-testid=edit-connector]").await;
    let current = value_of(&c, "[data-testid=f-patterns]").await;
    assert_eq!(current, api_pattern, "the form starts from the connector");
    let other_pattern = upstream.pattern("other.test");
    type_into(
        &c,
        "[data-testid=f-patterns]",
        &format!("{api_pattern}\n{other_pattern}"),
    )
    .await;
    // Re-pointing the secret needs the secret again: the same one here.
    type_into(&c, "[data-testid=f-secret]", SECRET).await;
    click(&c, "[data-testid=form-submit]").await;
    wait_until(&c, None, "two patterns after the edit", |c| async move {
        count(&c, "[data-testid=detail-patterns] li").await == 2
    })
    .await;
    wait_text(
        &c,
        "[data-testid=detail-status]",
        None,
        "a saved notice",
        |t| t.contains("saved"),
    )
    .await;

    // ---- rotate the secret; steps use the new one ----
    type_into(&c, "[data-testid=rotate-secret]", SECRET_ROTATED).await;
    click(&c, "[data-testid=rotate-submit]").await;
    wait_text(
        &c,
        "[data-testid=detail-status]",
        None,
        "the rotation notice",
        |t| t.contains("rotated"),
    )
    .await;
    assert_eq!(
        value_of(&c, "[data-testid=rotate-secret]").await,
        "",
        "the rotate input is cleared"
    );
    assert_page_has_no_secret(&c, "the detail page after rotating").await;
    let before = upstream.requests().len();
    let res = api
        .run_fetch(&upstream.url("other.test", "/ok"), &["api"])
        .await;
    assert_eq!(
        res["output"]["status"],
        json!(200),
        "the edited pattern allows other.test: {res}"
    );
    let after = upstream.requests();
    assert_eq!(after.len(), before + 1);
    assert_eq!(
        after.last().unwrap().header("authorization"),
        Some(&format!("Bearer {SECRET_ROTATED}")[..]),
        "the rotated secret is the one sent"
    );

    // ---- the error log pages: 55 more failures, one after the other, make two pages of 50 ----
    let code = "export default async (input) => {\n\
                  for (let i = 0; i < input.n; i++) { const r = await fetch(input.base + '/fail/' + i); await r.text(); }\n\
                  return input.n;\n\
                }";
    let res = api
        .run_step(
            code,
            json!({ "base": upstream.url("api.test", ""), "n": 55 }),
            &["api"],
        )
        .await;
    assert_eq!(res["output"], json!(55), "the paging step: {res}");
    let paths_js = "return Array.from(document.querySelectorAll('[data-testid=error-path]')).map(e => e.textContent);";
    wait_until(
        &c,
        Some("[data-testid=detail-refresh]"),
        "a first page of 50 errors with “load more”",
        |c| async move {
            count(&c, "[data-testid=error-row]").await == 50
                && displayed(&c, "[data-testid=log-more]").await
        },
    )
    .await;
    assert_eq!(
        text_now(&c, "[data-testid=detail-errors]").await.as_deref(),
        Some("56")
    );
    let first: Vec<String> =
        serde_json::from_value(c.execute(paths_js, vec![]).await.unwrap()).unwrap();
    assert_eq!(first[0], "/fail/54", "newest first");
    assert_eq!(first[49], "/fail/5");
    click(&c, "[data-testid=log-more]").await;
    wait_until(
        &c,
        None,
        "all 56 errors after “load more”",
        |c| async move { count(&c, "[data-testid=error-row]").await == 56 },
    )
    .await;
    assert!(
        !displayed(&c, "[data-testid=log-more]").await,
        "no more pages"
    );
    let all: Vec<String> =
        serde_json::from_value(c.execute(paths_js, vec![]).await.unwrap()).unwrap();
    let mut expected: Vec<String> = (0..55).rev().map(|i| format!("/fail/{i}")).collect();
    expected.push("/fail".into());
    assert_eq!(
        all, expected,
        "two pages, newest first, nothing lost or repeated"
    );

    // ---- delete: cancel once, then confirm ----
    click(&c, "[data-testid=delete-connector]").await;
    click(&c, "[data-testid=confirm-cancel]").await;
    assert!(
        displayed(&c, "#view-detail").await,
        "cancel keeps the connector"
    );
    let (st, _) = api
        .call(reqwest::Method::GET, "/v1/workspaces/acme/connectors", None)
        .await;
    assert_eq!(st, 200);
    click(&c, "[data-testid=delete-connector]").await;
    click(&c, "[data-testid=confirm-ok]").await;
    find(&c, &row("stripe", "")).await;
    wait_until(
        &c,
        None,
        "the deleted connector to leave the table",
        |c| async move { count(&c, &row("api", "")).await == 0 },
    )
    .await;
    let (st, list) = api
        .call(reqwest::Method::GET, "/v1/workspaces/acme/connectors", None)
        .await;
    assert_eq!(st, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, vec!["stripe"], "only the stripe connector is left");
    assert_page_has_no_secret(&c, "the connectors page at the end").await;

    // ---- sign out ----
    click(&c, "[data-testid=sign-out]").await;
    find(&c, "[data-testid=signin-form]").await;
    wait_until(&c, None, "the sign-in form", |c| async move {
        displayed(&c, "#view-signin").await
    })
    .await;
    let stored = c
        .execute("return sessionStorage.getItem('codestep.token');", vec![])
        .await
        .unwrap();
    assert_eq!(stored, Value::Null, "sign-out forgets the token");

    c.close().await.expect("close the browser");
}

// ---------- runs, health, error excerpts, the form's errors, phone width and dark mode ----------

/// Where the layout screenshots go: `target/screenshots/`.
fn screenshots_dir() -> PathBuf {
    let dir = artifacts_dir().parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

async fn shot(c: &Client, file: &str) -> PathBuf {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    let path = screenshots_dir().join(file);
    std::fs::write(&path, png).expect("write screenshot");
    path
}

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute` endpoint.
async fn cdp(c: &Client, webdriver: &str, cmd: &str, params: Value) {
    let session = c.session_id().await.unwrap().expect("a WebDriver session");
    let r = reqwest::Client::new()
        .post(format!("{webdriver}/session/{session}/goog/cdp/execute"))
        .header("content-type", "application/json")
        .body(json!({ "cmd": cmd, "params": params }).to_string())
        .send()
        .await
        .expect("CDP command");
    assert!(r.status().is_success(), "{cmd}: {}", r.status());
}

/// How wide the page is laid out, and how wide the viewport is.
async fn widths(c: &Client) -> (u64, u64) {
    let v = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
}

/// The page's background colour as relative luminance, 0 (black) to 1 (white).
async fn background_luminance(c: &Client) -> f64 {
    let v = c
        .execute(
            "const m = getComputedStyle(document.documentElement).backgroundColor.match(/\\d+(\\.\\d+)?/g).map(Number);\
             const lin = (x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };\
             return 0.2126 * lin(m[0]) + 0.7152 * lin(m[1]) + 0.0722 * lin(m[2]);",
            vec![],
        )
        .await
        .unwrap();
    v.as_f64().unwrap()
}

async fn goto_hash(c: &Client, base: &str, hash: &str) {
    c.goto(&format!("{base}/{hash}")).await.expect("navigate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_runs_health_excerpts_form_phone_and_dark() {
    let dir = tempfile::tempdir().unwrap();
    // /denied answers 401 and echoes the Authorization header it got, as some APIs do.
    let upstream = TestServer::start(|req| match req.path.as_str() {
        "/denied" => Reply::ok(format!(
            "{{\"error\":\"invalid credentials: {}\"}}",
            req.header("authorization").unwrap_or("")
        ))
        .with_status(401),
        "/fail" => Reply::status(500),
        _ => Reply::json(&json!({ "ok": true })),
    });
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &upstream.ca_pem).unwrap();
    let operator_token = format!("op_{:032x}", rand::random::<u128>());
    let (_serve, base) = start_codestep(dir.path(), &ca_file, &operator_token);
    let http = reqwest::Client::new();
    let operator = Api {
        http: http.clone(),
        base: base.clone(),
        token: operator_token.clone(),
        ws: String::new(),
    };
    let (st, _) = operator
        .call(
            reqwest::Method::POST,
            "/v1/workspaces",
            Some(json!({ "name": "acme" })),
        )
        .await;
    assert_eq!(st, 201);
    let (st, body) = operator
        .call(
            reqwest::Method::POST,
            "/v1/workspaces/acme/tokens",
            Some(json!({ "label": "orchestrator", "scopes": ["run", "read", "manage"] })),
        )
        .await;
    assert_eq!(st, 201);
    let token = body["token"].as_str().unwrap().to_string();
    let api = Api {
        http: http.clone(),
        base: base.clone(),
        token: token.clone(),
        ws: "acme".into(),
    };
    let (st, v) = api
        .call(
            reqwest::Method::PATCH,
            "/v1/workspaces/acme",
            Some(json!({ "keep_run_io": true })),
        )
        .await;
    assert_eq!((st, v["keep_run_io"].clone()), (200, json!(true)));
    for name in ["good", "flaky", "down", "quiet"] {
        let (st, v) = api
            .call(
                reqwest::Method::POST,
                "/v1/workspaces/acme/connectors",
                Some(json!({ "name": name, "patterns": [upstream.pattern("api.test")],
                    "placement": { "type": "header", "name": "Authorization", "template": "Bearer {{secret}}" },
                    "secret": SECRET, "scrub_echo": false })),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    // good: all fine. flaky: one error in five. down: every request refused. quiet: no traffic.
    for _ in 0..3 {
        api.run_fetch(&upstream.url("api.test", "/ok"), &["good"])
            .await;
    }
    for path in ["/ok", "/ok", "/fail", "/ok", "/ok"] {
        api.run_fetch(&upstream.url("api.test", path), &["flaky"])
            .await;
    }
    for _ in 0..3 {
        api.run_fetch(&upstream.url("api.test", "/denied"), &["down"])
            .await;
    }
    // A run that logs, fetches and then throws.
    let failed = api
        .run_step(
            "export default async (input) => { console.log('starting', input.order); \
             const r = await fetch(input.url); console.warn('status', r.status); await r.text(); \
             throw new Error('boom: the order was refused'); }",
            json!({ "url": upstream.url("api.test", "/denied"), "order": "ord_4711" }),
            &["down"],
        )
        .await;
    assert_eq!(failed["ok"], false);
    let failed_id = failed["run_id"].as_str().unwrap().to_string();
    // Enough runs for a second page (the dashboard asks for 50 at a time).
    for i in 0..40 {
        api.run_step("export default (i) => i.n * 2", json!({ "n": i }), &[])
            .await;
    }
    let total_runs = 3 + 5 + 3 + 1 + 40;

    // The favicon is served by the binary, under the page's own policy (no data: URIs needed).
    let r = http
        .get(format!("{base}/favicon.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("image/svg+xml"));
    assert!(r.text().await.unwrap().starts_with("<svg"));

    let (_driver, webdriver) = start_chromedriver(dir.path()).await;
    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let c = browser(&webdriver, &profile).await;
    c.goto(&format!("{base}/")).await.unwrap();
    let icon = c
        .execute(
            "return document.querySelector('link[rel=icon]').href",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(icon, json!(format!("{base}/favicon.svg")));
    type_into(&c, "[data-testid=token-input]", &token).await;
    click(&c, "[data-testid=signin-submit]").await;
    find(&c, &row("quiet", "")).await;

    // ---- health: four states, told apart ----
    for (name, health, text) in [
        ("good", "ok", "OK"),
        ("flaky", "some_errors", "Some errors"),
        ("down", "failing", "Failing"),
        ("quiet", "idle", "Idle"),
    ] {
        let badge = row(name, &format!("[data-health={health}]"));
        let shown = wait_text(&c, &badge, Some("[data-testid=refresh]"), health, |_| true).await;
        assert_eq!(shown, text, "{name}");
    }
    assert_eq!(
        text_now(&c, &row("flaky", "[data-testid=error-rate]"))
            .await
            .as_deref(),
        Some("(20.0 %)")
    );
    assert_ne!(
        text_now(&c, &row("down", "[data-testid=last-error]"))
            .await
            .as_deref(),
        Some("never")
    );
    assert_eq!(
        text_now(&c, &row("good", "[data-testid=last-error]"))
            .await
            .as_deref(),
        Some("never")
    );

    // ---- the error log: status text and the scrubbed excerpt; its run id leads to the run ----
    click(&c, &row("down", "[data-testid=connector-link]")).await;
    let excerpt = wait_text(
        &c,
        "[data-testid=error-row] [data-testid=error-excerpt]",
        None,
        "an excerpt",
        |t| !t.is_empty(),
    )
    .await;
    // A bool first: the messages below may print the excerpt.
    assert!(
        !excerpt.contains(SECRET),
        "the excerpt on the page holds the secret"
    );
    assert!(
        excerpt.contains("invalid credentials: [redacted]"),
        "{excerpt}"
    );
    assert_eq!(
        text_now(
            &c,
            "[data-testid=error-row] [data-testid=error-status-text]"
        )
        .await
        .as_deref(),
        Some("Unauthorized")
    );
    assert_page_has_no_secret(&c, "the error log with excerpts").await;
    click(&c, "[data-testid=error-row] [data-testid=run-link]").await;
    find(&c, "[data-testid=run-request]").await;
    let hash: String = c
        .execute("return location.hash", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .into();
    assert!(hash.starts_with("#/runs/"), "{hash}");
    wait_text(&c, "[data-testid=run-request-status]", None, "401", |t| {
        t.starts_with("401 Unauthorized")
    })
    .await;

    // ---- the runs page: filters and the older page ----
    goto_hash(&c, &base, "#/runs").await;
    wait_until(&c, None, "a first page of runs", |c| async move {
        count(&c, "[data-testid=run-row]").await == 50
    })
    .await;
    assert!(displayed(&c, "[data-testid=runs-older]").await);
    click(&c, "[data-testid=runs-older]").await;
    wait_until(&c, None, "every run after Older", |c| async move {
        count(&c, "[data-testid=run-row]").await == total_runs
    })
    .await;
    assert!(
        !displayed(&c, "[data-testid=runs-older]").await,
        "no more pages"
    );
    find(&c, "[data-testid=runs-outcome]")
        .await
        .select_by_value("error")
        .await
        .unwrap();
    wait_until(&c, None, "only the failed run", |c| async move {
        count(&c, "[data-testid=run-row]").await == 1
    })
    .await;
    let r = "[data-testid=run-row]";
    assert_eq!(
        text_now(&c, &format!("{r} [data-testid=run-row-outcome]"))
            .await
            .as_deref(),
        Some("error")
    );
    assert_eq!(
        text_now(&c, &format!("{r} [data-testid=run-row-fetches]"))
            .await
            .as_deref(),
        Some("1")
    );
    assert!(
        text_now(&c, r).await.unwrap().contains("orchestrator"),
        "who ran it"
    );

    // ---- one run: its error, console, request timeline and kept input ----
    click(&c, &format!("{r} [data-testid=run-link]")).await;
    wait_text(&c, "[data-testid=run-id]", None, "the run id", |t| {
        t == failed_id
    })
    .await;
    let error = wait_text(
        &c,
        "[data-testid=run-error]",
        None,
        "the run's error",
        |t| !t.is_empty(),
    )
    .await;
    assert!(error.contains("boom: the order was refused"), "{error}");
    assert_eq!(count(&c, "[data-testid=run-log]").await, 2);
    assert!(text_now(&c, "[data-testid=run-logs]")
        .await
        .unwrap()
        .contains("starting ord_4711"));
    assert_eq!(count(&c, "[data-testid=run-request]").await, 1);
    let bar_width: f64 = c
        .execute(
            "return document.querySelector('[data-testid=run-request-bar]').getBoundingClientRect().width;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    let track_width: f64 = c
        .execute(
            "return document.querySelector('[data-testid=run-request-bar]').parentElement.getBoundingClientRect().width;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    // The request took part of the run: its bar is drawn to scale, not across the whole track.
    assert!(
        bar_width > 0.0 && bar_width < track_width,
        "bar {bar_width} px in a track of {track_width} px"
    );
    assert!(text_now(&c, "[data-testid=run-request-excerpt]")
        .await
        .unwrap()
        .contains("[redacted]"));
    assert!(text_now(&c, "[data-testid=run-input]")
        .await
        .unwrap()
        .contains("ord_4711"));
    assert_page_has_no_secret(&c, "a run's page").await;

    // ---- the add form: every problem at once, each cleared when its field is fixed ----
    goto_hash(&c, &base, "#/").await;
    click(&c, "[data-testid=add-connector]").await;
    select(&c, "[data-testid=f-kind]", "custom").await;
    type_into(&c, "[data-testid=f-template]", "Bearer").await;
    click(&c, "[data-testid=form-submit]").await;
    let summary = wait_text(&c, "[data-testid=form-error]", None, "the problems", |t| {
        !t.is_empty()
    })
    .await;
    assert!(summary.starts_with("4 problems"), "{summary}");
    for field in ["f-name", "f-patterns", "f-template", "f-secret"] {
        assert!(
            !text_now(&c, &format!("[data-testid={field}-error]"))
                .await
                .unwrap_or_default()
                .is_empty(),
            "{field} shows its problem"
        );
    }
    type_into(&c, "[data-testid=f-name]", "newone").await;
    wait_until(&c, None, "the name's error cleared", |c| async move {
        text_now(&c, "[data-testid=f-name-error]")
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    let summary = text_now(&c, "[data-testid=form-error]").await.unwrap();
    assert!(
        summary.starts_with("3 problems") && !summary.contains("name:"),
        "{summary}"
    );
    type_into(&c, "[data-testid=f-template]", "Bearer {{secret}}").await;
    type_into(&c, "[data-testid=f-patterns]", "http://api.test/*").await;
    type_into(&c, "[data-testid=f-secret]", SECRET).await;
    assert_eq!(
        text_now(&c, "[data-testid=form-error]")
            .await
            .unwrap_or_default(),
        ""
    );
    // The client is satisfied; the server is not (https only), and says which pattern.
    click(&c, "[data-testid=form-submit]").await;
    let server = wait_text(
        &c,
        "[data-testid=f-patterns-error]",
        None,
        "the server's error",
        |t| !t.is_empty(),
    )
    .await;
    assert!(
        text_now(&c, "[data-testid=form-error]")
            .await
            .unwrap()
            .contains("patterns[0]"),
        "{server}"
    );
    assert_eq!(
        text_now(&c, "[data-testid=f-name-error]")
            .await
            .unwrap_or_default(),
        ""
    );
    type_into(
        &c,
        "[data-testid=f-patterns]",
        &upstream.pattern("api.test"),
    )
    .await;
    wait_until(&c, None, "no stale error", |c| async move {
        text_now(&c, "[data-testid=f-patterns-error]")
            .await
            .unwrap_or_default()
            .is_empty()
            && text_now(&c, "[data-testid=form-error]")
                .await
                .unwrap_or_default()
                .is_empty()
    })
    .await;
    assert_page_has_no_secret(&c, "the form after its errors").await;
    click(&c, "[data-testid=form-cancel]").await;

    // ---- light mode first, then 390 px wide: nothing cut off ----
    assert!(background_luminance(&c).await > 0.8, "light by default");
    cdp(
        &c,
        &webdriver,
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
    )
    .await;
    for (hash, file, ready) in [
        ("#/", "phone-connectors.png", "[data-testid=connector-row]"),
        ("#/runs", "phone-runs.png", "[data-testid=run-row]"),
        (
            &format!("#/runs/{failed_id}")[..],
            "phone-run.png",
            "[data-testid=run-request]",
        ),
        (
            "#/connectors/down",
            "phone-connector.png",
            "[data-testid=error-row]",
        ),
        (
            "#/tokens",
            "phone-tokens-list.png",
            "[data-testid=token-row]",
        ),
        ("#/audit", "phone-audit-list.png", "[data-testid=audit-row]"),
    ] {
        goto_hash(&c, &base, hash).await;
        find(&c, ready).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (scroll, inner) = widths(&c).await;
        let wide = c
            .execute(
                "return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 390.5)                 .slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            scroll <= 390 && inner == 390,
            "{hash} is {scroll} px wide at 390 px (viewport {inner}): cut off: {wide}"
        );
        shot(&c, &format!("dashboard-{file}")).await;
    }

    // ---- dark mode, as the system asks ----
    cdp(
        &c,
        &webdriver,
        "Emulation.setEmulatedMedia",
        json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
    )
    .await;
    goto_hash(&c, &base, "#/").await;
    find(&c, "[data-testid=connector-row]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        background_luminance(&c).await < 0.05,
        "the page is dark in dark mode"
    );
    let (scroll, _) = widths(&c).await;
    assert!(scroll <= 390);
    shot(&c, "dashboard-phone-dark.png").await;
    cdp(
        &c,
        &webdriver,
        "Emulation.clearDeviceMetricsOverride",
        json!({}),
    )
    .await;
    goto_hash(&c, &base, &format!("#/runs/{failed_id}")).await;
    find(&c, "[data-testid=run-request]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(background_luminance(&c).await < 0.05);
    let path = shot(&c, "dashboard-run-dark.png").await;
    eprintln!("screenshots: {}", path.parent().unwrap().display());
    c.close().await.ok();
}

// ---------- tokens, audit, presets, placements, test connection and scopes ----------

const DD_API: &str = "dd_api_5ecret_K3v8Qw1Lx0Zc";
const DD_APP: &str = "dd_app_5ecret_P7n2Rz6Yt4Mb";
const DD_APP_ROTATED: &str = "dd_app_rotated_5ecret_W9s1Hq5Ud3";
const TW_SECRET: &str = "tw_auth_5ecret_J6k4Ne8Vb2Qa";
const TW_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AWS_SECRET: &str = "aws_5ecret_key_T1m7Gp3Xc9Lf";

/// Nothing the browser holds (DOM, input values, storage) contains any of `secrets`; checked as bools.
async fn assert_page_lacks(c: &Client, secrets: &[&str], what: &str) {
    let html = c.source().await.expect("page source");
    let values = c
        .execute(
            "return JSON.stringify({ inputs: Array.from(document.querySelectorAll('input, textarea')).map(e => e.value), \
             session: Object.assign({}, sessionStorage), local: Object.assign({}, localStorage) });",
            vec![],
        )
        .await
        .expect("read inputs and storage");
    let hay = format!("{html}\n{values}");
    for s in secrets {
        assert_no_secret(hay.as_bytes(), s, what);
    }
}

/// The page is no wider than the 390 px viewport.
async fn assert_fits_phone(c: &Client, what: &str) {
    let (scroll, inner) = widths(c).await;
    let wide = c
        .execute(
            "return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 390.5)\
             .slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        scroll <= 390 && inner == 390,
        "{what} is {scroll} px wide at 390 px (viewport {inner}): cut off: {wide}"
    );
}

fn token_row(label: &str, inner: &str) -> String {
    format!("tr[data-testid=\"token-row\"][data-label=\"{label}\"] {inner}")
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/#/")).await.unwrap();
    if displayed(c, "[data-testid=sign-out]").await {
        click(c, "[data-testid=sign-out]").await;
    }
    type_into(c, "[data-testid=token-input]", token).await;
    click(c, "[data-testid=signin-submit]").await;
    wait_until(c, None, "the signed-in page", |c| async move {
        displayed(&c, "[data-testid=sign-out]").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_tokens_audit_presets_test_connection_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TW_SID}:{TW_SECRET}"))
    );
    // A local API that checks what Datadog and Twilio expect; /denied answers 401 and echoes the
    // credentials it got, as some APIs do.
    let upstream = TestServer::start(move |req| match req.path.as_str() {
        "/denied" => Reply::ok(format!(
            "{{\"error\":\"bad keys: {} {}\"}}",
            req.header("dd-api-key").unwrap_or(""),
            req.header("dd-application-key").unwrap_or("")
        ))
        .with_status(401),
        "/dd/ok" => {
            if req.header("dd-api-key") == Some(DD_API)
                && req
                    .header("dd-application-key")
                    .is_some_and(|k| k == DD_APP || k == DD_APP_ROTATED)
            {
                Reply::json(&json!({ "valid": true }))
            } else {
                Reply::status(403)
            }
        }
        p if p.starts_with("/twilio") => {
            if req.header("authorization") == Some(basic.as_str()) {
                Reply::json(&json!({ "sid": TW_SID }))
            } else {
                Reply::status(401)
            }
        }
        _ => Reply::json(&json!({ "ok": true })),
    });
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &upstream.ca_pem).unwrap();
    let operator_token = format!("op_{:032x}", rand::random::<u128>());
    let (_serve, base) = start_codestep(dir.path(), &ca_file, &operator_token);
    let http = reqwest::Client::new();
    let as_token = |token: &str| Api {
        http: http.clone(),
        base: base.clone(),
        token: token.to_string(),
        ws: "acme".into(),
    };
    let operator = as_token(&operator_token);
    let (st, _) = operator
        .call(
            reqwest::Method::POST,
            "/v1/workspaces",
            Some(json!({ "name": "acme" })),
        )
        .await;
    assert_eq!(st, 201);
    let mut tokens = Vec::new();
    for (label, scopes) in [
        ("admin", json!(["run", "read", "manage"])),
        ("viewer", json!(["read"])),
        ("runner", json!(["run"])),
    ] {
        let (st, body) = operator
            .call(
                reqwest::Method::POST,
                "/v1/workspaces/acme/tokens",
                Some(json!({ "label": label, "scopes": scopes })),
            )
            .await;
        assert_eq!(st, 201);
        tokens.push(body["token"].as_str().unwrap().to_string());
    }
    let (admin_token, viewer_token, runner_token) = (&tokens[0], &tokens[1], &tokens[2]);
    let admin = as_token(admin_token);
    let all_secrets = [DD_API, DD_APP, DD_APP_ROTATED, TW_SECRET, AWS_SECRET];

    let (_driver, webdriver) = start_chromedriver(dir.path()).await;
    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let c = browser(&webdriver, &profile).await;
    sign_in(&c, &base, admin_token).await;
    find(&c, "[data-testid=connectors-empty]").await;

    // ---- Datadog, a two-secret preset: its docs, help and one field per secret ----
    click(&c, "[data-testid=add-connector]").await;
    let options = c
        .execute(
            "return Array.from(document.querySelectorAll('#f-kind option')).map(o => o.value);",
            vec![],
        )
        .await
        .unwrap();
    let (st, presets) = admin.call(reqwest::Method::GET, "/v1/presets", None).await;
    assert_eq!(st, 200);
    let mut expected = vec![json!("custom")];
    expected.extend(
        presets["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].clone()),
    );
    assert_eq!(
        options,
        json!(expected),
        "every preset the API offers, and Custom"
    );
    select(&c, "[data-testid=f-kind]", "datadog").await;
    assert_eq!(
        find(&c, "[data-testid=f-preset-docs]")
            .await
            .attr("href")
            .await
            .unwrap()
            .as_deref(),
        Some("https://docs.datadoghq.com/account_management/api-app-keys/")
    );
    assert!(text_now(&c, "[data-testid=f-preset-help]")
        .await
        .unwrap()
        .contains("application key"));
    assert!(!displayed(&c, "[data-testid=f-patterns]").await);
    assert!(!displayed(&c, "[data-testid=f-secret]").await);
    assert_eq!(
        text_now(&c, "label[for=f-secret-api_key]").await.as_deref(),
        Some("API key")
    );
    assert_eq!(
        text_now(&c, "label[for=f-secret-app_key]").await.as_deref(),
        Some("Application key")
    );
    // Every problem at once: the name and both secrets.
    click(&c, "[data-testid=form-submit]").await;
    let summary = wait_text(&c, "[data-testid=form-error]", None, "problems", |t| {
        !t.is_empty()
    })
    .await;
    assert!(summary.starts_with("3 problems"), "{summary}");
    assert!(summary.contains("secrets.app_key"), "{summary}");
    type_into(&c, "[data-testid=f-secret-app_key]", DD_APP).await;
    wait_until(&c, None, "the app key's error cleared", |c| async move {
        text_now(&c, "[data-testid=f-secret-app_key-error]")
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    // The preset points at Datadog's hosts; this test's API is local: start from the preset and
    // change its patterns.
    type_into(&c, "[data-testid=f-name]", "dd").await;
    click(&c, "[data-testid=f-preset-customize]").await;
    assert!(value_of(&c, "[data-testid=f-patterns]")
        .await
        .starts_with("https://api.datadoghq.com/*\n"));
    assert_eq!(
        value_of(&c, "[data-testid=f-header-name]").await,
        "DD-API-KEY"
    );
    assert_eq!(
        value_of(&c, "[data-testid=f-template]").await,
        "{{secret.api_key}}"
    );
    assert_eq!(
        value_of(&c, "[data-testid=f-header-name-1]").await,
        "DD-APPLICATION-KEY"
    );
    assert_eq!(
        value_of(&c, "[data-testid=f-template-1]").await,
        "{{secret.app_key}}"
    );
    assert_eq!(
        text_now(&c, "label[for=f-secret-app_key]").await.as_deref(),
        Some("Application key"),
        "the preset's labels stay"
    );
    type_into(
        &c,
        "[data-testid=f-patterns]",
        &upstream.pattern("api.test"),
    )
    .await;
    type_into(&c, "[data-testid=f-secret-api_key]", DD_API).await;
    type_into(&c, "[data-testid=f-secret-app_key]", DD_APP).await;
    click(&c, "[data-testid=form-submit]").await;
    find(&c, &row("dd", "")).await;
    assert_eq!(
        text_now(&c, &row("dd", "[data-testid=placement]"))
            .await
            .as_deref(),
        Some("header DD-API-KEY: {{secret.api_key}}; DD-APPLICATION-KEY: {{secret.app_key}}")
    );
    let res = admin
        .run_fetch(&upstream.url("api.test", "/dd/ok"), &["dd"])
        .await;
    assert_eq!(
        res["output"]["status"],
        json!(200),
        "both headers sent: {res}"
    );

    // ---- Twilio, a Basic preset with a parameter ----
    click(&c, "[data-testid=add-connector]").await;
    type_into(&c, "[data-testid=f-name]", "tw").await;
    select(&c, "[data-testid=f-kind]", "twilio").await;
    assert!(text_now(&c, "label[for=f-preset-param-account_sid]")
        .await
        .unwrap()
        .contains("Account SID"));
    assert_eq!(
        text_now(&c, "label[for=f-secret]").await.as_deref(),
        Some("Auth token (or API key secret)")
    );
    click(&c, "[data-testid=form-submit]").await;
    wait_text(
        &c,
        "[data-testid=f-preset-param-account_sid-error]",
        None,
        "the SID is required",
        |t| !t.is_empty(),
    )
    .await;
    type_into(&c, "[data-testid=f-preset-param-account_sid]", TW_SID).await;
    click(&c, "[data-testid=f-preset-customize]").await;
    assert!(displayed(&c, "[data-testid=f-basic-username]").await);
    assert_eq!(value_of(&c, "[data-testid=f-basic-username]").await, TW_SID);
    assert_eq!(
        value_of(&c, "[data-testid=f-basic-password]").await,
        "{{secret}}"
    );
    type_into(
        &c,
        "[data-testid=f-patterns]",
        &upstream.pattern("api.test"),
    )
    .await;
    type_into(&c, "[data-testid=f-secret]", TW_SECRET).await;
    click(&c, "[data-testid=form-submit]").await;
    find(&c, &row("tw", "")).await;
    assert_eq!(
        text_now(&c, &row("tw", "[data-testid=placement]"))
            .await
            .as_deref(),
        Some(&format!("basic {TW_SID}:{{{{secret}}}}")[..])
    );
    let res = admin
        .run_fetch(&upstream.url("api.test", "/twilio/Accounts"), &["tw"])
        .await;
    assert_eq!(res["output"]["status"], json!(200), "Basic auth: {res}");

    // ---- AWS straight from the preset: its parameters reach the server ----
    click(&c, "[data-testid=add-connector]").await;
    type_into(&c, "[data-testid=f-name]", "aws").await;
    select(&c, "[data-testid=f-kind]", "aws").await;
    type_into(&c, "[data-testid=f-preset-param-region]", "eu-west-1").await;
    type_into(&c, "[data-testid=f-preset-param-service]", "sts").await;
    type_into(&c, "[data-testid=f-secret-access_key_id]", "AKIDEXAMPLE").await;
    type_into(&c, "[data-testid=f-secret-secret_access_key]", AWS_SECRET).await;
    click(&c, "[data-testid=form-submit]").await;
    find(&c, &row("aws", "")).await;
    assert_eq!(
        text_now(&c, &row("aws", "[data-testid=placement]"))
            .await
            .as_deref(),
        Some("aws_sigv4 eu-west-1/sts")
    );
    assert_page_lacks(&c, &all_secrets, "the list after three adds").await;

    // ---- test connection: a 401 with its scrubbed excerpt, the URL rule, then a 200 ----
    click(&c, &row("dd", "[data-testid=connector-link]")).await;
    wait_text(&c, "[data-testid=detail-name]", None, "dd", |t| t == "dd").await;
    let prefilled = value_of(&c, "[data-testid=test-url]").await;
    assert_eq!(
        prefilled,
        upstream.url("api.test", "/"),
        "pre-filled from the pattern"
    );
    type_into(
        &c,
        "[data-testid=test-url]",
        &upstream.url("api.test", "/denied"),
    )
    .await;
    click(&c, "[data-testid=test-submit]").await;
    wait_text(&c, "[data-testid=test-status]", None, "401", |t| {
        t == "401 Unauthorized"
    })
    .await;
    assert_eq!(
        text_now(&c, "[data-testid=test-badge]").await.as_deref(),
        Some("Failed")
    );
    assert!(text_now(&c, "[data-testid=test-time]")
        .await
        .unwrap()
        .ends_with("ms"));
    let excerpt = text_now(&c, "[data-testid=test-excerpt]").await.unwrap();
    let body_text = text_now(&c, "body").await.unwrap();
    // Bools first: the messages below may print the excerpt.
    let leaked = [DD_API, DD_APP]
        .iter()
        .any(|s| excerpt.contains(s) || body_text.contains(s));
    assert!(
        !leaked,
        "the page shows a secret from the upstream's answer"
    );
    assert!(excerpt.contains("bad keys: [redacted]"), "{excerpt}");
    assert_page_lacks(&c, &all_secrets, "the test result").await;
    type_into(&c, "[data-testid=test-url]", "").await;
    click(&c, "[data-testid=test-submit]").await;
    let url_error = wait_text(
        &c,
        "[data-testid=test-url-error]",
        None,
        "the server's url error",
        |t| !t.is_empty(),
    )
    .await;
    assert!(url_error.starts_with("url:"), "{url_error}");
    type_into(
        &c,
        "[data-testid=test-url]",
        &upstream.url("api.test", "/dd/ok"),
    )
    .await;
    click(&c, "[data-testid=test-submit]").await;
    wait_text(&c, "[data-testid=test-status]", None, "200", |t| {
        t == "200 OK"
    })
    .await;
    assert_eq!(
        text_now(&c, "[data-testid=test-badge]").await.as_deref(),
        Some("Connected")
    );
    assert!(!displayed(&c, "[data-testid=test-excerpt]").await);

    // ---- edit a several-header connector: both secrets again; rotation alone needs only the secrets ----
    assert!(displayed(&c, "[data-testid=rotate-secret-api_key]").await);
    assert!(displayed(&c, "[data-testid=rotate-secret-app_key]").await);
    click(&c, "[data-testid=edit-connector]").await;
    assert_eq!(
        value_of(&c, "[data-testid=f-header-name-1]").await,
        "DD-APPLICATION-KEY"
    );
    let patterns = format!(
        "{}\n{}",
        upstream.pattern("api.test"),
        upstream.pattern("other.test")
    );
    type_into(&c, "[data-testid=f-patterns]", &patterns).await;
    type_into(&c, "[data-testid=f-secret-api_key]", DD_API).await;
    click(&c, "[data-testid=form-submit]").await;
    let problem = wait_text(
        &c,
        "[data-testid=f-secret-app_key-error]",
        None,
        "the other secret is needed",
        |t| !t.is_empty(),
    )
    .await;
    assert!(problem.contains("every secret"), "{problem}");
    type_into(&c, "[data-testid=f-patterns]", &patterns).await;
    type_into(&c, "[data-testid=f-secret-api_key]", DD_API).await;
    type_into(&c, "[data-testid=f-secret-app_key]", DD_APP).await;
    click(&c, "[data-testid=form-submit]").await;
    wait_until(&c, None, "two patterns after the edit", |c| async move {
        count(&c, "[data-testid=detail-patterns] li").await == 2
    })
    .await;
    click(&c, "[data-testid=edit-connector]").await;
    type_into(&c, "[data-testid=f-secret-api_key]", DD_API).await;
    type_into(&c, "[data-testid=f-secret-app_key]", DD_APP_ROTATED).await;
    click(&c, "[data-testid=form-submit]").await;
    wait_text(&c, "[data-testid=detail-status]", None, "rotated", |t| {
        t.contains("Secrets rotated")
    })
    .await;
    let before = upstream.requests().len();
    let res = admin
        .run_fetch(&upstream.url("other.test", "/dd/ok"), &["dd"])
        .await;
    assert_eq!(res["output"]["status"], json!(200), "{res}");
    assert_eq!(
        upstream.requests()[before].header("dd-application-key"),
        Some(DD_APP_ROTATED),
        "the rotated application key is sent"
    );
    assert_page_lacks(&c, &all_secrets, "the detail after the edit").await;

    // The edit form for the other kinds: Basic shows its username, AWS its region and both keys.
    goto_hash(&c, &base, "#/connectors/tw").await;
    wait_text(&c, "[data-testid=detail-name]", None, "tw", |t| t == "tw").await;
    click(&c, "[data-testid=edit-connector]").await;
    assert!(displayed(&c, "[data-testid=f-basic-username]").await);
    assert_eq!(value_of(&c, "[data-testid=f-basic-username]").await, TW_SID);
    assert!(displayed(&c, "[data-testid=f-secret]").await);
    click(&c, "[data-testid=form-cancel]").await;
    goto_hash(&c, &base, "#/connectors/aws").await;
    wait_text(&c, "[data-testid=detail-name]", None, "aws", |t| t == "aws").await;
    find(&c, "[data-testid=rotate-secret-secret_access_key]").await;
    click(&c, "[data-testid=edit-connector]").await;
    assert_eq!(
        value_of(&c, "[data-testid=f-aws-region]").await,
        "eu-west-1"
    );
    type_into(&c, "[data-testid=f-aws-region]", "eu-central-1").await;
    type_into(&c, "[data-testid=f-secret-access_key_id]", "AKIDEXAMPLE").await;
    type_into(&c, "[data-testid=f-secret-secret_access_key]", AWS_SECRET).await;
    click(&c, "[data-testid=form-submit]").await;
    wait_text(
        &c,
        "[data-testid=detail-placement]",
        None,
        "the new region",
        |t| t == "aws_sigv4 eu-central-1/sts",
    )
    .await;
    assert_page_lacks(&c, &all_secrets, "the AWS connector after its edit").await;

    // Enough audit entries for two pages: rotations over the API.
    for _ in 0..50 {
        let (st, _) = admin
            .call(
                reqwest::Method::PATCH,
                "/v1/workspaces/acme/connectors/dd",
                Some(json!({ "secrets": { "api_key": DD_API, "app_key": DD_APP } })),
            )
            .await;
        assert_eq!(st, 200);
    }

    // ---- tokens: create a run token, see it once, use it, revoke it ----
    click(&c, "[data-testid=nav-tokens]").await;
    find(&c, &token_row("admin", "")).await;
    assert_eq!(
        text_now(&c, &token_row("viewer", "[data-testid=token-scopes]"))
            .await
            .as_deref(),
        Some("read")
    );
    assert_eq!(
        text_now(&c, &token_row("admin", "[data-testid=token-state]"))
            .await
            .as_deref(),
        Some("Active")
    );
    assert_ne!(
        text_now(&c, &token_row("admin", "[data-testid=token-last-used]"))
            .await
            .as_deref(),
        Some("never"),
        "the admin token was used"
    );
    click(&c, "[data-testid=t-submit]").await;
    wait_text(&c, "[data-testid=t-form-error]", None, "problems", |t| {
        t.starts_with("2 problems")
    })
    .await;
    type_into(&c, "[data-testid=t-label]", "ci-runner").await;
    click(&c, "[data-testid=t-scope-run]").await;
    let expiry = c
        .execute(
            "const d = new Date(Date.now() + 400 * 864e5).toISOString().slice(0, 10); \
             document.getElementById('t-expires').value = d; return d;",
            vec![],
        )
        .await
        .unwrap();
    let expiry = expiry.as_str().unwrap().to_string();
    click(&c, "[data-testid=t-submit]").await;
    find(&c, "[data-testid=new-token]").await;
    wait_until(&c, None, "the new token", |c| async move {
        displayed(&c, "[data-testid=new-token]").await
    })
    .await;
    assert!(text_now(&c, "[data-testid=new-token-warning]")
        .await
        .unwrap()
        .contains("you will not see it again"));
    let new_token = value_of(&c, "[data-testid=new-token-value]").await;
    assert!(new_token.len() > 20, "a token is shown");
    click(&c, "[data-testid=new-token-copy]").await;
    wait_text(
        &c,
        "[data-testid=new-token-copied]",
        None,
        "a copy notice",
        |t| !t.is_empty(),
    )
    .await;
    find(&c, &token_row("ci-runner", "")).await;
    assert_eq!(
        text_now(&c, &token_row("ci-runner", "[data-testid=token-scopes]"))
            .await
            .as_deref(),
        Some("run")
    );
    assert!(
        text_now(&c, &token_row("ci-runner", "[data-testid=token-expires]"))
            .await
            .unwrap()
            .starts_with(&expiry)
    );
    let ci = as_token(&new_token);
    let (st, me) = ci.call(reqwest::Method::GET, "/v1/me", None).await;
    assert_eq!((st, me["scopes"].clone()), (200, json!(["run"])));
    let res = ci.run_step("export default () => 42", json!({}), &[]).await;
    assert_eq!(res["output"], json!(42));
    let (st, _) = ci
        .call(reqwest::Method::GET, "/v1/workspaces/acme/connectors", None)
        .await;
    assert_eq!(st, 403, "a run token may not read connectors");
    click(&c, "[data-testid=new-token-done]").await;
    assert!(!displayed(&c, "[data-testid=new-token]").await);
    assert_page_lacks(&c, &[&new_token], "the tokens page after Done").await;
    click(&c, &token_row("ci-runner", "[data-testid=token-revoke]")).await;
    click(&c, "[data-testid=confirm-cancel]").await;
    assert_eq!(
        text_now(&c, &token_row("ci-runner", "[data-testid=token-state]"))
            .await
            .as_deref(),
        Some("Active"),
        "cancel keeps the token"
    );
    click(&c, &token_row("ci-runner", "[data-testid=token-revoke]")).await;
    click(&c, "[data-testid=confirm-ok]").await;
    wait_text(
        &c,
        &token_row("ci-runner", "[data-testid=token-state]"),
        None,
        "revoked",
        |t| t == "Revoked",
    )
    .await;
    let (st, _) = ci.call(reqwest::Method::GET, "/v1/me", None).await;
    assert_eq!(st, 401, "a revoked token is refused");
    assert_page_lacks(&c, &[&new_token], "the tokens page after revoking").await;

    // ---- the audit trail: newest first, who and from where, two pages ----
    click(&c, "[data-testid=nav-audit]").await;
    find(&c, "[data-testid=audit-row]").await;
    let first = "[data-testid=audit-row]:first-child";
    assert_eq!(
        text_now(&c, &format!("{first} [data-testid=audit-action]"))
            .await
            .as_deref(),
        Some("token.revoke")
    );
    assert_eq!(
        text_now(&c, &format!("{first} [data-testid=audit-who]"))
            .await
            .as_deref(),
        Some("token \"admin\"")
    );
    assert_eq!(
        text_now(&c, &format!("{first} [data-testid=audit-address]"))
            .await
            .as_deref(),
        Some("127.0.0.1")
    );
    wait_until(&c, None, "a first page of 50 with Older", |c| async move {
        count(&c, "[data-testid=audit-row]").await == 50
            && displayed(&c, "[data-testid=audit-older]").await
    })
    .await;
    let (st, all) = admin
        .call(
            reqwest::Method::GET,
            "/v1/workspaces/acme/audit?limit=500",
            None,
        )
        .await;
    assert_eq!(st, 200);
    let all_ids: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(
        all_ids.len() > 50 && all_ids.len() <= 100,
        "{}",
        all_ids.len()
    );
    click(&c, "[data-testid=audit-older]").await;
    let n = all_ids.len();
    wait_until(&c, None, "every entry after Older", |c| async move {
        count(&c, "[data-testid=audit-row]").await == n
    })
    .await;
    assert!(
        !displayed(&c, "[data-testid=audit-older]").await,
        "no more pages"
    );
    let shown: Vec<i64> = serde_json::from_value(
        c.execute(
            "return Array.from(document.querySelectorAll('[data-testid=audit-row]')).map(r => Number(r.dataset.id));",
            vec![],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(shown, all_ids, "newest first, nothing lost or repeated");
    let actions: Vec<String> = serde_json::from_value(
        c.execute(
            "return Array.from(document.querySelectorAll('[data-testid=audit-row]')).map(r => \
             r.querySelector('[data-testid=audit-action]').textContent + ' ' + \
             r.querySelector('[data-testid=audit-connector]').textContent);",
            vec![],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    for want in [
        "connector.create dd",
        "connector.create tw",
        "connector.update dd",
        "token.create —",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    assert_page_lacks(&c, &all_secrets, "the audit page").await;

    // ---- the new pages at 390 px, light then dark ----
    cdp(
        &c,
        &webdriver,
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
    )
    .await;
    for dark in [false, true] {
        let suffix = if dark { "-dark" } else { "" };
        if dark {
            cdp(
                &c,
                &webdriver,
                "Emulation.setEmulatedMedia",
                json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
            )
            .await;
        }
        goto_hash(&c, &base, "#/tokens").await;
        find(&c, &token_row("ci-runner", "")).await;
        // A new token on show, at phone width.
        type_into(&c, "[data-testid=t-label]", &format!("phone{suffix}")).await;
        click(&c, "[data-testid=t-scope-read]").await;
        click(&c, "[data-testid=t-submit]").await;
        wait_until(&c, None, "the new token", |c| async move {
            displayed(&c, "[data-testid=new-token]").await
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_fits_phone(&c, "the tokens page").await;
        shot(&c, &format!("dashboard-phone-tokens{suffix}.png")).await;
        click(&c, "[data-testid=new-token-done]").await;

        goto_hash(&c, &base, "#/audit").await;
        find(&c, "[data-testid=audit-row]").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_fits_phone(&c, "the audit page").await;
        shot(&c, &format!("dashboard-phone-audit{suffix}.png")).await;

        goto_hash(&c, &base, "#/connectors/dd").await;
        find(&c, "[data-testid=rotate-secret-app_key]").await;
        type_into(
            &c,
            "[data-testid=test-url]",
            &upstream.url("api.test", "/denied"),
        )
        .await;
        click(&c, "[data-testid=test-submit]").await;
        find(&c, "[data-testid=test-excerpt]").await;
        wait_text(&c, "[data-testid=test-status]", None, "401", |t| {
            t.starts_with("401")
        })
        .await;
        c.execute(
            "document.getElementById('test-card').scrollIntoView(); return true;",
            vec![],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_fits_phone(&c, "a connector with a test result").await;
        shot(&c, &format!("dashboard-phone-test{suffix}.png")).await;

        goto_hash(&c, &base, "#/").await;
        click(&c, "[data-testid=add-connector]").await;
        select(&c, "[data-testid=f-kind]", "datadog").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_fits_phone(&c, "the add form with a preset").await;
        shot(&c, &format!("dashboard-phone-add-preset{suffix}.png")).await;
        select(&c, "[data-testid=f-kind]", "custom").await;
        click(&c, "[data-testid=f-placement-aws_sigv4]").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_fits_phone(&c, "the add form, custom").await;
        shot(&c, &format!("dashboard-phone-add-custom{suffix}.png")).await;
        click(&c, "[data-testid=form-cancel]").await;
        if dark {
            assert!(background_luminance(&c).await < 0.05, "dark");
        }
    }
    cdp(
        &c,
        &webdriver,
        "Emulation.clearDeviceMetricsOverride",
        json!({}),
    )
    .await;
    cdp(
        &c,
        &webdriver,
        "Emulation.setEmulatedMedia",
        json!({ "features": [{ "name": "prefers-color-scheme", "value": "light" }] }),
    )
    .await;

    // ---- a read token: connectors, monitoring and audit, no edit controls ----
    sign_in(&c, &base, viewer_token).await;
    find(&c, &row("dd", "")).await;
    assert!(displayed(&c, "[data-testid=nav-connectors]").await);
    assert!(displayed(&c, "[data-testid=nav-audit]").await);
    assert!(!displayed(&c, "[data-testid=nav-tokens]").await);
    assert!(!displayed(&c, "[data-testid=nav-runs]").await);
    assert!(!displayed(&c, "[data-testid=add-connector]").await);
    click(&c, &row("dd", "[data-testid=connector-link]")).await;
    wait_text(&c, "[data-testid=detail-name]", None, "dd", |t| t == "dd").await;
    find(&c, "[data-testid=chart-svg]").await;
    for control in [
        "edit-connector",
        "delete-connector",
        "rotate-form",
        "test-form",
        "rotate-secret-api_key",
    ] {
        assert!(
            !displayed(&c, &format!("[data-testid={control}]")).await,
            "a read token sees no {control}"
        );
    }
    let visible_buttons = c
        .execute(
            "return Array.from(document.querySelectorAll('#view-detail button')).filter(b => b.offsetParent !== null).map(b => b.dataset.testid);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        visible_buttons,
        json!(["detail-refresh", "filter-apply", "filter-reset"]),
        "only monitoring controls"
    );
    // Forced: a hidden button made visible still meets the server's refusal.
    c.execute(
        "document.getElementById('delete-connector').hidden = false; return true;",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "[data-testid=delete-connector]").await;
    click(&c, "[data-testid=confirm-ok]").await;
    let refused = wait_text(&c, "[data-testid=detail-error]", None, "a refusal", |t| {
        !t.is_empty()
    })
    .await;
    assert!(refused.to_lowercase().contains("manage"), "{refused}");
    let viewer = as_token(viewer_token);
    let (st, _) = viewer
        .call(
            reqwest::Method::DELETE,
            "/v1/workspaces/acme/connectors/dd",
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = viewer
        .call(
            reqwest::Method::GET,
            "/v1/workspaces/acme/connectors/dd",
            None,
        )
        .await;
    assert_eq!(st, 200, "the connector is still there");
    // The tokens page is not offered: its address leads back to the connectors.
    goto_hash(&c, &base, "#/tokens").await;
    find(&c, &row("dd", "")).await;
    assert!(!displayed(&c, "#view-tokens").await);

    // ---- a run token: only Runs ----
    sign_in(&c, &base, runner_token).await;
    find(&c, "[data-testid=run-row]").await;
    let hash = c.execute("return location.hash", vec![]).await.unwrap();
    assert_eq!(hash, json!("#/runs"));
    for nav in ["nav-connectors", "nav-audit", "nav-tokens"] {
        assert!(
            !displayed(&c, &format!("[data-testid={nav}]")).await,
            "{nav}"
        );
    }
    assert!(displayed(&c, "[data-testid=nav-runs]").await);
    c.close().await.ok();
}
