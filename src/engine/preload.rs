//! Preloaded packages (`serve --preload stripe`): the package code is evaluated once, into a startup
//! snapshot of its own, and every isolate of every worker starts from that snapshot, with the packages
//! already compiled, linked and evaluated. A step importing them skips all three.
//!
//! Each step still gets a fresh isolate, deserialised from the snapshot like any other: nothing a step
//! does is ever written back. The snapshot is made by a worker process started only for that (the
//! supervisor's `make_package_snapshot`): it confines itself like every worker, evaluates the operator's
//! packages (no step, input or connector ever reaches it), sends the snapshot and exits. It is a
//! separate process because V8 shares one read-only heap between the isolates of a process, and a
//! snapshot made beside other isolates does not deserialise beside them. What a package's top level
//! computes (a timestamp, a random id) is computed once, when the snapshot is made.

use std::rc::Rc;

use deno_core::{JsRuntimeForSnapshot, ModuleSpecifier, PollEventLoopOptions, RuntimeOptions};

use super::modules::loader::{Loaded, StepLoader};
use super::modules::ModuleSet;
use super::node_ops::StepModules;

/// The name of the module that imports the preloaded packages. Under `node_modules/`, where a step's
/// own module can never be (`resolve::step_module_name`), so no step module can take its place.
pub const MAIN_NAME: &str = "node_modules/.codestep-preload.js";

/// The preloading module's source: one import per package.
pub fn main_code(packages: &[String]) -> String {
    packages
        .iter()
        .map(|p| format!("import {};\n", serde_json::Value::String(p.clone())))
        .collect()
}

/// Every extension script, embedded by `build.rs`: deno_core reads them from disk when it makes a
/// snapshot, and a worker can open no file (nor would a deployed binary find them).
static EXTENSION_SOURCES: &[(&str, deno_core::FastStaticString)] =
    include!(concat!(env!("OUT_DIR"), "/extension_sources.rs"));

/// `ext` with its scripts read from `EXTENSION_SOURCES` instead of from disk.
fn with_embedded_scripts(mut ext: deno_core::Extension) -> Result<deno_core::Extension, String> {
    fn embedded(
        files: &[deno_core::ExtensionFileSource],
    ) -> Result<Vec<deno_core::ExtensionFileSource>, String> {
        files
            .iter()
            .map(|f| {
                EXTENSION_SOURCES
                    .iter()
                    .find(|(specifier, _)| *specifier == f.specifier)
                    .map(|(specifier, code)| {
                        deno_core::ExtensionFileSource::loaded_from_memory_during_snapshot(
                            specifier, *code,
                        )
                    })
                    .ok_or_else(|| format!("{} is not embedded", f.specifier))
            })
            .collect()
    }
    ext.js_files = embedded(&ext.js_files)?.into();
    ext.esm_files = embedded(&ext.esm_files)?.into();
    ext.lazy_loaded_js_files = embedded(&ext.lazy_loaded_js_files)?.into();
    ext.lazy_loaded_esm_files = embedded(&ext.lazy_loaded_esm_files)?.into();
    Ok(ext)
}

/// Makes a startup snapshot like the built-in one, with `set` (whose main module is `MAIN_NAME`,
/// `main_code` its source) evaluated on top. Only in a process that runs no step (see the module's
/// header).
pub fn make(set: ModuleSet, main_code: String) -> Result<Made, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the preloading runtime: {e}"))?;
    let _enter = rt.enter();
    let main = ModuleSpecifier::parse(&set.main).map_err(|e| format!("the preload module: {e}"))?;
    let loaded = Rc::new(Loaded::new(set, Vec::new())?);
    let loader = Rc::new(StepLoader::without_code_cache());
    loader.set(loaded.clone());
    let mut js = JsRuntimeForSnapshot::try_new(RuntimeOptions {
        // From the extensions' scripts, as `build.rs` makes the built-in snapshot. (Laying a snapshot
        // over the built-in one, as deno_core's warm-up pass does, gives one that V8 cannot read back
        // in a worker: its external strings no longer line up.)
        extensions: super::extension::extensions()
            .into_iter()
            .map(with_embedded_scripts)
            .collect::<Result<_, _>>()?,
        module_loader: Some(loader),
        ..Default::default()
    })
    .map_err(|e| format!("could not make the preload isolate: {e}"))?;
    js.op_state()
        .borrow_mut()
        .put::<Rc<dyn StepModules>>(loaded.clone());
    let evaluated = rt.block_on(async {
        let id = js
            .load_side_es_module_from_code(&main, main_code)
            .await
            .map_err(|e| format!("could not load the preloaded packages: {e}"))?;
        let evaluation = js.mod_evaluate(id);
        js.with_event_loop_promise(Box::pin(evaluation), PollEventLoopOptions::default())
            .await
            .map_err(|e| format!("the preloaded packages failed while loading: {e}"))
    });
    if let Err(e) = evaluated {
        // A runtime for a snapshot must end in one: the process exits on this error, so it is let go.
        std::mem::forget(js);
        return Err(e);
    }
    // What the snapshot must not hold: the module loader's and require()'s view of this set.
    js.op_state().borrow_mut().take::<Rc<dyn StepModules>>();
    // The polyfill's hot paths compiled in, with the streams, as in the built-in snapshot a server with
    // packages uses (`runtime::use_snapshot_with_streams`).
    super::warmup::warm_up_with_streams(&mut js);
    Ok(Made {
        modules: loaded.served(),
        blob: js.snapshot().into_vec(),
    })
}

/// A package snapshot, and the package files evaluated into it: a step's job need not carry those
/// (its isolate has them already).
pub struct Made {
    pub blob: Vec<u8>,
    pub modules: Vec<String>,
}
