//! One step's lifecycle on a worker thread: a fresh isolate from the snapshot, the user's module
//! loaded and evaluated, its default export called, the result read, and the isolate dropped.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use deno_core::error::{CoreError, CoreErrorKind, JsError};
use deno_core::{v8, JsRuntime, ModuleSpecifier, PollEventLoopOptions};

use super::host::{IsolateHost, Stop};
use super::modules::loader::{Loaded, StepLoader};
use super::node_ops::{SharedBudget, StepModules};
use super::ops::{LocalFuture, StepHost};
use super::protocol::{HostMsg, Job, Outcome};
use super::runtime::{self, BufferBudget, StepRuntime};
use super::watchdog::{Fired, Watchdog};
use super::{ErrorKind, StepError};

/// What `js/90_main.js` returns when the step's value was `undefined` (it is not JSON, so no step
/// output can look like it).
const RETURNED_UNDEFINED: &str = "undefined";

/// Part of the message `js/90_main.js` throws when the step's value cannot become JSON.
const NOT_JSON: &str = "is not JSON-serialisable";

/// Rewrites deno_core's wording into what a step author needs to read.
fn clarify(message: String) -> String {
    let message = message
        .strip_prefix("Uncaught (in promise) ")
        .or_else(|| message.strip_prefix("Uncaught "))
        .map(str::to_string)
        .unwrap_or(message);
    if message.contains("Module loading is not supported") {
        return "import is not available in a step: a step is one self-contained module, with no module loader"
            .to_string();
    }
    message
}

struct Failure {
    kind: ErrorKind,
    message: String,
    stack: Option<String>,
    location_text: Option<(String, Option<String>)>,
    /// The first frame in the step's own code or a package: (specifier, line, column), 1-based.
    at: Option<(String, i64, i64)>,
}

impl Failure {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            stack: None,
            location_text: None,
            at: None,
        }
    }

    fn from_core(err: CoreError) -> Self {
        match *err.0 {
            CoreErrorKind::Js(js) => Failure::from_js(*js),
            CoreErrorKind::PendingPromiseResolution => Failure::new(
                ErrorKind::Error,
                "the step's promise never settled: it was still waiting when nothing was left to wait for",
            ),
            other => Failure::new(ErrorKind::Error, clarify(other.to_string())),
        }
    }

    fn from_js(js: JsError) -> Self {
        let message = clarify(js.exception_message);
        let kind = if message.contains(NOT_JSON) {
            ErrorKind::Output
        } else {
            ErrorKind::Error
        };
        let at =
            js.frames
                .iter()
                .find_map(|f| match (&f.file_name, f.line_number, f.column_number) {
                    (Some(file), Some(line), Some(col)) if file.starts_with("file:///") => {
                        Some((file.clone(), line, col))
                    }
                    _ => None,
                });
        Failure {
            kind,
            message,
            stack: js.stack.map(|s| clean_stack(&s)),
            location_text: None,
            at,
        }
    }
}

/// A stack as a user reads it: the polyfill's own frames (`ext:`) left out, and modules named as the
/// step named them (`step.js`, `lib.js`, `node_modules/stripe/…`).
pub(crate) fn clean_stack(stack: &str) -> String {
    stack
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("at ") && (t.contains("(ext:") || t.starts_with("at ext:")))
        })
        .map(|l| l.replace("file:///", ""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A few lines of `source` around `line` (1-based), with a caret under `col`.
fn code_frame(source: &str, line: i64, col: i64) -> Option<String> {
    let idx = usize::try_from(line).ok()?.checked_sub(1)?;
    let lines: Vec<&str> = source.lines().collect();
    if idx >= lines.len() {
        return None;
    }
    let first = idx.saturating_sub(2);
    let width = (idx + 2).to_string().len();
    let mut out = String::new();
    for (i, text) in lines
        .iter()
        .enumerate()
        .take((idx + 2).min(lines.len()))
        .skip(first)
    {
        // Minified code: show a window of the line around the column, not all of it.
        let (shown, offset) = window(text, if i == idx { col } else { 1 });
        out.push_str(&format!(
            "{} {:>width$} | {shown}\n",
            if i == idx { ">" } else { " " },
            i + 1
        ));
        if i == idx {
            let pad = usize::try_from(col - 1).unwrap_or(0).saturating_sub(offset);
            out.push_str(&format!("  {:>width$} | {}^\n", "", " ".repeat(pad)));
        }
    }
    Some(out)
}

fn window(text: &str, col: i64) -> (String, usize) {
    const MAX: usize = 160;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= MAX {
        return (text.to_string(), 0);
    }
    let col = usize::try_from(col - 1).unwrap_or(0).min(chars.len());
    let start = col.saturating_sub(MAX / 2);
    let end = (start + MAX).min(chars.len());
    (chars[start..end].iter().collect(), start)
}

impl Failure {
    /// Adds where the error is, in the step's terms, with a code frame from the module's source.
    fn locate(mut self, main: &str, main_code: &str, loaded: &Loaded) -> Self {
        let Some((file, line, col)) = self.at.clone() else {
            return self;
        };
        let source = if file == main {
            Some(main_code)
        } else {
            loaded.source(&file)
        };
        let name = super::modules::display_name(&file).to_string();
        let location = format!("{name}:{line}:{col}");
        if self.stack.as_deref().is_none_or(|s| !s.contains(&location)) {
            // A syntax error has no stack: say where it is in the message.
            self.message = format!("{} (at {location})", self.message);
        }
        self.stack = self.stack.map(|s| {
            if s.contains(&location) {
                s
            } else {
                format!("{s}\n    at {location}")
            }
        });
        let frame = source.and_then(|s| code_frame(s, line, col));
        self.at = None;
        self.location_text = Some((location, frame));
        self
    }
}

/// A fresh, never-used isolate made ahead of time, so that making it is not on a step's critical path.
/// It is used by exactly one step, then dropped.
pub struct Prepared {
    rt: StepRuntime,
    budget: Arc<BufferBudget>,
    heap_bytes: usize,
}

impl Prepared {
    /// Readies the isolate a worker forks its step processes from. First it awaits one async op that
    /// does nothing: the functions that settle async ops (deno_core's `setPromise`, `__eventLoopTick`,
    /// `__resolvePromise`) are compiled on first use, which would otherwise be in every step process
    /// that fetches. Then it collects the isolate's garbage, everything it can (fewer heap pages for
    /// each fork to copy and each step process to write), and V8 finishes sweeping: left to the step
    /// processes, each would sweep (writing, so copying) the same pages. Nothing of a step is in the
    /// isolate: this runs before the first fork.
    pub fn compact(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        // The op starts its task when called: on this runtime.
        let _enter = rt.enter();
        let js = &mut self.rt.js;
        let call = js.call_with_args(&self.rt.deferred_op, &[]);
        rt.block_on(js.with_event_loop_promise(call, PollEventLoopOptions::default()))
            .map_err(|e| format!("an async op did not settle: {e}"))?;
        let isolate = js.v8_isolate();
        isolate.low_memory_notification();
        // V8 sweeps after a collection lazily, as it allocates. Collecting code statistics walks
        // the heap, which makes V8 finish sweeping first (there is no other public way).
        let _ = isolate.get_heap_code_and_metadata_statistics();
        Ok(())
    }
}

/// Makes a fresh isolate for a step with this heap limit.
pub fn prepare(heap_bytes: usize, rt: &tokio::runtime::Runtime) -> Result<Prepared, String> {
    let _enter = rt.enter();
    let budget = BufferBudget::new(heap_bytes);
    let step_rt = runtime::create(heap_bytes, budget.clone())?;
    Ok(Prepared {
        rt: step_rt,
        budget,
        heap_bytes,
    })
}

/// Where the heap audit's snapshot goes, chunk by chunk.
pub type HeapSink<'a> = &'a mut dyn FnMut(&[u8]);

/// How a step's isolate talks to its gateway: `send` takes the host's messages, and `connect` gets the
/// host and returns a future that delivers the gateway's messages to it (`IsolateHost::deliver`),
/// polled alongside the step.
pub struct Link {
    pub send: Box<dyn Fn(HostMsg)>,
    pub connect: Box<dyn FnOnce(Rc<IsolateHost>) -> LocalFuture<()>>,
}

/// Runs `job` to completion on the current thread, inside `rt` (this thread's current-thread runtime),
/// in `prepared` when it was made for the step's heap limit, else in a new isolate. When `audit` is
/// given and the job asks for it, the isolate's heap snapshot is streamed to it after the step.
pub fn run(
    job: Job,
    link: Link,
    rt: &tokio::runtime::Runtime,
    watchdog: &Watchdog,
    prepared: Option<Prepared>,
    audit: Option<HeapSink<'_>>,
) -> Outcome {
    let (outcome, spent) = run_keeping(job, link, rt, watchdog, prepared, audit);
    drop(spent);
    outcome
}

/// A step's isolate after the step ended: nothing runs in it any more, and dropping it (tearing the
/// isolate down) is all that is left. A worker drops it after its result is on the way, so the
/// teardown is not on the step's path; it must be dropped before the next isolate is made.
pub struct Spent {
    _rt: StepRuntime,
}

/// `run`, leaving the isolate's teardown to the caller (see `Spent`).
pub fn run_keeping(
    job: Job,
    link: Link,
    rt: &tokio::runtime::Runtime,
    watchdog: &Watchdog,
    prepared: Option<Prepared>,
    audit: Option<HeapSink<'_>>,
) -> (Outcome, Option<Spent>) {
    let limits = job.limits.clone();
    super::ops::reseed_math_random();
    // deno_core needs a tokio context while it creates the runtime and whenever V8 posts tasks.
    let _enter = rt.enter();
    let prepared = match prepared {
        Some(p) if p.heap_bytes == limits.heap_bytes() => Ok(p),
        // Made for another memory limit: drop it first, so this thread never holds two step isolates
        // (isolates on one thread must go in reverse order of creation).
        other => {
            drop(other);
            prepare(limits.heap_bytes(), rt)
        }
    };
    let Prepared {
        rt: mut step_rt,
        budget,
        ..
    } = match prepared {
        Ok(p) => p,
        Err(msg) => return (Outcome::failed(ErrorKind::Internal, msg), None),
    };
    let host = IsolateHost::new(link.send, budget.clone(), limits.clone());
    let incoming = (link.connect)(host.clone());
    let js = &mut step_rt.js;
    let isolate = js.v8_isolate().thread_safe_handle();
    js.op_state()
        .borrow_mut()
        .put::<Rc<dyn StepHost>>(Rc::new(host.clone()));
    js.op_state()
        .borrow_mut()
        .put::<SharedBudget>(budget.clone());
    host.set_isolate(isolate.clone());

    let out_of_memory = Rc::new(Cell::new(false));
    {
        let out_of_memory = out_of_memory.clone();
        let isolate = isolate.clone();
        js.add_near_heap_limit_callback(move |current, _initial| {
            out_of_memory.set(true);
            isolate.terminate_execution();
            // V8 aborts the process if the callback does not make room; the step is ending anyway.
            current.saturating_mul(2)
        });
    }

    let started = Instant::now();
    let deadline = started + limits.wall_time();
    let timer = match watchdog.arm(deadline, limits.cpu_time(), isolate) {
        Ok(t) => t,
        Err(e) => {
            return (
                Outcome::failed(
                    ErrorKind::Internal,
                    format!("could not start the step's watchdog: {e}"),
                ),
                Some(Spent { _rt: step_rt }),
            )
        }
    };
    let run_step = step_rt.run_step.clone();
    let max_output = limits.max_output_bytes;
    let loaded = match Loaded::new(job.modules, job.env) {
        Ok(l) => Rc::new(l),
        Err(e) => {
            return (
                Outcome::failed(ErrorKind::Internal, e),
                Some(Spent { _rt: step_rt }),
            )
        }
    };
    step_rt.loader.set(loaded.clone());
    step_rt
        .js
        .op_state()
        .borrow_mut()
        .put::<Rc<dyn StepModules>>(loaded.clone());
    step_rt
        .js
        .set_eval_context_code_cache_cbs(Some(StepLoader::eval_cache_callbacks(loaded.clone())));
    let outcome = rt.block_on(async {
        tokio::select! {
            r = tokio::time::timeout_at(
                deadline.into(),
                drive(&mut step_rt.js, &run_step, loaded.main(), job.code.clone(), job.input, job.ctx, max_output),
            ) => r.ok(),
            // The stop reason is read below; what the driver was doing no longer matters.
            () = host.stopped() => Some(Err(Failure::new(ErrorKind::Limit, "stopped"))),
            // Delivers the gateway's messages; it ends only when the gateway is gone.
            () = incoming => Some(Err(Failure::new(ErrorKind::Internal, "the step's gateway went away"))),
        }
    });
    let fired = timer.disarm();
    host.close();

    let result = match outcome {
        _ if out_of_memory.get() => Err(Failure::new(
            ErrorKind::Memory,
            format!(
                "step ran out of memory (heap limit {} MiB)",
                limits.memory_mb
            ),
        )),
        _ if host.stop_reason() == Some(Stop::Memory) => Err(Failure::new(
            ErrorKind::Memory,
            format!(
                "step ran out of memory: response bodies waiting to be read went over {} MiB",
                limits.memory_mb
            ),
        )),
        _ if fired == Some(Fired::Cpu) => Err(Failure::new(
            ErrorKind::Timeout,
            format!("step exceeded its CPU time of {} ms", limits.cpu_time_ms),
        )),
        // The watchdog stopped running JS, or the timer fired while the step waited.
        _ if fired == Some(Fired::Wall) => Err(Failure::new(
            ErrorKind::Timeout,
            format!("step exceeded its wall time of {} ms", limits.timeout_ms),
        )),
        None => Err(Failure::new(
            ErrorKind::Timeout,
            format!("step exceeded its wall time of {} ms", limits.timeout_ms),
        )),
        Some(result) => match host.stop_reason() {
            Some(Stop::Limit(msg)) => Err(Failure::new(ErrorKind::Limit, msg)),
            _ => match result {
                Err(f) if f.kind == ErrorKind::Error && budget.exceeded() => Err(Failure::new(
                    ErrorKind::Memory,
                    format!(
                        "step ran out of ArrayBuffer memory (limit {} MiB): {}",
                        limits.memory_mb, f.message
                    ),
                )),
                other => other,
            },
        },
    };

    if job.audit_heap {
        if let Some(sink) = audit {
            super::audit::snapshot_heap(step_rt.js.v8_isolate(), sink);
        }
    }
    // The isolate can run nothing more of this step: the host is closed and nothing polls its event
    // loop again. It is dropped by the caller, before the next isolate is made (`Spent`).
    let logs = std::mem::take(&mut *host.logs.borrow_mut());
    let (logs, logs_dropped) = logs.finish();
    let main_code = job.code;
    let mut warnings = Vec::new();
    let result = match result {
        // `js/90_main.js` says so when the step's value was `undefined`.
        Ok(text) if text == RETURNED_UNDEFINED => {
            warnings.push(
                "the step returned undefined (did it forget a return?); its output is null"
                    .to_string(),
            );
            Ok("null".to_string())
        }
        other => other,
    };
    let outcome = Outcome {
        warnings,
        result: result.map_err(|f| {
            let f = f.locate(loaded.main(), &main_code, &loaded);
            let (location, frame) = f.location_text.unzip();
            super::outcome::capped(StepError {
                kind: f.kind,
                message: f.message,
                stack: f.stack,
                location,
                frame: frame.flatten(),
            })
        }),
        logs,
        logs_dropped,
    };
    (outcome, Some(Spent { _rt: step_rt }))
}

async fn drive(
    js: &mut JsRuntime,
    run_step: &v8::Global<v8::Function>,
    main: &str,
    code: String,
    input: String,
    ctx: String,
    max_output: u64,
) -> Result<String, Failure> {
    let spec = ModuleSpecifier::parse(main)
        .map_err(|e| Failure::new(ErrorKind::Error, format!("the step's name: {e}")))?;
    let id = js
        .load_main_es_module_from_code(&spec, code)
        .await
        .map_err(Failure::from_core)?;
    let evaluation = js.mod_evaluate(id);
    // Evaluation (top-level await included) ends when the module's promise settles; timers the module
    // leaves behind do not keep it waiting.
    js.with_event_loop_promise(Box::pin(evaluation), PollEventLoopOptions::default())
        .await
        .map_err(Failure::from_core)?;
    let namespace = js.get_module_namespace(id).map_err(Failure::from_core)?;

    let args = {
        let context = js.main_context();
        let isolate = js.v8_isolate();
        v8::scope!(let scope, isolate);
        let context = v8::Local::new(scope, context);
        let scope = &mut v8::ContextScope::new(scope, context);
        let ns: v8::Local<v8::Value> = v8::Local::new(scope, namespace).into();
        let input = v8::String::new(scope, &input)
            .ok_or_else(|| Failure::new(ErrorKind::Input, "step input is too large"))?;
        let ctx = v8::String::new(scope, &ctx).expect("small string");
        [
            v8::Global::new(scope, ns),
            v8::Global::new(scope, v8::Local::<v8::Value>::from(input)),
            v8::Global::new(scope, v8::Local::<v8::Value>::from(ctx)),
        ]
    };
    let call = js.call_with_args(run_step, &args);
    let value = js
        .with_event_loop_promise(call, PollEventLoopOptions::default())
        .await
        .map_err(Failure::from_core)?;

    let context = js.main_context();
    let isolate = js.v8_isolate();
    v8::scope!(let scope, isolate);
    let context = v8::Local::new(scope, context);
    let scope = &mut v8::ContextScope::new(scope, context);
    let value = v8::Local::new(scope, value);
    let Ok(text) = v8::Local::<v8::String>::try_from(value) else {
        return Err(Failure::new(
            ErrorKind::Internal,
            "the step runner returned no text",
        ));
    };
    // Checked before the host copies it: the output counts against the step, not the host.
    let len = text.utf8_length(scope) as u64;
    if len > max_output {
        return Err(Failure::new(
            ErrorKind::Output,
            format!("step output is {len} bytes of JSON, over the limit of {max_output} bytes"),
        ));
    }
    // Lone surrogates become U+FFFD rather than failing the whole output.
    Ok(text.to_rust_string_lossy(scope))
}
