//! Makes the startup snapshot: deno_web, deno_webidl and our polyfill, evaluated once at build time,
//! so each step's isolate starts from a ready heap instead of parsing all that JS again.
//!
//! This runs in its own process because snapshot mode sets process-wide V8 flags.

#[path = "src/engine/ops.rs"]
#[allow(dead_code)]
mod ops;

#[path = "src/engine/node_ops.rs"]
#[allow(dead_code)]
mod node_ops;

#[path = "src/engine/extension.rs"]
#[allow(dead_code)]
mod extension;

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=js");
    println!("cargo:rerun-if-changed=src/engine/ops.rs");
    println!("cargo:rerun-if-changed=src/engine/extension.rs");
    println!("cargo:rerun-if-changed=src/engine/node_ops.rs");

    let output = deno_core::snapshot::create_snapshot(
        deno_core::snapshot::CreateSnapshotOptions {
            cargo_manifest_dir: env!("CARGO_MANIFEST_DIR"),
            startup_snapshot: None,
            skip_op_registration: false,
            extensions: extension::extensions(),
            extension_transpiler: None,
            // Compiles the polyfill's hot paths into the snapshot (see the script's header).
            with_runtime_cb: Some(Box::new(|rt| {
                rt.execute_script(
                    "ext:codestep/snapshot_warmup.js",
                    include_str!("js/snapshot_warmup.js"),
                )
                .expect("the snapshot warm-up script failed");
                // Settle its promises now, so no job of the warm-up is left queued in the snapshot.
                rt.v8_isolate().perform_microtask_checkpoint();
            })),
        },
        None,
    )
    .expect("creating the startup snapshot failed");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("CODESTEP_SNAPSHOT.bin");
    std::fs::write(&out, &output.output).expect("writing the snapshot");
    for path in output.files_loaded_during_snapshot {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
