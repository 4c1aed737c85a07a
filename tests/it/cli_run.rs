//! `codestep run` as a process: its JSON object on stdout and its exit codes (0 ok, 1 step failed,
//! 2 usage or configuration error), with connectors from a JSON file.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{Reply, TestServer};

fn codestep(args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_codestep"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn prints_one_json_object_and_exits_by_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(
        &dir,
        "ok.js",
        "export default (i) => { console.info('hi'); return i.n * 2 }",
    );
    let (code, v, _) = codestep(&["run", &ok, "--input", r#"{"n": 21}"#], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        (
            v["ok"].clone(),
            v["output"].clone(),
            v["logs"][0]["level"].clone()
        ),
        (json!(true), json!(42), json!("info"))
    );
    assert!(v["stats"]["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["requests"], json!([]));

    let input = write(&dir, "input.json", r#"{"n": 5}"#);
    let (code, v, _) = codestep(&["run", &ok, "--input", &format!("@{input}")], &[]);
    assert_eq!((code, v["output"].clone()), (0, json!(10)));

    let bad = write(
        &dir,
        "bad.js",
        "export default () => { throw new Error('nope') }",
    );
    let (code, v, _) = codestep(&["run", &bad], &[]);
    assert_eq!(
        (code, v["ok"].clone(), v["error"]["kind"].clone()),
        (1, json!(false), json!("error"))
    );

    let slow = write(&dir, "slow.js", "export default () => { for (;;) {} }");
    let (code, v, _) = codestep(&["run", &slow, "--timeout-ms", "200"], &[]);
    assert_eq!((code, v["error"]["kind"].clone()), (1, json!("timeout")));
}

#[test]
fn usage_and_configuration_errors_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(&dir, "ok.js", "export default () => 1");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "run".into(),
                dir.path().join("missing.js").to_str().unwrap().into(),
            ],
            "cannot read the step",
        ),
        (
            vec!["run".into(), ok.clone(), "--input".into(), "{nope".into()],
            "--input: not valid JSON",
        ),
        (
            vec![
                "run".into(),
                ok.clone(),
                "--allow-private".into(),
                "not-a-cidr".into(),
            ],
            "--allow-private",
        ),
        (
            vec![
                "run".into(),
                ok.clone(),
                "--resolve".into(),
                "api.test".into(),
            ],
            "--resolve",
        ),
        (
            vec![
                "run".into(),
                ok.clone(),
                "--connectors".into(),
                write(&dir, "c.json", r#"[{"name":"x","preset":"stripe"}]"#),
            ],
            "secret",
        ),
        (
            vec![
                "run".into(),
                ok.clone(),
                "--connectors".into(),
                write(
                    &dir,
                    "c2.json",
                    r#"[{"name":"x","patterns":["http://a.example/*"],"placement":{"type":"query","param":"k"},"secret":"s"}]"#,
                ),
            ],
            "https",
        ),
        (
            vec!["run".into(), ok.clone(), "--bogus-flag".into()],
            "--bogus-flag",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = codestep(&args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr:?}"
        );
    }
}

#[test]
fn connectors_file_secrets_from_env_are_injected_and_never_printed() {
    let server = TestServer::start(|req| {
        Reply::json(&json!({ "auth": req.header("authorization").is_some() }))
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = write(&dir, "ca.pem", std::str::from_utf8(&server.ca_pem).unwrap());
    let connectors = write(
        &dir,
        "connectors.json",
        &json!([{ "name": "api", "patterns": [server.pattern("api.test")],
                   "placement": { "type": "header", "name": "Authorization", "template": "Bearer {{secret}}" },
                   "secret_env": "CLI_TEST_SECRET" }])
        .to_string(),
    );
    let step = write(&dir, "s.js", "export default async ({ u }) => { const r = await fetch(u); console.log(r.url); return r.json() }");
    let secret = "cli-secret-value-0451";
    let input = json!({ "u": server.url("api.test", "/v1/me?x=1") }).to_string();
    let (code, v, stderr) = codestep(
        &[
            "run",
            &step,
            "--connectors",
            &connectors,
            "--ca-cert",
            &ca,
            "--allow-private",
            "127.0.0.1/32",
            "--resolve",
            "api.test:127.0.0.1",
            "--input",
            &input,
        ],
        &[("CLI_TEST_SECRET", secret)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["output"], json!({ "auth": true }));
    assert_eq!(v["requests"][0]["connector"], "api");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    assert!(
        !v.to_string().contains(secret) && !stderr.contains(secret),
        "the secret was printed"
    );
}

/// stdout of `codestep ARGS`, asserting exit code 0.
fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_codestep"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "codestep {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pretty_prints_the_same_result_indented() {
    let dir = tempfile::tempdir().unwrap();
    let step = write(&dir, "s.js", "export default (i) => ({ twice: [i, i] })");
    let one_line = stdout_of(&["run", &step, "--input", "7"]);
    let pretty = stdout_of(&["run", &step, "--input", "7", "--pretty"]);
    assert_eq!(one_line.trim().lines().count(), 1, "{one_line}");
    assert!(pretty.trim().lines().count() > 5, "{pretty}");
    assert!(pretty.contains("\n  \"ok\": true"), "{pretty}");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&one_line).unwrap(),
        serde_json::from_str(&pretty).unwrap(),
    );
    assert_eq!((&b["ok"], &b["output"]), (&a["ok"], &a["output"]));
    assert_eq!(b["output"], json!({ "twice": [7, 7] }));
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.lines().count() > 10 && script.contains("codestep"),
            "{shell}: {script}"
        );
        // Nested subcommands are completed too, not only the top level.
        assert!(script.contains("rotate"), "{shell}: no `key rotate`");
    }
}

#[test]
fn serve_help_lists_the_environment_it_reads() {
    let help = stdout_of(&["serve", "--help"]);
    for var in [
        "CODESTEP_DB",
        "CODESTEP_DB_POOL_SIZE",
        "CODESTEP_OPERATOR_TOKEN",
        "CODESTEP_MASTER_KEY",
        "CODESTEP_KEY_FILE",
        "XDG_DATA_HOME",
        "TZ",
    ] {
        assert!(help.contains(var), "serve --help does not mention {var}");
    }
}

/// Every subcommand, nested ones included, and every flag and positional of each has help text.
#[test]
fn every_subcommand_and_argument_has_help() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if !["help", "version"].contains(&id) && arg.get_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        // clap's own `help` subcommand documents itself.
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                missing.push(path.clone());
            }
            walk(sub, &path, missing);
        }
    }
    let mut cli = codestep::cli::Cli::command();
    // Building propagates global flags (`--db`) into every subcommand, as `--help` shows them.
    cli.build();
    let mut missing = Vec::new();
    walk(&cli, "codestep", &mut missing);
    assert!(missing.is_empty(), "no help text: {missing:?}");
}

#[test]
fn a_step_imports_the_files_beside_it_and_nothing_outside_its_directory() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.js"),
        "export default 'OUTSIDE-THE-STEP-DIR';",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    write(
        &dir,
        "lib/util.js",
        "import { base } from '../base.js'; export const add = (n) => n + base;",
    );
    write(&dir, "base.js", "export const base = 40;");
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        outside.path().join("secret.js"),
        dir.path().join("linked.js"),
    )
    .unwrap();
    let step = write(
        &dir,
        "step.js",
        "import { add } from './lib/util.js'; export default async () => { let linked; try { linked = (await import('./linked.js')).default; } catch (e) { linked = e.message; } return { sum: add(2), env: process.env.STEP_REGION, linked }; };",
    );
    let (code, v, err) = codestep(
        &["run", &step, "--env", "STEP_REGION"],
        &[("STEP_REGION", "eu-west"), ("OTHER", "not passed")],
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["output"]["sum"], json!(42));
    assert_eq!(v["output"]["env"], json!("eu-west"));
    let linked = v["output"]["linked"].as_str().unwrap();
    assert!(linked.contains("./linked.js"), "{linked}");
    assert!(!v.to_string().contains("OUTSIDE-THE-STEP-DIR"));

    // --packages must be a directory; --env must name a variable that exists.
    let (code, _, err) = codestep(&["run", &step, "--packages", "/nonexistent/dir"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--packages"), "{err}");
    let (code, _, err) = codestep(&["run", &step, "--env", "NO_SUCH_VAR_HERE"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NO_SUCH_VAR_HERE"), "{err}");
    // codestep's own variables (the master key among them) never reach a step.
    let key = "c2VjcmV0LW1hc3Rlci1rZXktbm90LWZvci1zdGVwcw==";
    for name in ["CODESTEP_MASTER_KEY", "codestep_master_key"] {
        let (code, v, err) = codestep(
            &["run", &step, "--env", name],
            &[("CODESTEP_MASTER_KEY", key), ("codestep_master_key", key)],
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("never given to steps"), "{err}");
        assert!(!v.to_string().contains(key) && !err.contains(key));
    }
}
