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

#[path = "src/engine/extension.rs"]
#[allow(dead_code)]
mod extension;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

/// Answers the warm-up's fetches (`js/snapshot_warmup.js`) with a small JSON response, so that the
/// polyfill's whole fetch path, not just its front half, is compiled into the snapshot. It exists
/// only in this build script: no step ever sees it, and nothing of it is in the snapshot.
#[derive(Default)]
struct WarmupHost {
    bodies: RefCell<HashMap<u32, Vec<u8>>>,
}

impl ops::StepHost for WarmupHost {
    fn fetch(
        &self,
        args: ops::FetchArgs,
        _body: Option<Vec<u8>>,
    ) -> ops::LocalFuture<Result<ops::FetchHead, String>> {
        let body = br#"{"data":[{"id":1,"name":"a"}],"has_more":false}"#.to_vec();
        self.bodies.borrow_mut().insert(args.request_id, body);
        Box::pin(std::future::ready(Ok(ops::FetchHead {
            status: 200,
            status_text: "OK".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            url: args.url,
            redirected: false,
        })))
    }
    fn body_ready(&self, _request_id: u32) -> ops::LocalFuture<bool> {
        Box::pin(std::future::ready(false))
    }
    fn body_write(&self, _request_id: u32, _chunk: Vec<u8>) -> Result<(), String> {
        Err("no streamed bodies in the warm-up".into())
    }
    fn body_end(&self, _request_id: u32) {}
    fn next_chunk(&self, request_id: u32) -> ops::LocalFuture<Result<u32, String>> {
        let size = self.bodies.borrow().get(&request_id).map_or(0, Vec::len);
        Box::pin(std::future::ready(Ok(size as u32)))
    }
    fn take_chunk(&self, request_id: u32, buf: &mut [u8]) -> Result<(), String> {
        let body = self.bodies.borrow_mut().remove(&request_id);
        match body {
            Some(b) if b.len() == buf.len() => {
                buf.copy_from_slice(&b);
                Ok(())
            }
            _ => Err("no such chunk".into()),
        }
    }
    fn abort(&self, request_id: u32) {
        self.bodies.borrow_mut().remove(&request_id);
    }
    fn log(&self, _level: u32, _message: String) {}
    fn random_bytes(&self, buf: &mut [u8]) {
        buf.fill(7);
    }
}

fn main() {
    println!("cargo:rerun-if-changed=js");
    println!("cargo:rerun-if-changed=src/engine/ops.rs");
    println!("cargo:rerun-if-changed=src/engine/extension.rs");
    println!("cargo:rerun-if-changed=src/engine/node_ops.rs");

    // deno_crypto's script is loaded on a step's first use of Web Crypto, not at snapshot time, so the
    // snapshot does not hold it: the runtime is given its source (`runtime::LAZY_SCRIPTS`).
    let web_crypto = extension::extensions()
        .into_iter()
        .find(|e| e.name == "deno_crypto")
        .expect("the deno_crypto extension")
        .lazy_loaded_js_files
        .iter()
        .find(|f| f.specifier == "ext:deno_crypto/00_crypto.js")
        .expect("deno_crypto's script")
        .load()
        .expect("reading deno_crypto's script")
        .to_string();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("extension_sources.rs"), extension_sources())
        .expect("writing the extensions' sources");
    std::fs::write(out_dir.join("deno_crypto.js"), web_crypto)
        .expect("writing deno_crypto's script");

    let output = deno_core::snapshot::create_snapshot(
        deno_core::snapshot::CreateSnapshotOptions {
            cargo_manifest_dir: env!("CARGO_MANIFEST_DIR"),
            startup_snapshot: None,
            skip_op_registration: false,
            extensions: extension::extensions(),
            extension_transpiler: None,
            // Compiles the polyfill's hot paths into the snapshot (see the script's header).
            with_runtime_cb: Some(Box::new(|rt| {
                // A stand-in host for the warm-up's fetches; it is taken out again before the snapshot.
                rt.op_state()
                    .borrow_mut()
                    .put::<Rc<dyn ops::StepHost>>(Rc::new(WarmupHost::default()));
                let done = rt
                    .execute_script(
                        "ext:codestep/snapshot_warmup.js",
                        include_str!("js/snapshot_warmup.js"),
                    )
                    .expect("the snapshot warm-up script failed");
                // Runs the warm-up's fetches to their end, so no op or job of it is left pending.
                let done = rt.resolve(done);
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for the warm-up")
                    .block_on(rt.with_event_loop_promise(
                        Box::pin(done),
                        deno_core::PollEventLoopOptions::default(),
                    ))
                    .expect("the snapshot warm-up's fetch failed");
                rt.op_state().borrow_mut().take::<Rc<dyn ops::StepHost>>();
                // Settle its promises now, so no job of the warm-up is left queued in the snapshot.
                rt.v8_isolate().perform_microtask_checkpoint();
            })),
        },
        None,
    )
    .expect("creating the startup snapshot failed");

    let out = out_dir.join("CODESTEP_SNAPSHOT.bin");
    std::fs::write(&out, &output.output).expect("writing the snapshot");
    for path in output.files_loaded_during_snapshot {
        println!("cargo:rerun-if-changed={}", path.display());
    }
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
