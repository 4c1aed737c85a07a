//! Modules: a step of several modules, packages from a package directory (ES modules, CommonJS,
//! `exports` conditions, `imports`, the `browser` field), Node built-ins, and every way out of the
//! package directory a hostile step might try. Steps run in sandboxed worker processes, which cannot
//! open files: whatever a step imports, the supervisor read for it, or nobody did.

use std::path::Path;
use std::sync::Arc;

use codestep::engine::modules::resolve::PackageDir;
use codestep::engine::{Executor, ExecutorConfig, StepRequest, StepResult};
use serde_json::{json, Value};

use crate::support::process_mode;

/// What lies outside the package directory; no step may ever see it.
const OUTSIDE: &str = "TOP-SECRET-OUTSIDE-THE-PACKAGE-DIR";

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A package directory (`<tmp>/pkgs/node_modules`) with a file beside it that nothing may read, and
/// links that point out of it.
fn package_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "secret.js",
        &format!("export default '{OUTSIDE}'; module.exports = '{OUTSIDE}';"),
    );
    write(
        root,
        "outside/index.js",
        &format!("module.exports = '{OUTSIDE}';"),
    );
    write(root, "outside/package.json", r#"{"name":"outside"}"#);
    let nm = root.join("pkgs/node_modules");
    let w = |rel: &str, text: &str| write(&nm, rel, text);
    // An ES module package with conditional exports, subpaths and imports.
    w(
        "esm-pkg/package.json",
        r##"{"name":"esm-pkg","type":"module",
            "exports":{".":{"node":"./node.js","worker":"./worker.js","default":"./node.js"},
                       "./sub/*":"./lib/*.js","./escape":"../../../secret.js"},
            "imports":{"#internal":"./internal.js"}}"##,
    );
    w("esm-pkg/node.js", "export default 'node build';");
    w(
        "esm-pkg/worker.js",
        "import i from '#internal'; export default 'worker build ' + i;",
    );
    w("esm-pkg/internal.js", "export default 'with imports';");
    w(
        "esm-pkg/lib/thing.js",
        "export const thing = 'subpath pattern';",
    );
    // A CommonJS package: module.exports, named exports, JSON, require of a built-in.
    w(
        "cjs-pkg/package.json",
        r#"{"name":"cjs-pkg","main":"lib/index"}"#,
    );
    w(
        "cjs-pkg/lib/index.js",
        r#""use strict";
        const { EventEmitter } = require("events");
        const data = require("./data.json");
        const helper = require("./helper");
        function Client(name) { this.name = name; }
        Client.prototype.hello = function () { return helper.greet(this.name) + " v" + data.version; };
        module.exports = Client;
        module.exports.Client = Client;
        module.exports.isEmitter = new EventEmitter() instanceof EventEmitter;
        module.exports.filename = __filename;"#,
    );
    w(
        "cjs-pkg/lib/helper.js",
        "exports.greet = (n) => `hello ${n}`;",
    );
    w("cjs-pkg/lib/data.json", r#"{"version": "1.2.3"}"#);
    // A TypeScript-compiled package: named exports through defineProperty and __exportStar.
    w(
        "ts-pkg/index.js",
        r#""use strict";
        var __exportStar = function (m, e) { for (var p in m) if (p !== "default" && !e.hasOwnProperty(p)) e[p] = m[p]; };
        Object.defineProperty(exports, "__esModule", { value: true });
        exports.WebClient = void 0;
        class WebClient { constructor(t) { this.t = t; } }
        exports.WebClient = WebClient;
        __exportStar(require("./types"), exports);"#,
    );
    w("ts-pkg/types.js", "exports.LogLevel = { DEBUG: 'debug' };");
    // A package whose browser field swaps a Node-only file and ignores a module.
    w(
        "browser-pkg/package.json",
        r#"{"name":"browser-pkg","main":"index.js","browser":{"./node-only.js":"./portable.js","fs":false}}"#,
    );
    w(
        "browser-pkg/index.js",
        "const impl = require('./node-only.js'); const fs = require('fs'); module.exports = impl + (Object.keys(fs).length === 0 ? ' (fs ignored)' : '');",
    );
    w(
        "browser-pkg/node-only.js",
        "module.exports = require('fs').readFileSync('/etc/passwd');",
    );
    w("browser-pkg/portable.js", "module.exports = 'portable';");
    // A package that only mentions a refused built-in.
    w(
        "mentions-fs/index.js",
        "const fs = require('fs'); exports.read = () => fs.readFileSync('/etc/passwd', 'utf8'); exports.ok = 1;",
    );
    // Hostile packages: entry points and requires that lead out of the directory.
    w(
        "bad-main/package.json",
        r#"{"name":"bad-main","main":"../../../secret.js"}"#,
    );
    w(
        "bad-exports/package.json",
        r#"{"name":"bad-exports","exports":"../../../secret.js"}"#,
    );
    w(
        "bad-require/index.js",
        "exports.tries = ['../../../secret.js', '../../../outside', '/etc/passwd', 'ext:core/mod.js', 'codestep:cjs', 'node:_empty/../../x'].map((s) => { try { return String(require(s)); } catch (e) { return 'refused: ' + e.message; } });",
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.join("outside"), nm.join("linked-out")).unwrap();
        std::fs::create_dir_all(nm.join("link-file")).unwrap();
        std::os::unix::fs::symlink(root.join("secret.js"), nm.join("link-file/index.js")).unwrap();
    }
    tmp
}

fn executor(tree: &tempfile::TempDir) -> Executor {
    let dir = PackageDir::open(&tree.path().join("pkgs")).expect("package dir");
    Executor::new(ExecutorConfig {
        workers: 1,
        mode: process_mode(),
        packages: Some(Arc::new(dir)),
        ..Default::default()
    })
    .expect("executor")
}

fn run_on(exec: &Executor, code: &str) -> StepResult {
    exec.run_blocking(StepRequest::new(code, Value::Null))
}

fn message(r: &StepResult) -> String {
    r.error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

fn assert_nothing_outside(r: &StepResult) {
    let all = serde_json::to_string(r).unwrap();
    assert!(
        !all.contains(OUTSIDE),
        "read outside the package dir: {all}"
    );
}

#[test]
fn a_step_of_several_modules_imports_them_by_relative_path() {
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: process_mode(),
        ..Default::default()
    })
    .unwrap();
    let mut req = StepRequest::new(
        "import { twice } from './lib/math.js'; import greet from './greet'; export default (i) => greet(twice(i.n));",
        json!({ "n": 21 }),
    );
    req.main_name = Some("main.js".into());
    req.modules = vec![
        (
            "./lib/math.js".into(),
            "import { one } from '../one.js'; export const twice = (n) => n * 2 * one;".into(),
        ),
        ("one.js".into(), "export const one = 1;".into()),
        (
            "greet.js".into(),
            "export default (n) => `got ${n}`;".into(),
        ),
    ];
    let r = exec.run_blocking(req);
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.output_value(), Some(json!("got 42")));

    // A missing module is named, with the modules the step has.
    let mut req = StepRequest::new(
        "import x from './nope.js'; export default () => x;",
        Value::Null,
    );
    req.modules = vec![("./lib.js".into(), "export default 1".into())];
    let r = exec.run_blocking(req);
    let m = message(&r);
    assert!(m.contains("./nope.js") && m.contains("lib.js"), "{m}");
}

#[test]
fn network_and_file_imports_are_refused_naming_the_module() {
    let tree = package_tree();
    let exec = executor(&tree);
    for (spec, why) in [
        ("https://example.com/x.js", "network"),
        ("http://example.com/x.js", "network"),
        ("file:///etc/passwd", "files by path"),
        (
            "data:text/javascript,export default 1",
            "only relative paths",
        ),
    ] {
        let r = run_on(
            &exec,
            &format!("import x from {spec:?}; export default () => x;"),
        );
        let m = message(&r);
        assert!(!r.ok && m.contains(spec) && m.contains(why), "{spec}: {m}");
        // Dynamic import is refused the same way.
        let r = run_on(
            &exec,
            &format!("export default async () => (await import({spec:?})).default;"),
        );
        assert!(message(&r).contains(spec), "{spec}: {}", message(&r));
    }
}

#[test]
fn missing_packages_and_refused_builtins_say_which_and_why() {
    let tree = package_tree();
    let exec = executor(&tree);
    let r = run_on(&exec, "import x from 'left-pad'; export default () => x;");
    let m = message(&r);
    assert!(m.contains("\"left-pad\" is not installed"), "{m}");
    for (name, why) in [
        ("fs", "files"),
        ("node:fs", "files"),
        ("net", "fetch()"),
        ("http", "fetch()"),
        ("https", "fetch()"),
        ("child_process", "processes"),
        ("worker_threads", "threads"),
        ("dgram", "fetch()"),
        ("tls", "fetch()"),
        ("cluster", "processes"),
    ] {
        let r = run_on(
            &exec,
            &format!("import x from {name:?}; export default () => 1;"),
        );
        let m = message(&r);
        let bare = name.trim_start_matches("node:");
        assert!(
            m.contains(&format!("\"node:{bare}\"")) && m.contains(why),
            "{name}: {m}"
        );
    }
    // Without a package directory, a package import says so.
    let plain = Executor::new(ExecutorConfig {
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let r = run_on(&plain, "import S from 'stripe'; export default () => 1;");
    assert!(
        message(&r).contains("no package directory"),
        "{}",
        message(&r)
    );
}

#[test]
fn packages_resolve_by_exports_conditions_imports_and_commonjs_interop() {
    let tree = package_tree();
    let exec = executor(&tree);
    let r = run_on(
        &exec,
        r#"
        import esm from "esm-pkg";
        import { thing } from "esm-pkg/sub/thing";
        import Client, { Client as Named, isEmitter } from "cjs-pkg";
        import * as ts from "ts-pkg";
        import { WebClient, LogLevel } from "ts-pkg";
        import portable from "browser-pkg";
        import { ok } from "mentions-fs";
        export default () => ({
          esm, thing,
          hello: new Client("ann").hello(), same: Client === Named, isEmitter,
          filename: Client.filename,
          web: new WebClient("t").t, level: LogLevel.DEBUG, tsDefault: typeof ts.default,
          portable, ok,
        });
        "#,
    );
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(
        r.output_value(),
        Some(json!({
            "esm": "worker build with imports", "thing": "subpath pattern",
            "hello": "hello ann v1.2.3", "same": true, "isEmitter": true,
            "filename": "/node_modules/cjs-pkg/lib/index.js",
            "web": "t", "level": "debug", "tsDefault": "object",
            "portable": "portable (fs ignored)", "ok": 1,
        }))
    );
    // A package that only mentions fs loads; calling into fs says why it cannot work.
    let r = run_on(
        &exec,
        "import { read } from 'mentions-fs'; export default () => read();",
    );
    let m = message(&r);
    assert!(
        m.contains("\"node:fs\"") && m.contains("readFileSync"),
        "{m}"
    );
}

#[test]
fn crafted_specifiers_never_read_outside_the_package_directory() {
    let tree = package_tree();
    let exec = executor(&tree);
    let specifiers = [
        "../../etc/passwd",
        "../secret.js",
        "./../../secret.js",
        "%2e%2e/%2e%2e/secret.js",
        "/etc/passwd",
        "node_modules/../../secret.js",
        "esm-pkg/../../../secret.js",
        "esm-pkg/%2e%2e/%2e%2e/%2e%2e/secret.js",
        "esm-pkg/escape",
        "@scope/../../secret.js",
        "..",
        "bad-main",
        "bad-exports",
        "linked-out",
        "link-file",
        "outside",
        "ext:codestep/90_main.js",
        "ext:core/mod.js",
        "codestep:cjs",
    ];
    for spec in specifiers {
        for code in [
            format!("import x from {spec:?}; export default () => String(x);"),
            format!("export default async () => String((await import({spec:?})).default);"),
        ] {
            let r = run_on(&exec, &code);
            assert!(!r.ok, "{spec} loaded: {:?}", r.output);
            assert_nothing_outside(&r);
        }
    }
    // From inside a package, require() reaches no further, and no internals.
    let r = run_on(
        &exec,
        "import { tries } from 'bad-require'; export default () => tries;",
    );
    assert!(r.ok, "{:?}", r.error);
    assert_nothing_outside(&r);
    let tries = r.output_value().unwrap();
    for t in tries.as_array().unwrap() {
        assert!(t.as_str().unwrap().starts_with("refused: "), "{t}");
    }
}

#[test]
fn steps_reach_no_internals_through_modules() {
    let tree = package_tree();
    let exec = executor(&tree);
    let r = run_on(
        &exec,
        r#"
        import * as buffer from "node:buffer";
        import process from "node:process";
        export default () => ({
          deno: typeof Deno, bootstrap: typeof __bootstrap, require: typeof require,
          module: typeof module, bufferKeys: Object.keys(buffer).filter((k) => k.startsWith("_")),
          binding: (() => { try { process.binding("fs"); return "reached"; } catch (e) { return "refused"; } })(),
          env: process.env,
        });
        "#,
    );
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(
        r.output_value(),
        Some(json!({
            "deno": "undefined", "bootstrap": "undefined", "require": "undefined", "module": "undefined",
            "bufferKeys": [], "binding": "refused", "env": {},
        }))
    );
}

#[test]
fn process_env_has_only_what_the_operator_passes() {
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: process_mode(),
        env: vec![("REGION".into(), "eu-west".into())],
        ..Default::default()
    })
    .unwrap();
    let r = run_on(
        &exec,
        "export default () => ({ env: { ...process.env }, platform: process.platform, argv: process.argv, cwd: process.cwd() })",
    );
    assert_eq!(
        r.output_value(),
        Some(
            json!({ "env": { "REGION": "eu-west" }, "platform": "linux", "argv": [], "cwd": "/" })
        )
    );
}
