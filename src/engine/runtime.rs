//! Isolate creation: one fresh `JsRuntime` per step, from the startup snapshot made by `build.rs`, with
//! its heap and ArrayBuffer memory capped, and with every handle to internal ops removed before user code.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use std::rc::Rc;

use deno_core::{v8, JsRuntime, RuntimeOptions};

use super::modules::loader::StepLoader;

/// The scripts the snapshot does not hold, compiled on first use: the Node modules (`js/node/`),
/// deno_crypto's Web Crypto and deno_web's streams (both written out by `build.rs`). Sorted by
/// specifier, as deno_core looks them up by binary search.
macro_rules! lazy_scripts {
    ($($name:literal),* $(,)?) => {
        &[$((
            concat!("ext:codestep/node/", $name),
            include_str!(concat!("../../js/node/", $name)),
        )),*,
        (
            "ext:deno_crypto/00_crypto.js",
            include_str!(concat!(env!("OUT_DIR"), "/deno_crypto.js")),
        ),
        (
            "ext:deno_web/06_streams.js",
            include_str!(concat!(env!("OUT_DIR"), "/deno_web_streams.js")),
        )]
    };
}

static LAZY_SCRIPTS: &[(&str, &str)] = lazy_scripts![
    "_cjs.js",
    "_empty.js",
    "assert.js",
    "assert_strict.js",
    "async_hooks.js",
    "buffer.js",
    "crypto.js",
    "events.js",
    "os.js",
    "path.js",
    "process.js",
    "querystring.js",
    "stream.js",
    "stream_promises.js",
    "stream_web.js",
    "string_decoder.js",
    "timers.js",
    "timers_promises.js",
    "url.js",
    "util.js",
    "util_types.js",
    "zlib.js",
];

/// The source of a script in `LAZY_SCRIPTS`.
pub(crate) fn lazy_script_source(specifier: &str) -> Option<&'static str> {
    LAZY_SCRIPTS
        .binary_search_by(|(s, _)| (*s).cmp(specifier))
        .ok()
        .map(|i| LAZY_SCRIPTS[i].1)
}

/// The built-in snapshot: the polyfill and the web APIs it needs, without deno_web's streams (a step
/// loads them on first use, which costs about 2 ms; deserialising them costs every step about 0.3 ms).
static SNAPSHOT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/CODESTEP_SNAPSHOT.bin"));
/// The same with the streams loaded: for worker processes of a server with a package directory, where
/// steps run SDKs, and the SDKs touch streams in nearly every call (Stripe reads `response.body` to
/// dispose of it, OpenAI checks request bodies against `ReadableStream`, axios probes for them).
static SNAPSHOT_WITH_STREAMS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/CODESTEP_SNAPSHOT_STREAMS.bin"));

/// The scripts no snapshot holds, for every runtime made from one.
pub fn lazy_scripts() -> &'static [(&'static str, &'static str)] {
    LAZY_SCRIPTS
}

/// A package snapshot this process was given (`preload`), in place of `SNAPSHOT`.
static INSTALLED: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();

/// The snapshot every isolate of this process starts from: one of the two `build.rs` made, or the
/// package snapshot the supervisor gave this worker (`install_snapshot`). One per process, never both: V8
/// shares one read-only heap between the isolates of a process, and an isolate deserialised from a
/// snapshot whose read-only heap differs from it crashes.
pub fn startup_snapshot() -> &'static [u8] {
    INSTALLED.get().copied().unwrap_or(SNAPSHOT)
}

/// Makes `blob` this process's startup snapshot. Before its first isolate, and once.
pub fn install_snapshot(blob: Vec<u8>) -> Result<(), String> {
    install(Box::leak(blob.into_boxed_slice()))
}

/// Makes the built-in snapshot with the streams this process's startup snapshot. Before its first
/// isolate, and once.
pub fn use_snapshot_with_streams() -> Result<(), String> {
    install(SNAPSHOT_WITH_STREAMS)
}

/// The sizes of the built-in snapshots: without the streams, and with them.
#[cfg(test)]
pub(crate) fn snapshot_sizes() -> (usize, usize) {
    (SNAPSHOT.len(), SNAPSHOT_WITH_STREAMS.len())
}

fn install(blob: &'static [u8]) -> Result<(), String> {
    INSTALLED
        .set(blob)
        .map_err(|_| "this process already has its startup snapshot".to_string())
}

/// Initialises V8 once per process. It must run on the main thread before any worker thread makes an
/// isolate (V8 sets up memory protection keys for the threads that exist at that point).
pub fn init_platform() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| JsRuntime::init_platform(None));
}

/// Initialises V8 once per process with a platform that has no thread of its own, for a worker that
/// forks a process per step (`--single-threaded` must be set first). `fork` copies only the calling
/// thread: a platform thread idle in the worker would be missing in the step process, and the first
/// task posted to it would wake a waiter that does not exist there (V8's mutex aborts the process).
/// With no worker threads V8 does garbage collection and compilation on the isolate's thread, which on
/// a worker's one core is where it would compete anyway.
pub fn init_single_threaded_platform() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        JsRuntime::init_platform(Some(
            deno_core::v8::new_single_threaded_default_platform(false).make_shared(),
        ))
    });
}

/// ArrayBuffer memory lives outside the V8 heap, so the heap limit does not see it. This budget counts
/// it and refuses allocations past the step's memory limit; V8 then throws a `RangeError` in JS.
pub struct BufferBudget {
    used: AtomicUsize,
    limit: usize,
    exceeded: AtomicBool,
}

impl BufferBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(BufferBudget {
            used: AtomicUsize::new(0),
            limit,
            exceeded: AtomicBool::new(false),
        })
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    pub(crate) fn reserve(&self, len: usize) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let next = match cur.checked_add(len) {
                Some(n) if n <= self.limit => n,
                _ => {
                    self.exceeded.store(true, Ordering::Relaxed);
                    return false;
                }
            };
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    pub(crate) fn release(&self, len: usize) {
        self.used.fetch_sub(len, Ordering::Relaxed);
    }
}

impl super::node_ops::NativeBudget for BufferBudget {
    fn reserve(&self, len: usize) -> bool {
        BufferBudget::reserve(self, len)
    }
    fn release(&self, len: usize) {
        BufferBudget::release(self, len)
    }
}

unsafe extern "C" fn budget_allocate(budget: &BufferBudget, len: usize) -> *mut c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: calloc with a non-zero size; a null result is handed to V8, which reports the failure.
    let ptr = unsafe { libc::calloc(len.max(1), 1) };
    if ptr.is_null() {
        budget.release(len);
    }
    ptr
}

unsafe extern "C" fn budget_allocate_uninitialized(
    budget: &BufferBudget,
    len: usize,
) -> *mut c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: as above; V8 asked for uninitialised memory, which malloc gives.
    let ptr = unsafe { libc::malloc(len.max(1)) };
    if ptr.is_null() {
        budget.release(len);
    }
    ptr
}

unsafe extern "C" fn budget_free(budget: &BufferBudget, data: *mut c_void, len: usize) {
    // SAFETY: V8 frees only what this allocator returned, with the length it asked for.
    unsafe { libc::free(data) };
    budget.release(len);
}

unsafe extern "C" fn budget_drop(budget: *const BufferBudget) {
    // SAFETY: the pointer came from `Arc::into_raw` in `create`, and V8 drops the allocator once.
    drop(unsafe { Arc::from_raw(budget) });
}

static BUDGET_VTABLE: v8::RustAllocatorVtable<BufferBudget> = v8::RustAllocatorVtable {
    allocate: budget_allocate,
    allocate_uninitialized: budget_allocate_uninitialized,
    free: budget_free,
    drop: budget_drop,
};

/// A step's runtime, and the function that runs its module (taken out of the global object).
pub struct StepRuntime {
    pub js: JsRuntime,
    pub run_step: v8::Global<v8::Function>,
    /// deno_core's async op that does nothing but wait for the event loop: a forking worker awaits it
    /// once (`step::Prepared::compact`), so that the functions that settle async ops are compiled
    /// before any step process needs them.
    pub deferred_op: v8::Global<v8::Function>,
    /// Gets the step's modules when its job arrives.
    pub loader: Rc<StepLoader>,
}

/// Globals removed before user code runs: every handle to ops or to the bootstrap.
const STRIP_GLOBALS: &str = r#"
"use strict";
delete globalThis.__codestepRunStep;
delete globalThis.Deno;
delete globalThis.__bootstrap;
delete globalThis.__infra;
"#;

pub fn create(heap_bytes: usize, budget: Arc<BufferBudget>) -> Result<StepRuntime, String> {
    // SAFETY: the vtable is 'static and the handle stays alive until `budget_drop`.
    let allocator = unsafe { v8::new_rust_allocator(Arc::into_raw(budget), &BUDGET_VTABLE) };
    let params = v8::CreateParams::default()
        .heap_limits(0, heap_bytes)
        .array_buffer_allocator(allocator);
    let loader = Rc::new(StepLoader::default());
    let mut js = JsRuntime::try_new(RuntimeOptions {
        startup_snapshot: Some(startup_snapshot()),
        extensions: super::extension::extensions(),
        create_params: Some(params),
        module_loader: Some(loader.clone()),
        residual_lazy_js_sources: lazy_scripts(),
        ..Default::default()
    })
    .map_err(|e| format!("could not create the step isolate: {e}"))?;

    // Both in one script: a runtime is made for every step where steps do not run in forked
    // processes, and each script is compiled afresh.
    let [run_step, deferred_op] = take_functions(
        &mut js,
        "[globalThis.__codestepRunStep, Deno.core.ops.op_void_async_deferred]",
    )
    .map_err(|e| format!("the polyfill did not load: {e}"))?;
    js.execute_script("ext:codestep/strip_globals.js", STRIP_GLOBALS)
        .map_err(|e| format!("could not strip internal globals: {e}"))?;
    Ok(StepRuntime {
        js,
        run_step,
        deferred_op,
        loader,
    })
}

/// Two functions the bootstrap left on the global object, from an expression that makes an array of
/// them.
fn take_functions(
    js: &mut JsRuntime,
    expression: &'static str,
) -> Result<[v8::Global<v8::Function>; 2], String> {
    let value = js
        .execute_script("ext:codestep/take_functions.js", expression)
        .map_err(|e| e.to_string())?;
    let context = js.main_context();
    let isolate = js.v8_isolate();
    v8::scope!(let scope, isolate);
    let context = v8::Local::new(scope, context);
    let scope = &mut v8::ContextScope::new(scope, context);
    let array = v8::Local::<v8::Array>::try_from(v8::Local::new(scope, value))
        .map_err(|_| format!("{expression} is not an array"))?;
    let take = |i: u32| {
        array
            .get_index(scope, i)
            .and_then(|v| v8::Local::<v8::Function>::try_from(v).ok())
            .map(|f| v8::Global::new(scope, f))
            .ok_or_else(|| format!("item {i} of {expression} is not a function"))
    };
    Ok([take(0)?, take(1)?])
}
