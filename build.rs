//! Makes the startup snapshot: deno_web, deno_webidl and our polyfill, evaluated once at build time,
//! so each step's isolate starts from a ready heap instead of parsing all that JS again.
//!
//! This runs in its own process because snapshot mode sets process-wide V8 flags.

#[path = "src/engine/clone.rs"]
#[allow(dead_code)]
mod clone;

#[path = "src/engine/ops.rs"]
#[allow(dead_code)]
mod ops;

#[path = "src/engine/node_ops.rs"]
#[allow(dead_code)]
mod node_ops;

#[path = "src/engine/warmup.rs"]
mod warmup;

#[path = "src/engine/extension.rs"]
#[allow(dead_code)]
mod extension;

use std::path::PathBuf;

fn main() {
    if std::env::var_os(SNAPSHOT_WITH_STREAMS_ENV).is_some() {
        make_snapshot(
            "CODESTEP_SNAPSHOT_STREAMS.bin",
            warmup::warm_up_with_streams,
        );
        return;
    }
    // The server binary's segments are laid out 2 MiB-aligned in the file and in memory, so that its
    // code can be mapped in 2 MiB pages (`src/engine/code_pages.rs`): every step process maps it,
    // and each of its exits unmaps it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=0x200000");
    }
    println!("cargo:rerun-if-changed=js");
    println!("cargo:rerun-if-changed=src/engine/ops.rs");
    println!("cargo:rerun-if-changed=src/engine/extension.rs");
    println!("cargo:rerun-if-changed=src/engine/node_ops.rs");
    println!("cargo:rerun-if-changed=src/engine/clone.rs");
    println!("cargo:rerun-if-changed=src/engine/warmup.rs");

    // Scripts loaded on a step's first use, not at snapshot time, so the snapshot does not hold them:
    // deno_crypto's (Web Crypto) and deno_web's streams. The runtime is given their sources
    // (`runtime::LAZY_SCRIPTS`).
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for (extension, specifier, file) in [
        (
            "deno_crypto",
            "ext:deno_crypto/00_crypto.js",
            "deno_crypto.js",
        ),
        (
            "deno_web",
            "ext:deno_web/06_streams.js",
            "deno_web_streams.js",
        ),
    ] {
        std::fs::write(out_dir.join(file), lazy_source(extension, specifier))
            .expect("writing a lazily loaded script");
    }
    std::fs::write(out_dir.join("extension_sources.rs"), extension_sources())
        .expect("writing the extensions' sources");

    // Two snapshots of the same scripts: without deno_web's streams, and with them loaded and warmed
    // (`runtime::startup_snapshot` says which process uses which). V8 makes one snapshot per process,
    // so this script runs itself again for the second.
    let with_streams =
        std::process::Command::new(std::env::current_exe().expect("the build script"))
            .env(SNAPSHOT_WITH_STREAMS_ENV, "1")
            .status()
            .expect("running the build script for the snapshot with streams");
    assert!(with_streams.success(), "the snapshot with streams failed");
    make_snapshot("CODESTEP_SNAPSHOT.bin", warmup::warm_up);
}

/// Set when this build script runs only to make the snapshot with streams.
const SNAPSHOT_WITH_STREAMS_ENV: &str = "CODESTEP_BUILD_SNAPSHOT_WITH_STREAMS";

fn make_snapshot(file: &str, warm_up: fn(&mut deno_core::JsRuntimeForSnapshot)) {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let output = deno_core::snapshot::create_snapshot(
        deno_core::snapshot::CreateSnapshotOptions {
            cargo_manifest_dir: env!("CARGO_MANIFEST_DIR"),
            startup_snapshot: None,
            skip_op_registration: false,
            extensions: extension::extensions(),
            extension_transpiler: None,
            // Compiles the polyfill's hot paths into the snapshot (see the script's header).
            with_runtime_cb: Some(Box::new(warm_up)),
        },
        None,
    )
    .expect("creating the startup snapshot failed");
    std::fs::write(out_dir.join(file), &output.output).expect("writing the snapshot");
    for path in output.files_loaded_during_snapshot {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The source of one of an extension's lazily loaded scripts.
fn lazy_source(extension: &str, specifier: &str) -> String {
    extension::extensions()
        .into_iter()
        .find(|e| e.name == extension)
        .unwrap_or_else(|| panic!("the {extension} extension"))
        .lazy_loaded_js_files
        .iter()
        .find(|f| f.specifier == specifier)
        .unwrap_or_else(|| panic!("{specifier}"))
        .load()
        .unwrap_or_else(|_| panic!("reading {specifier}"))
        .to_string()
}

/// Every script of every extension, as Rust source that embeds each one (`preload` makes snapshots at
/// run time, where deno_core 0.413 finds no script: it embeds none, and reads them from disk only here).
fn extension_sources() -> String {
    let mut out = String::from("&[\n");
    for ext in extension::extensions() {
        let files = ext
            .js_files
            .iter()
            .chain(ext.esm_files.iter())
            .chain(ext.lazy_loaded_js_files.iter())
            .chain(ext.lazy_loaded_esm_files.iter());
        for f in files {
            #[allow(
                deprecated,
                reason = "the only way to see where deno_core reads a script from"
            )]
            let path = match &f.code {
                deno_core::ExtensionFileSourceCode::LoadedFromFsDuringSnapshot(path) => *path,
                _ => panic!("{} is not read from a file", f.specifier),
            };
            out.push_str(&format!(
                "    ({:?}, deno_core::ascii_str!(include_str!({:?}))),\n",
                f.specifier, path
            ));
        }
    }
    out.push_str("]\n");
    out
}
