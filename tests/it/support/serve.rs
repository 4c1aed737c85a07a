//! `codestep serve` as a real process, for the tests and benchmarks that need one: started on a store
//! with a fixed master key and operator token, and called over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Value};

pub const OP: &str = "operator-token-for-serve-tests-42";

pub struct Serve {
    pub child: Child,
    pub base: String,
    _dir: Option<tempfile::TempDir>,
}

impl Serve {
    pub fn start(db: &str, extra: &[String]) -> Serve {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let mut child = Command::new(super::codestep_binary())
            .args([
                "serve",
                "--create-store",
                "--listen",
                "127.0.0.1:0",
                "--db",
                db,
            ])
            .args(if extra.iter().any(|a| a == "--workers") {
                &[][..]
            } else {
                &["--workers", "1"][..]
            })
            .args(extra)
            .env("CODESTEP_MASTER_KEY", key)
            .env("CODESTEP_OPERATOR_TOKEN", OP)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start codestep serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Serve {
            child,
            base,
            _dir: None,
        }
    }

    /// A server on a fresh SQLite file, with the workspace `acme`.
    pub fn with_acme(extra: &[String]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = Serve::start(dir.path().join("c.db").to_str().unwrap(), extra);
        serve._dir = Some(dir);
        let (status, body) = serve.call(
            "POST",
            "/v1/workspaces",
            OP,
            Some(json!({ "name": "acme" })),
        );
        assert_eq!(status, 201, "{body}");
        serve
    }

    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.base, method, path, token, body)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (
            status,
            serde_json::from_str(&res.text().await.unwrap_or_default()).unwrap_or(Value::Null),
        )
    })
}
