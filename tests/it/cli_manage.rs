//! `codestep workspace|connector|key …` through the real binary, with `--db` pointing at a temporary
//! SQLite file and `CODESTEP_MASTER_KEY` set (unless a test is about the key file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use codestep::store;
use codestep::vault::{Keyring, Vault};

use crate::support::{Reply, TestServer};

const SECRET: &str = "sk_cli_test_5ecret_V4lue_0123456789";
const SECRET2: &str = "sk_cli_test_0ther_5ecret_9876543210";

fn key_b64(fill: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([fill; 32])
}

struct Env {
    dir: tempfile::TempDir,
    db: PathBuf,
    /// `CODESTEP_MASTER_KEY`, or `None` to use the key file.
    master_key: Option<String>,
    /// Every stdout and stderr seen, checked for secrets at the end.
    seen: std::cell::RefCell<Vec<u8>>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        Env {
            db: dir.path().join("codestep.db"),
            dir,
            master_key: Some(key_b64(1)),
            seen: Default::default(),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn key_file(&self) -> PathBuf {
        self.home().join(".local/share/codestep/master.key")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_codestep"));
        cmd.arg("--db")
            .arg(&self.db)
            .arg("--create-store")
            .args(args);
        cmd.env("HOME", self.home())
            .env_remove("XDG_DATA_HOME")
            .env_remove("CODESTEP_DB")
            .env_remove("CODESTEP_KEY_FILE")
            .env("USER", "tester");
        match &self.master_key {
            Some(k) => cmd.env("CODESTEP_MASTER_KEY", k),
            None => cmd.env_remove("CODESTEP_MASTER_KEY"),
        };
        cmd
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn codestep");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let out: Output = child.wait_with_output().unwrap();
        self.seen.borrow_mut().extend_from_slice(&out.stdout);
        self.seen.borrow_mut().extend_from_slice(&out.stderr);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Runs and asserts exit code 0.
    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "codestep {args:?} failed: {}", r.stderr);
        r
    }

    fn create_with_secret(&self, args: &[&str], secret: &str) -> Run {
        let mut all = vec!["connector", "create"];
        all.extend_from_slice(args);
        all.push("--secret-stdin");
        self.run_with_stdin(&all, Some(format!("{secret}\n").as_bytes()))
    }

    fn vault(&self) -> Vault {
        match &self.master_key {
            Some(k) => Vault::new(Keyring::parse(k, "test").unwrap()),
            None => Vault::load_file(&self.key_file(), false).unwrap().vault,
        }
    }

    async fn decrypt(&self, ws: &str, name: &str) -> String {
        let store = store::open(self.db.to_str().unwrap()).await.unwrap();
        let c = store::load_step_connectors(&*store, &self.vault(), ws, &[name.to_string()])
            .await
            .unwrap_or_else(|e| panic!("{ws}/{name}: {e}"));
        c[0].secret("secret").unwrap().expose().to_string()
    }

    fn assert_no_secret_seen(&self) {
        for s in [SECRET, SECRET2] {
            crate::support::assert_no_secret(&self.seen.borrow(), s, "codestep output");
        }
    }
}

#[tokio::test]
async fn workspace_and_connector_lifecycle() {
    let env = Env::new();
    assert!(env
        .ok(&["workspace", "create", "acme"])
        .stdout
        .contains("created workspace \"acme\""));
    env.ok(&["workspace", "create", "other"]);
    let r = env.run(&["workspace", "create", "ACME"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);

    let r = env.create_with_secret(
        &[
            "--workspace",
            "acme",
            "--name",
            "stripe",
            "--preset",
            "stripe",
        ],
        SECRET,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = env.dir.path().join("secret.txt");
    std::fs::write(&file, format!("{SECRET2}\r\n")).unwrap();
    env.ok(&[
        "connector",
        "create",
        "--workspace",
        "acme",
        "--name",
        "gh",
        "--pattern",
        "https://API.github.com/",
        "--pattern",
        "https://*.example.com/v1/*",
        "--header",
        "Authorization",
        "--template",
        "token {{secret}}",
        "--secret-file",
        file.to_str().unwrap(),
    ]);
    env.ok(&[
        "connector",
        "create",
        "--workspace",
        "acme",
        "--name",
        "maps",
        "--pattern",
        "https://maps.example.com/api/*",
        "--query-param",
        "key",
        "--scrub-echo",
        "--secret-file",
        file.to_str().unwrap(),
    ]);
    // Secrets were stored exactly (one trailing newline dropped), and normalised patterns.
    assert_eq!(env.decrypt("acme", "stripe").await, SECRET);
    assert_eq!(env.decrypt("acme", "GH").await, SECRET2);

    let list = env.ok(&["connector", "list", "--workspace", "acme"]).stdout;
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("PATTERNS")
            && lines[0].contains("PLACEMENT")
            && lines[0].contains("UPDATED"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("gh ")
            && lines[1].contains("https://api.github.com/*")
            && lines[1].contains("header Authorization: token {{secret}}"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("maps ") && lines[2].contains("query ?key="),
        "{list}"
    );
    assert!(
        lines[3].starts_with("stripe ") && lines[3].contains("https://api.stripe.com/*"),
        "{list}"
    );

    let json: serde_json::Value = serde_json::from_str(
        &env.ok(&[
            "connector",
            "list",
            "--workspace",
            "acme",
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0]["name"], "gh");
    assert_eq!(
        arr[0]["patterns"],
        serde_json::json!(["https://api.github.com/*", "https://*.example.com/v1/*"])
    );
    assert_eq!(
        arr[0]["placement"],
        serde_json::json!({"type": "header", "name": "Authorization", "template": "token {{secret}}"})
    );
    assert_eq!(arr[1]["scrub_echo"], true);
    assert_eq!(
        arr[1]["secret"],
        serde_json::json!({"set": true, "names": ["secret"], "key_version": 1})
    );

    let show = env
        .ok(&[
            "connector",
            "show",
            "--workspace",
            "acme",
            "--name",
            "STRIPE",
        ])
        .stdout;
    assert!(
        show.contains("name:        stripe") && show.contains("write-only"),
        "{show}"
    );
    let show: serde_json::Value = serde_json::from_str(
        &env.ok(&[
            "connector",
            "show",
            "--workspace",
            "acme",
            "--name",
            "maps",
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(
        show["placement"],
        serde_json::json!({"type": "query", "param": "key"})
    );
    assert_eq!(show["workspace"], "acme");

    let ws: serde_json::Value =
        serde_json::from_str(&env.ok(&["workspace", "list", "--output", "json"]).stdout).unwrap();
    assert_eq!(ws[0]["name"], "acme");
    assert_eq!(ws[0]["connectors"], 3);
    assert_eq!(ws[1]["connectors"], 0);
    assert!(env
        .ok(&["workspace", "list"])
        .stdout
        .lines()
        .next()
        .unwrap()
        .starts_with("NAME"));

    env.ok(&[
        "connector",
        "delete",
        "--workspace",
        "acme",
        "--name",
        "maps",
    ]);
    let r = env.run(&[
        "connector",
        "delete",
        "--workspace",
        "acme",
        "--name",
        "maps",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("connector \"maps\" not found in workspace \"acme\""),
        "{}",
        r.stderr
    );

    let r = env.run(&["workspace", "delete", "acme"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--force") && r.stderr.contains("2 connector(s)"),
        "{}",
        r.stderr
    );
    assert!(env
        .ok(&["workspace", "delete", "acme", "--force"])
        .stdout
        .contains("2 connector(s)"));
    env.ok(&["workspace", "delete", "other"]);
    assert_eq!(
        env.ok(&["workspace", "list", "--output", "json"])
            .stdout
            .trim(),
        "[]"
    );

    // The audit trail names the CLI user and never holds a secret.
    let s = store::open(env.db.to_str().unwrap()).await.unwrap();
    let log = s.audit_log(None, None, 100).await.unwrap();
    assert!(log.iter().all(|e| e.actor == "cli:tester"));
    assert!(log
        .iter()
        .any(|e| e.action == "connector.delete" && e.connector.as_deref() == Some("maps")));
    for e in &log {
        assert!(!format!("{e:?}").contains(SECRET) && !format!("{e:?}").contains(SECRET2));
    }
    env.assert_no_secret_seen();
}

#[tokio::test]
async fn update_changes_only_what_is_given() {
    let env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    env.create_with_secret(
        &[
            "--workspace",
            "w",
            "--name",
            "api",
            "--pattern",
            "https://api.example.com/v1/*",
            "--header",
            "X-Key",
            "--template",
            "{{secret}}",
        ],
        SECRET,
    );
    let show = |env: &Env| -> serde_json::Value {
        serde_json::from_str(
            &env.ok(&[
                "connector",
                "show",
                "--workspace",
                "w",
                "--name",
                "api",
                "--output",
                "json",
            ])
            .stdout,
        )
        .unwrap()
    };
    let before = show(&env);

    // Re-pointing the secret needs the secret (security model, "Who decides where a secret goes").
    let refused = env.run(&[
        "connector",
        "update",
        "--workspace",
        "w",
        "--name",
        "api",
        "--pattern",
        "https://attacker.example/*",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("needs its secret again"),
        "{}",
        refused.stderr
    );
    assert_eq!(show(&env)["patterns"], before["patterns"]);
    let r = env.run_with_stdin(
        &[
            "connector",
            "update",
            "--workspace",
            "w",
            "--name",
            "api",
            "--pattern",
            "https://api.example.com/v2/*",
            "--secret-stdin",
        ],
        Some(SECRET.as_bytes()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = show(&env);
    assert_eq!(
        after["patterns"],
        serde_json::json!(["https://api.example.com/v2/*"])
    );
    assert_eq!(after["placement"], before["placement"]);
    assert_eq!(env.decrypt("w", "api").await, SECRET);

    let r = env.run_with_stdin(
        &[
            "connector",
            "update",
            "--workspace",
            "w",
            "--name",
            "api",
            "--query-param",
            "k",
            "--scrub-echo",
            "true",
            "--secret-stdin",
        ],
        Some(SECRET.as_bytes()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = show(&env);
    assert_eq!(
        after["placement"],
        serde_json::json!({"type": "query", "param": "k"})
    );
    assert_eq!(after["scrub_echo"], true);
    assert_eq!(
        after["patterns"],
        serde_json::json!(["https://api.example.com/v2/*"])
    );
    assert_eq!(env.decrypt("w", "api").await, SECRET);

    let r = env.run_with_stdin(
        &[
            "connector",
            "update",
            "--workspace",
            "w",
            "--name",
            "api",
            "--secret-stdin",
        ],
        Some(SECRET2.as_bytes()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = show(&env);
    assert_eq!(
        after["placement"],
        serde_json::json!({"type": "query", "param": "k"})
    );
    assert_eq!(
        after["patterns"],
        serde_json::json!(["https://api.example.com/v2/*"])
    );
    assert_eq!(env.decrypt("w", "api").await, SECRET2);
    env.assert_no_secret_seen();
}

/// Every validation failure: exit code and a message naming the field and the rule.
#[test]
fn validation_messages_name_field_and_rule() {
    let env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    let secret_file = env.dir.path().join("s.txt");
    std::fs::write(&secret_file, SECRET).unwrap();
    let sf = secret_file.to_str().unwrap();
    let not_utf8 = env.dir.path().join("bin.txt");
    std::fs::write(&not_utf8, [0xff, 0xfe, 0x00]).unwrap();
    let nu = not_utf8.to_str().unwrap();
    let many: Vec<String> = (0..21)
        .map(|i| format!("https://h{i}.example.com"))
        .collect();
    let mut too_many: Vec<&str> = vec!["connector", "create", "--workspace", "w", "--name", "x"];
    for p in &many {
        too_many.push("--pattern");
        too_many.push(p);
    }
    too_many.extend_from_slice(&["--query-param", "k", "--secret-file", sf]);

    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        // Command-line shape (clap).
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--preset", "--pattern"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--preset",
                "stripe",
                "--pattern",
                "https://a.com",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--preset", "cannot be used with", "--pattern"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--header", "--query-param"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--header",
                "A",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--template"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--template",
                "{{secret}}",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--header"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--header",
                "A",
                "--template",
                "{{secret}}",
                "--query-param",
                "k",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--header", "cannot be used with", "--query-param"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--query-param",
                "k",
                "--secret-stdin",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--secret-stdin", "cannot be used with", "--secret-file"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--query-param",
                "k",
            ],
            2,
            vec![
                "--secret-stdin, --secret-file or --secret-named",
                "never taken as an argument",
            ],
        ),
        (
            vec![
                "connector",
                "update",
                "--workspace",
                "w",
                "--name",
                "x",
                "--scrub-echo",
                "maybe",
            ],
            2,
            vec!["--scrub-echo", "maybe"],
        ),
        (vec!["connector", "list"], 2, vec!["--workspace"]),
        // Values (our rules).
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--preset",
                "nope",
                "--secret-file",
                sf,
            ],
            2,
            vec!["--preset: unknown preset \"nope\"", "stripe"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "bad name",
                "--preset",
                "stripe",
                "--secret-file",
                sf,
            ],
            2,
            vec!["name:", "letters, digits"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "",
                "--preset",
                "stripe",
                "--secret-file",
                sf,
            ],
            2,
            vec!["name: must not be empty"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "http://a.com",
                "--query-param",
                "k",
                "--secret-file",
                sf,
            ],
            2,
            vec!["patterns[0]", "https"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--pattern",
                "https://10.0.0.1",
                "--query-param",
                "k",
                "--secret-file",
                sf,
            ],
            2,
            vec!["patterns[1]"],
        ),
        (too_many, 2, vec!["patterns:", "at most 20"]),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--header",
                "Bad Header",
                "--template",
                "{{secret}}",
                "--secret-file",
                sf,
            ],
            2,
            vec!["placement.name", "not a valid HTTP header name"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--header",
                "Host",
                "--template",
                "{{secret}}",
                "--secret-file",
                sf,
            ],
            2,
            vec!["placement.name", "transport header"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--header",
                "A",
                "--template",
                "Bearer",
                "--secret-file",
                sf,
            ],
            2,
            vec!["placement.template", "must contain {{secret}}"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--query-param",
                "",
                "--secret-file",
                sf,
            ],
            2,
            vec!["placement.param", "must not be empty"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--query-param",
                "k",
                "--secret-file",
                "/nonexistent/s",
            ],
            2,
            vec!["--secret-file /nonexistent/s", "cannot read"],
        ),
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--query-param",
                "k",
                "--secret-file",
                nu,
            ],
            2,
            vec!["--secret-file", "UTF-8"],
        ),
        (
            vec!["connector", "update", "--workspace", "w", "--name", "x"],
            2,
            vec!["nothing to change"],
        ),
        (
            vec!["workspace", "create", "bad name"],
            2,
            vec!["workspace:", "1 to 64 characters"],
        ),
        (vec!["workspace", "create", "-x"], 2, vec![]),
        (
            vec![
                "connector",
                "test",
                "--workspace",
                "w",
                "--name",
                "x",
                "not a url",
            ],
            2,
            vec!["URL \"not a url\"", "not a valid URL"],
        ),
        (
            vec![
                "connector",
                "test",
                "--workspace",
                "w",
                "--name",
                "x",
                "https://a.com",
                "--allow-private",
                "nope",
            ],
            2,
            vec!["--allow-private"],
        ),
        // Not found (exit 1).
        (
            vec![
                "connector",
                "create",
                "--workspace",
                "nows",
                "--name",
                "x",
                "--pattern",
                "https://a.com",
                "--query-param",
                "k",
                "--secret-file",
                sf,
            ],
            1,
            vec!["workspace \"nows\" not found"],
        ),
        (
            vec!["connector", "show", "--workspace", "w", "--name", "nope"],
            1,
            vec!["connector \"nope\" not found in workspace \"w\""],
        ),
        (
            vec![
                "connector",
                "update",
                "--workspace",
                "w",
                "--name",
                "nope",
                "--scrub-echo",
                "true",
            ],
            1,
            vec!["connector \"nope\" not found"],
        ),
        (
            vec!["connector", "list", "--workspace", "nope"],
            1,
            vec!["workspace \"nope\" not found"],
        ),
        (
            vec!["workspace", "delete", "nope"],
            1,
            vec!["workspace \"nope\" not found"],
        ),
    ];
    for (args, code, expected) in &cases {
        let r = env.run(args);
        assert_eq!(
            r.code, *code,
            "codestep {args:?}: exit {} (stderr: {})",
            r.code, r.stderr
        );
        for e in expected {
            assert!(
                r.stderr.contains(e),
                "codestep {args:?}: stderr should contain {e:?}:\n{}",
                r.stderr
            );
        }
    }
    // Empty and multi-line secrets from stdin.
    for (input, expected) in [
        ("", "secret: must not be empty"),
        ("\n", "secret: must not be empty"),
        ("a\nb\n", "secret: must not contain CR, LF or NUL"),
    ] {
        let r = env.run_with_stdin(
            &[
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                "x",
                "--preset",
                "stripe",
                "--secret-stdin",
            ],
            Some(input.as_bytes()),
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains(expected), "{}", r.stderr);
    }
    // Nothing was created by any of these.
    assert!(
        env.ok(&["connector", "list", "--workspace", "w", "--output", "json"])
            .stdout
            .trim()
            == "[]"
    );
    env.assert_no_secret_seen();
}

#[test]
fn duplicate_names_conflict_ignoring_case() {
    let env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    assert_eq!(
        env.create_with_secret(
            &["--workspace", "w", "--name", "Stripe", "--preset", "stripe"],
            SECRET
        )
        .code,
        0
    );
    let r = env.create_with_secret(
        &["--workspace", "w", "--name", "stripe", "--preset", "stripe"],
        SECRET2,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("a connector named \"stripe\" already exists in workspace \"w\""),
        "{}",
        r.stderr
    );
    env.assert_no_secret_seen();
}

#[test]
fn master_key_configuration_errors() {
    let mut env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    for (key, expected) in [
        ("not-base64!!", "not valid base64"),
        (
            &*base64::engine::general_purpose::STANDARD.encode([1u8; 16]),
            "exactly 32 bytes",
        ),
        (
            &*format!("{},2:{}", key_b64(1), key_b64(2)),
            "VERSION:BASE64",
        ),
    ] {
        env.master_key = Some(key.to_string());
        let r = env.create_with_secret(
            &["--workspace", "w", "--name", "x", "--preset", "stripe"],
            SECRET,
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("CODESTEP_MASTER_KEY") && r.stderr.contains(expected),
            "{}",
            r.stderr
        );
    }
    env.assert_no_secret_seen();
}

#[tokio::test]
async fn key_file_is_created_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new();
    env.master_key = None;
    env.ok(&["workspace", "create", "w"]);
    assert!(
        !env.key_file().exists(),
        "creating a workspace needs no key"
    );
    let r = env.create_with_secret(
        &["--workspace", "w", "--name", "a", "--preset", "stripe"],
        SECRET,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let path = env.key_file();
    assert!(
        r.stderr.contains(&format!(
            "created a new master key file at {}",
            path.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let r = env.create_with_secret(
        &["--workspace", "w", "--name", "b", "--preset", "github"],
        SECRET2,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stderr.contains("created a new master key"),
        "{}",
        r.stderr
    );
    assert_eq!(env.decrypt("w", "a").await, SECRET);
    assert_eq!(env.decrypt("w", "b").await, SECRET2);

    // CODESTEP_KEY_FILE names another file; a missing one is not created for reading.
    let mut cmd = env.command(&["key", "rotate"]);
    cmd.env("CODESTEP_KEY_FILE", env.dir.path().join("missing.key"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    env.assert_no_secret_seen();
}

#[tokio::test]
async fn key_rotate_with_key_file_and_with_env() {
    let mut env = Env::new();
    env.master_key = None;
    env.ok(&["workspace", "create", "w"]);
    env.create_with_secret(
        &["--workspace", "w", "--name", "a", "--preset", "stripe"],
        SECRET,
    );
    env.create_with_secret(
        &["--workspace", "w", "--name", "b", "--preset", "github"],
        SECRET2,
    );
    let r = env.ok(&["key", "rotate"]);
    assert!(
        r.stdout.contains("added master key version 2")
            && r.stdout
                .contains("re-encrypted 2 secret(s) with master key version 2"),
        "{}",
        r.stdout
    );
    assert_eq!(env.vault().versions(), vec![1, 2]);
    assert_eq!(env.decrypt("w", "a").await, SECRET);
    let show: serde_json::Value = serde_json::from_str(
        &env.ok(&[
            "connector",
            "show",
            "--workspace",
            "w",
            "--name",
            "b",
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(show["secret"]["key_version"], 2);

    // With CODESTEP_MASTER_KEY: the operator adds a version, rotates, and may then drop the old one.
    let mut env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    env.create_with_secret(
        &["--workspace", "w", "--name", "a", "--preset", "stripe"],
        SECRET,
    );
    let r = env.ok(&["key", "rotate"]);
    assert!(r.stderr.contains("holds one key version"), "{}", r.stderr);
    env.master_key = Some(format!("2:{},1:{}", key_b64(2), key_b64(1)));
    let r = env.ok(&["key", "rotate"]);
    assert!(
        r.stdout
            .contains("re-encrypted 1 secret(s) with master key version 2"),
        "{}",
        r.stdout
    );
    env.master_key = Some(format!("2:{}", key_b64(2)));
    assert_eq!(env.decrypt("w", "a").await, SECRET);
    env.assert_no_secret_seen();
}

#[test]
fn connector_test_reports_status_and_timing_never_the_secret() {
    let server = TestServer::start(|req| {
        if req.path == "/denied" {
            Reply::status(401)
        } else {
            Reply::ok(b"hello".to_vec())
        }
    });
    let env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    let pattern = server.pattern("api.test");
    env.create_with_secret(
        &[
            "--workspace",
            "w",
            "--name",
            "api",
            "--pattern",
            &pattern,
            "--header",
            "Authorization",
            "--template",
            "Bearer {{secret}}",
        ],
        SECRET,
    );
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let ca = ca.to_str().unwrap().to_string();
    let net = [
        "--allow-private",
        "127.0.0.1/32",
        "--ca-cert",
        &ca,
        "--resolve",
        "api.test:127.0.0.1",
    ];
    let test = |url: &str, extra: &[&str]| {
        let mut args = vec![
            "connector",
            "test",
            "--workspace",
            "w",
            "--name",
            "api",
            url,
        ];
        args.extend_from_slice(&net);
        args.extend_from_slice(extra);
        env.run(&args)
    };

    let r = test(&server.url("api.test", "/v1/ping"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("-> 200")
            && r.stdout.contains(" ms")
            && r.stdout.contains("connector \"api\""),
        "{}",
        r.stdout
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert!(
        seen[0].header("authorization") == Some(&*format!("Bearer {SECRET}")),
        "the secret was not injected"
    );

    let r = test(&server.url("api.test", "/v1/ping"), &["--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["status"], 200);
    assert!(json["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["ok"], true);
    assert!(json["excerpt"].is_null(), "only error answers are quoted");

    let r = test(&server.url("api.test", "/denied"), &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("-> 401") && r.stderr.contains("401"),
        "{} {}",
        r.stdout,
        r.stderr
    );

    let r = test(&server.url("other.test", "/"), &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("does not match any pattern of connector \"api\""),
        "{}",
        r.stderr
    );
    assert_eq!(
        server.requests().len(),
        3,
        "a URL outside the patterns is never sent"
    );
    env.assert_no_secret_seen();
}

#[tokio::test]
async fn wrong_master_key_and_newer_schema_fail_clearly() {
    let mut env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    env.create_with_secret(
        &[
            "--workspace",
            "w",
            "--name",
            "a",
            "--pattern",
            "https://api.test/*",
            "--query-param",
            "k",
        ],
        SECRET,
    );
    env.master_key = Some(key_b64(9));
    let r = env.run(&[
        "connector",
        "test",
        "--workspace",
        "w",
        "--name",
        "a",
        "https://api.test/",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("not the key this store's secrets were encrypted with"),
        "{}",
        r.stderr
    );
    let r = env.create_with_secret(
        &["--workspace", "w", "--name", "b", "--preset", "stripe"],
        SECRET2,
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("refusing to encrypt"), "{}", r.stderr);
    let r = env.run(&["key", "rotate"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("refusing to rotate"), "{}", r.stderr);

    let c = rusqlite::Connection::open(&env.db).unwrap();
    c.execute(
        "INSERT INTO codestep_schema (version, name, applied_at) VALUES (4242, 'future', 0)",
        [],
    )
    .unwrap();
    drop(c);
    let r = env.run(&["workspace", "list"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("schema version 4242") && r.stderr.contains("newer codestep"),
        "{}",
        r.stderr
    );
    env.assert_no_secret_seen();
}

/// Two processes at a time creating connectors in one SQLite file, over the same names: every name
/// ends up created exactly once, and each loser got a clear conflict.
#[tokio::test]
async fn two_processes_creating_at_once_never_lose_or_duplicate() {
    let env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    let names: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
    let spawn = |name: &str| {
        let mut cmd = env.command(&[
            "connector",
            "create",
            "--workspace",
            "w",
            "--name",
            name,
            "--preset",
            "stripe",
            "--secret-stdin",
        ]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(SECRET.as_bytes())
            .unwrap();
        child
    };
    let mut created = 0;
    for name in &names {
        // Both processes race for the same name (the second spelled differently).
        let a = spawn(name);
        let b = spawn(&name.to_uppercase());
        for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            match out.status.code() {
                Some(0) => created += 1,
                Some(1) => assert!(stderr.contains("already exists"), "{stderr}"),
                other => panic!("unexpected exit {other:?}: {stderr}"),
            }
            env.seen.borrow_mut().extend_from_slice(&out.stdout);
            env.seen.borrow_mut().extend_from_slice(&out.stderr);
        }
    }
    assert_eq!(created, names.len());
    let list: serde_json::Value = serde_json::from_str(
        &env.ok(&["connector", "list", "--workspace", "w", "--output", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(list.as_array().unwrap().len(), names.len());
    for n in &names {
        assert_eq!(env.decrypt("w", n).await, SECRET);
    }
    env.assert_no_secret_seen();
}

fn sqlite_integrity_ok(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    let r: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(r, "ok");
}

fn kill9(child: &mut std::process::Child) {
    // SAFETY: sending SIGKILL to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
}

/// Processes creating connectors are killed with SIGKILL at random moments; the store reopens
/// consistent, and every connector a process reported as created is there and decrypts.
#[tokio::test]
async fn sigkill_during_writes_loses_no_committed_connector() {
    let env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    let mut reported = Vec::new();
    let mut rand = [0u8; 64];
    getrandom::fill(&mut rand).unwrap();
    for (i, r) in rand.iter().enumerate().take(40) {
        let name = format!("k{i}");
        let mut child = env
            .command(&[
                "connector",
                "create",
                "--workspace",
                "w",
                "--name",
                &name,
                "--preset",
                "stripe",
                "--secret-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(SECRET.as_bytes())
            .unwrap();
        // Somewhere between process start and well after the write.
        std::thread::sleep(Duration::from_micros(u64::from(*r) * 200));
        kill9(&mut child);
        let out = child.wait_with_output().unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("created connector") {
            reported.push(name);
        }
        env.seen.borrow_mut().extend_from_slice(&out.stdout);
    }
    sqlite_integrity_ok(&env.db);
    let s = store::open(env.db.to_str().unwrap()).await.unwrap();
    let present: Vec<String> = s
        .list_connectors("w")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    for name in &reported {
        assert!(
            present.contains(name),
            "connector {name} was reported created but is missing"
        );
    }
    // Whatever is present is whole: it decrypts.
    for name in &present {
        assert_eq!(env.decrypt("w", name).await, SECRET);
    }
    // The store still takes writes.
    assert_eq!(
        env.create_with_secret(
            &["--workspace", "w", "--name", "after", "--preset", "stripe"],
            SECRET
        )
        .code,
        0
    );
    eprintln!(
        "sigkill test: {} of 40 processes reported a connector, {} present",
        reported.len(),
        present.len()
    );
    env.assert_no_secret_seen();
}

/// `key rotate` killed with SIGKILL at random moments: every secret still decrypts with the key file
/// as it is left, and a later rotation completes.
#[tokio::test]
async fn sigkill_during_rotation_keeps_every_secret_readable() {
    let mut env = Env::new();
    env.master_key = None;
    env.ok(&["workspace", "create", "w"]);
    env.create_with_secret(
        &["--workspace", "w", "--name", "first", "--preset", "stripe"],
        SECRET,
    );
    // Many secrets, so the rotation transaction takes a while: seeded through the library.
    {
        let s = store::open(env.db.to_str().unwrap()).await.unwrap();
        let vault = env.vault();
        for i in 0..300 {
            let spec = codestep::connector::ConnectorSpec {
                name: format!("s{i}"),
                patterns: vec!["https://api.example.com/*".into()],
                placement: codestep::connector::Placement::query("k".into()),
                scrub_echo: false,
            };
            store::create_connector(
                &*s,
                &vault,
                "w",
                &spec,
                &codestep::connector::Secret::new(SECRET2.into()),
                &store::Actor::named("test"),
            )
            .await
            .unwrap();
        }
    }
    let mut rand = [0u8; 8];
    getrandom::fill(&mut rand).unwrap();
    for r in rand {
        let mut child = env
            .command(&["key", "rotate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(2_000 + u64::from(r) * 300));
        kill9(&mut child);
        let _ = child.wait();
        sqlite_integrity_ok(&env.db);
        let vault = env.vault();
        let s = store::open(env.db.to_str().unwrap()).await.unwrap();
        let all = s.list_connectors("w").await.unwrap();
        assert_eq!(all.len(), 301);
        let versions: std::collections::BTreeSet<u32> =
            all.iter().map(|c| c.sealed.key_version).collect();
        assert_eq!(
            versions.len(),
            1,
            "a rotation is one transaction: one version for all"
        );
        eprintln!(
            "rotation kill after {} us: secrets at key version {versions:?}, key file has {:?}",
            2_000 + u64::from(r) * 300,
            vault.versions()
        );
        for c in &all {
            let secret = store::decrypt_secret(&*s, &vault, c)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let expected = if c.name == "first" { SECRET } else { SECRET2 };
            assert!(
                secret.expose() == expected,
                "{} decrypted to another value",
                c.name
            );
        }
    }
    let r = env.ok(&["key", "rotate"]);
    assert!(
        r.stdout.contains("re-encrypted 301 secret(s)"),
        "{}",
        r.stdout
    );
    assert_eq!(env.decrypt("w", "first").await, SECRET);
}

/// `--output json` on every management command that prints: stdout is one JSON document with the
/// documented shape (`connector test` is covered with its upstream above).
#[test]
fn every_printing_command_speaks_json() {
    let env = Env::new();
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let r = env.ok(&all);
        serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("codestep {all:?}: not JSON ({e}): {}", r.stdout))
    };

    let ws = json(&["workspace", "create", "acme"]);
    assert_eq!(
        (&ws["name"], &ws["connectors"]),
        (&"acme".into(), &0.into())
    );
    assert!(ws["created_at"].is_string());

    let mut args = vec![
        "connector",
        "create",
        "--workspace",
        "acme",
        "--name",
        "stripe",
    ];
    args.extend(["--preset", "stripe", "--secret-stdin", "--output", "json"]);
    let r = env.run_with_stdin(&args, Some(SECRET.as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(created["name"], "stripe");
    assert_eq!(created["secret"]["set"], true);

    let one = ["--workspace", "acme", "--name", "stripe"];
    let shown = json(&[&["connector", "show"], &one[..]].concat());
    assert_eq!(shown, created);
    let listed = json(&["connector", "list", "--workspace", "acme"]);
    assert_eq!(listed, serde_json::json!([created]));

    let updated = json(
        &[
            &["connector", "update"],
            &one[..],
            &["--scrub-echo", "true"],
        ]
        .concat(),
    );
    assert_eq!(
        (&updated["name"], &updated["scrub_echo"]),
        (&"stripe".into(), &true.into())
    );

    let rotated = json(&["key", "rotate"]);
    assert_eq!(rotated["reencrypted"], 1);
    assert!(rotated["version"].is_u64() && rotated["added_version"].is_boolean());
    assert_eq!(rotated["key_source"], "CODESTEP_MASTER_KEY");

    let deleted = json(&[&["connector", "delete"], &one[..]].concat());
    assert_eq!(
        deleted,
        serde_json::json!({"workspace": "acme", "connector": "stripe", "deleted": true})
    );
    let deleted = json(&["workspace", "delete", "acme"]);
    assert_eq!(
        deleted,
        serde_json::json!({"workspace": "acme", "deleted": true, "connectors_deleted": 0})
    );
    assert_eq!(json(&["workspace", "list"]), serde_json::json!([]));

    // Text stays the default, and `table`, its earlier name, still selects it.
    let text = env.ok(&["workspace", "list"]).stdout;
    assert_eq!(
        env.ok(&["workspace", "list", "--output", "table"]).stdout,
        text
    );
    assert!(text.starts_with("NAME"), "{text}");
    env.assert_no_secret_seen();
}

#[tokio::test]
async fn tokens_with_scopes_and_the_audit_trail_from_the_cli() {
    let env = Env::new();
    env.ok(&["workspace", "create", "acme"]);
    let made = env.ok(&[
        "token",
        "create",
        "--workspace",
        "acme",
        "--label",
        "orchestrator",
        "--scope",
        "run",
        "--expires-in",
        "30d",
        "--output",
        "json",
    ]);
    let made: serde_json::Value = serde_json::from_str(&made.stdout).unwrap();
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("cst_"));
    assert_eq!(made["scopes"], serde_json::json!(["run"]));
    assert!(made["expires_at"].is_string());
    // The store holds it, with its scopes, and authenticates it by hash.
    let s = store::open(env.db.to_str().unwrap()).await.unwrap();
    let found = s
        .authenticate_api_token(&store::hash_api_token(&token))
        .await
        .unwrap()
        .expect("the new token authenticates");
    assert_eq!(found.scopes.to_string(), "run");

    // Listing never prints a token.
    let list = env.ok(&["token", "list", "--workspace", "acme"]);
    assert!(list.stdout.contains("orchestrator") && list.stdout.contains("active"));
    assert!(!list.stdout.contains(&token), "token list printed a token");
    let id = made["id"].as_str().unwrap();
    env.ok(&["token", "revoke", "--workspace", "acme", id]);
    assert!(s
        .authenticate_api_token(&store::hash_api_token(&token))
        .await
        .unwrap()
        .is_none());
    let list = env.ok(&["token", "list", "--workspace", "acme", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list[0]["state"], "revoked");
    assert!(!list.to_string().contains(&token));

    // Usage errors: no scope, an unknown scope, a bad duration.
    for args in [
        &["token", "create", "--workspace", "acme", "--label", "x"][..],
        &[
            "token",
            "create",
            "--workspace",
            "acme",
            "--label",
            "x",
            "--scope",
            "admin",
        ],
        &[
            "token",
            "create",
            "--workspace",
            "acme",
            "--label",
            "x",
            "--scope",
            "run",
            "--expires-in",
            "soon",
        ],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }

    // The audit trail: newest first, who did it, never a secret.
    env.create_with_secret(
        &[
            "--workspace",
            "acme",
            "--name",
            "stripe",
            "--preset",
            "stripe",
        ],
        SECRET,
    );
    let audit = env.ok(&["audit", "--workspace", "acme", "--output", "json"]);
    let audit: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "connector.create",
            "token.revoke",
            "token.create",
            "workspace.create"
        ]
    );
    assert_eq!(audit[0]["who"], "cli:tester");
    assert_eq!(audit[0]["connector"], "stripe");
    assert!(audit[0]["address"].is_null());
    let older = env.ok(&[
        "audit",
        "--workspace",
        "acme",
        "--limit",
        "2",
        "--before",
        &audit[1]["id"].to_string(),
        "--output",
        "json",
    ]);
    let older: serde_json::Value = serde_json::from_str(&older.stdout).unwrap();
    assert_eq!(older[0]["action"], "token.create");
    assert_eq!(older.as_array().unwrap().len(), 2);
    let text = env.ok(&["audit", "--workspace", "acme"]).stdout;
    assert!(
        text.starts_with("ID") && text.contains("connector.create"),
        "{text}"
    );
    env.assert_no_secret_seen();
}

/// A command with `--db` and no `--create-store`, as a user with a typo would run it.
fn bare(env: &Env, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_codestep"))
        .args(args)
        .env("HOME", env.home())
        .env_remove("XDG_DATA_HOME")
        .env_remove("CODESTEP_DB")
        .env_remove("CODESTEP_KEY_FILE")
        .env_remove("CODESTEP_MASTER_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn only_an_explicit_create_makes_a_store_and_a_failing_command_makes_no_key() {
    let mut env = Env::new();
    env.master_key = None;
    let typo = env.dir.path().join("codestpe.db");
    let typo = typo.to_str().unwrap();
    // A path that is not a store: refused, and nothing is made.
    for args in [
        &["--db", typo, "workspace", "list"][..],
        &["--db", typo, "connector", "list", "--workspace", "acme"],
        &["--db", typo, "token", "list", "--workspace", "acme"],
    ] {
        let r = bare(&env, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("there is no store at"), "{}", r.stderr);
        assert!(r.stderr.contains("--create-store"), "{}", r.stderr);
        assert!(!Path::new(typo).exists(), "{args:?} made a store");
    }
    // A directory that does not exist is an error even with --create-store.
    let deep = env.dir.path().join("no/such/dir/c.db");
    let r = bare(
        &env,
        &[
            "--db",
            deep.to_str().unwrap(),
            "--create-store",
            "workspace",
            "list",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!env.dir.path().join("no").exists());
    // `serve` too refuses a store that is not there.
    let r = bare(
        &env,
        &[
            "--db",
            typo,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--in-process",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("there is no store at"), "{}", r.stderr);
    assert!(!Path::new(typo).exists());
    assert!(!env.key_file().exists(), "serve made a key for no store");
    // Nor does a start that cannot listen.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let fresh = env.dir.path().join("fresh.db");
    let r = bare(
        &env,
        &[
            "--db",
            fresh.to_str().unwrap(),
            "--create-store",
            "serve",
            "--listen",
            &addr,
            "--in-process",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot listen"), "{}", r.stderr);
    assert!(!env.key_file().exists(), "a serve that failed made a key");

    // With --create-store the store is made; a connector whose secret breaks a rule fails after
    // the key would have been needed, and leaves no key file behind.
    let db = env.db.to_str().unwrap().to_string();
    let r = bare(
        &env,
        &["--db", &db, "--create-store", "workspace", "create", "acme"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !env.key_file().exists(),
        "no key is needed to make a workspace"
    );
    let bad = env.create_with_secret(
        &[
            "--workspace",
            "acme",
            "--name",
            "stripe",
            "--preset",
            "stripe",
        ],
        "bad\u{1}secret",
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        !env.key_file().exists(),
        "a failing command left a key file: {}",
        bad.stderr
    );
    let good = env.create_with_secret(
        &[
            "--workspace",
            "acme",
            "--name",
            "stripe",
            "--preset",
            "stripe",
        ],
        SECRET,
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(env.key_file().exists());
    assert!(good.stderr.contains("created a new master key file"));
    env.assert_no_secret_seen();
}

#[tokio::test]
async fn presets_and_named_secrets_from_files_and_stdin() {
    let env = Env::new();
    let r = env.ok(&["connector", "presets", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for id in [
        "stripe",
        "datadog",
        "aws",
        "telegram",
        "twilio",
        "slack-webhook",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let text = env.ok(&["connector", "presets"]).stdout;
    assert!(
        text.starts_with("ID") && text.contains("api_key,app_key"),
        "{text}"
    );

    env.ok(&["workspace", "create", "w"]);
    let key = env.dir.path().join("api.key");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    let at_key = format!("api_key=@{}", key.display());
    let base = [
        "connector",
        "create",
        "--workspace",
        "w",
        "--name",
        "dd",
        "--preset",
        "datadog",
    ];
    // A value on the command line is refused: secrets come from files or stdin only.
    let r = env.run(&[&base[..], &["--secret-named", "api_key=inline-value"]].concat());
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("NAME=@FILE") && !r.stderr.contains("inline-value"),
        "{}",
        r.stderr
    );
    // A missing one is named.
    let r = env.run(&[&base[..], &["--secret-named", &at_key]].concat());
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("secrets.app_key"), "{}", r.stderr);
    let r = env.run_with_stdin(
        &[
            &base[..],
            &["--secret-named", &at_key, "--secret-named", "app_key=-"],
        ]
        .concat(),
        Some(format!("{SECRET2}\n").as_bytes()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = store::open(env.db.to_str().unwrap()).await.unwrap();
    let c = store::load_step_connectors(&*store, &env.vault(), "w", &["dd".to_string()])
        .await
        .unwrap();
    assert!(c[0].secrets.get("api_key").unwrap().expose() == SECRET);
    assert!(c[0].secrets.get("app_key").unwrap().expose() == SECRET2);

    // Preset parameters, and any placement as JSON.
    let r = env.run_with_stdin(
        &[
            "connector",
            "create",
            "--workspace",
            "w",
            "--name",
            "aws",
            "--preset",
            "aws",
            "--param",
            "region=eu-west-1",
            "--param",
            "service=sqs",
            "--secret-named",
            &at_key.replace("api_key", "access_key_id"),
            "--secret-named",
            "secret_access_key=-",
            "--output",
            "json",
        ],
        Some(SECRET2.as_bytes()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["placement"]["service"], "sqs");
    assert_eq!(
        v["secret"]["names"],
        serde_json::json!(["access_key_id", "secret_access_key"])
    );
    let r = env.create_with_secret(
        &[
            "--workspace",
            "w",
            "--name",
            "tg",
            "--pattern",
            "https://api.telegram.org/*",
            "--placement-json",
            r#"{"type":"path","template":"/bot{{secret}}{{path}}","methods":["GET","POST"]}"#,
        ],
        "123:tok",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown = env
        .ok(&["connector", "show", "--workspace", "w", "--name", "tg"])
        .stdout;
    assert!(
        shown.contains("path /bot{{secret}}{{path}}; methods GET,POST"),
        "{shown}"
    );
    env.assert_no_secret_seen();
}

/// `workspace set --keep-run-io on|off` turns keeping run input and output on and off, says so in
/// text and JSON, is in the audit trail's reach (the store's), and refuses what is not a boolean.
#[test]
fn workspace_set_turns_keeping_run_io_on_and_off() {
    let env = Env::new();
    env.ok(&["workspace", "create", "w"]);
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["workspace", "list", "--output", "json"]).stdout).unwrap();
    assert_eq!(listed[0]["keep_run_io"], false, "off by default");
    let on: serde_json::Value = serde_json::from_str(
        &env.ok(&[
            "workspace",
            "set",
            "w",
            "--keep-run-io",
            "on",
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(
        (on["name"].clone(), on["keep_run_io"].clone()),
        ("w".into(), true.into())
    );
    let r = env.ok(&["workspace", "set", "W", "--keep-run-io", "off"]);
    assert!(r.stdout.contains("not kept"), "{}", r.stdout);
    let r = env.run(&["workspace", "set", "w", "--keep-run-io", "maybe"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = env.run(&["workspace", "set", "nowhere", "--keep-run-io", "on"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("nowhere"), "{}", r.stderr);
}
