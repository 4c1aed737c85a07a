//! The worker process: the same binary, started by the supervisor with `WORKER_ARG` and a socket on
//! fd 3. It sets up V8, makes its first isolate, confines itself (`sandbox`), says `Ready`, and then runs
//! one step at a time in a fresh isolate, each fetch going to the supervisor as a `HostMsg`.
//!
//! Without a package directory (`Init::process_per_step`), the isolate is made once and each step runs
//! in a process forked for it (`forking`): the step process confines itself the rest of the way, says
//! `Ready`, runs one step in its copy of the isolate, reads up to the step's `End`, and exits; the
//! worker waits for it and forks the next, or, if it ended any other way, ends the same way.
//!
//! It never holds a secret, a connector, the master key or a store handle: its environment is emptied
//! by the supervisor, and nothing it is sent names more than a connector's name.

use std::os::fd::FromRawFd;
use std::rc::Rc;

use tokio::sync::mpsc;

use super::ipc;
use super::protocol::{FromWorker, ToWorker};
use super::step::{self, Link};
use super::watchdog::Watchdog;
use super::{forking, preload, runtime, sandbox, socket};

/// The first argument that makes the binary a worker (see `run_if_worker`).
pub const WORKER_ARG: &str = "__codestep-worker";
/// The worker's end of its socket to the supervisor.
pub const SOCKET_FD: i32 = 3;
/// The largest frame a worker accepts (a step's code and input come in one).
const MAX_FRAME: usize = 64 << 20;

/// For a binary that runs the executor in process mode with its own executable as the worker program:
/// call this first thing in `main`. When the process was started as a worker, it runs the worker and
/// exits; otherwise it returns at once. `codestep`'s own `main` does this.
pub fn run_if_worker() {
    if std::env::args_os().nth(1).is_some_and(|a| a == WORKER_ARG) {
        std::process::exit(main());
    }
}

/// Exit codes a supervisor can tell apart.
pub mod exit {
    pub const SETUP: i32 = 70;
    pub const SANDBOX: i32 = 71;
    pub const PROTOCOL: i32 = 72;
    /// The preloaded packages could not be made into a snapshot (the reason is on stderr).
    pub const PRELOAD: i32 = 73;
    /// A step process ran its step: its worker forks the next one.
    pub const STEP_DONE: i32 = 74;
}

/// V8 flags of a worker process, whose isolates each live for one step. Without Sparkplug, V8 no
/// longer compiles baseline code (on a background thread, competing for the worker's core) for
/// functions that the isolate is dropped soon after: a fetch step costs about 6 % less CPU (two runs
/// of `scripts/bench-peers`). Hot code is still optimised by Maglev and TurboFan. Tried and not kept:
/// `--single-threaded-gc`, `--max-lazy`, `--no-flush-bytecode` (no difference measured).
const V8_FLAGS: &str = "--no-sparkplug";

/// The heap limit of the isolate that keeps V8's isolate group alive (it allocates nothing).
const ANCHOR_HEAP_BYTES: usize = 16 << 20;

fn main() -> i32 {
    // Nothing but the socket should be open; close whatever an embedding parent leaked to us.
    // SAFETY: closes file descriptors above the socket; no Rust object owns them in this fresh process.
    unsafe {
        libc::syscall(libc::SYS_close_range, SOCKET_FD as u32 + 1, u32::MAX, 0);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Web Crypto runs its algorithms on this runtime's blocking threads: one, so a step that
        // starts many jobs gets them in turn, not one thread (and one core) each.
        .max_blocking_threads(1)
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return exit::SETUP,
    };
    // SAFETY: the supervisor put our end of a socketpair on this fd, and nothing else owns it.
    let std_sock = unsafe { std::os::unix::net::UnixStream::from_raw_fd(SOCKET_FD) };
    let (rd, wr) = {
        let _enter = rt.enter();
        match socket::split(std_sock) {
            Ok(halves) => halves,
            Err(_) => return exit::SETUP,
        }
    };

    // One task writes frames, one reads them: the step never blocks on the socket, and a frame is
    // never cut in half by a step ending mid-read.
    let (out_tx, out_rx) = mpsc::unbounded_channel::<ipc::Outgoing>();
    rt.spawn(ipc::write_all(wr, out_rx, None));
    let mut rd = ipc::buffered(rd);
    let (in_tx, in_rx) = mpsc::unbounded_channel::<ToWorker>();
    rt.spawn(async move {
        while let Ok(Some(msg)) = ipc::read::<ToWorker, _>(&mut rd, MAX_FRAME).await {
            if in_tx.send(msg).is_err() {
                break;
            }
        }
    });
    let incoming = Rc::new(tokio::sync::Mutex::new(in_rx));
    let flush_tx = out_tx.clone();
    let send = move |msg: FromWorker| {
        let _ = out_tx.send(ipc::Outgoing::new(msg));
    };
    // Sends a message and waits until it is on the socket.
    let send_now = |rt: &tokio::runtime::Runtime, msg: FromWorker| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = ipc::Outgoing {
            frame: ipc::encode(msg),
            flushed: Some(tx),
        };
        if flush_tx.send(out).is_ok() {
            let _ = rt.block_on(rx);
        }
    };

    let Some(ToWorker::Init {
        heap_bytes,
        sandbox: confine,
        preload,
        snapshot,
        streams_in_snapshot,
        process_per_step,
    }) = rt.block_on(async { incoming.lock().await.recv().await })
    else {
        return exit::PROTOCOL;
    };
    // Process-wide, so before V8 starts; no isolate exists yet, and this runtime has no thread.
    if process_per_step {
        // `fork` copies only the calling thread, so V8 gets a platform with no thread of its own
        // (see `runtime::init_single_threaded_platform`). Bytecode is never flushed: the worker
        // collects its isolate's garbage hard before forking (`Prepared::compact`), which would age
        // out the snapshot's compiled code that every step needs.
        deno_core::v8::V8::set_flags_from_string(&format!(
            "{V8_FLAGS} --single-threaded --no-flush-bytecode"
        ));
        runtime::init_single_threaded_platform();
    } else {
        deno_core::v8::V8::set_flags_from_string(V8_FLAGS);
        runtime::init_platform();
    }
    if let Some(p) = preload {
        // The process that makes the package snapshot: confined first, as the package code runs
        // here; no other isolate exists in it (see `preload`).
        if confine {
            if let Err(e) = sandbox::confine() {
                eprintln!("codestep worker: cannot confine this process: {e}");
                return exit::SANDBOX;
            }
        }
        return match preload::make(p.set, p.main_code) {
            Ok(made) => {
                send_now(
                    &rt,
                    FromWorker::Snapshot {
                        blob: made.blob,
                        modules: made.modules,
                    },
                );
                0
            }
            Err(e) => {
                eprintln!("codestep worker: {e}");
                exit::PRELOAD
            }
        };
    }
    let installed = if !snapshot.is_empty() {
        runtime::install_snapshot(snapshot)
    } else if streams_in_snapshot {
        runtime::use_snapshot_with_streams()
    } else {
        Ok(())
    };
    if installed.is_err() {
        return exit::PROTOCOL;
    }
    if process_per_step {
        if let Err(e) = forking::warm_lazy_scripts() {
            eprintln!("codestep worker: {e}");
            return exit::SETUP;
        }
        // The isolate every step process starts from: made here once, never entered by a step.
        let Ok(mut prepared) = step::prepare(heap_bytes, &rt) else {
            return exit::SETUP;
        };
        if let Err(e) = prepared.compact(&rt) {
            eprintln!("codestep worker: {e}");
            return exit::SETUP;
        }
        if let Err(e) = forking::prepare_memory() {
            eprintln!("codestep worker: cannot prepare to fork step processes: {e}");
            return exit::SETUP;
        }
        if confine {
            if let Err(e) = sandbox::confine_forking() {
                eprintln!("codestep worker: cannot confine this process: {e}");
                return exit::SANDBOX;
            }
        }
        let zygote = std::process::id();
        loop {
            // SAFETY: this process has one thread (V8's platform has none, the runtime is
            // current-thread and has spawned no blocking thread), so the child gets every lock free.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                return exit::SETUP;
            }
            if pid == 0 {
                // The step process: it dies with the worker, and the worker waits for it.
                // SAFETY: prctl and getppid take no pointers.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() as u32 != zygote {
                        libc::_exit(exit::SETUP);
                    }
                }
                let code = serve(
                    &rt,
                    incoming,
                    send,
                    send_now,
                    heap_bytes,
                    confine,
                    Some(prepared),
                    true,
                );
                // SAFETY: as after a step (see `serve`).
                unsafe { libc::_exit(code) };
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    return exit::SETUP;
                }
            }
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == exit::STEP_DONE {
                continue;
            }
            // The step process ended otherwise: this worker ends the same way, so the supervisor
            // sees how (a signal, V8's out-of-memory abort) and starts another.
            if libc::WIFSIGNALED(status) {
                // SAFETY: signals this process itself.
                unsafe {
                    libc::signal(libc::WTERMSIG(status), libc::SIG_DFL);
                    libc::kill(libc::getpid(), libc::WTERMSIG(status));
                }
            }
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                exit::SETUP
            };
        }
    }
    // An isolate that lives as long as the process and never runs anything. V8 tears its per-process
    // isolate group down (the read-only heap, the compile task executor) whenever its last isolate goes,
    // which here would be after every step; with this one alive, each step's isolate shares them
    // instead of building them again. It is made first and dropped last, as isolates on one thread must be.
    let _anchor = step::prepare(ANCHOR_HEAP_BYTES, &rt).ok();
    // The first isolate is made before confinement, so that whatever V8 sets up once is in place.
    let prepared = step::prepare(heap_bytes, &rt).ok();
    serve(
        &rt, incoming, send, send_now, heap_bytes, confine, prepared, false,
    )
}

/// Confines this process, says `Ready` and runs steps: in a worker that forks a process per step,
/// one step, after which it returns `exit::STEP_DONE`.
#[allow(clippy::too_many_arguments)]
fn serve(
    rt: &tokio::runtime::Runtime,
    incoming: Rc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ToWorker>>>,
    send: impl Fn(FromWorker) + 'static,
    send_now: impl Fn(&tokio::runtime::Runtime, FromWorker),
    heap_bytes: usize,
    confine: bool,
    mut prepared: Option<step::Prepared>,
    one_step: bool,
) -> i32 {
    if confine {
        let confined = if one_step {
            sandbox::confine_step_process()
        } else {
            sandbox::confine()
        };
        if let Err(e) = confined {
            eprintln!("codestep worker: cannot confine this process: {e}");
            return exit::SANDBOX;
        }
    }
    let watchdog = Watchdog::new("codestep-watch".into());
    send_now(
        rt,
        FromWorker::Ready {
            sandboxed: confine,
            forks: one_step,
        },
    );
    let send = Rc::new(send);

    loop {
        let msg = rt.block_on(async { incoming.lock().await.recv().await });
        let Some(msg) = msg else {
            // The supervisor closed the socket: a clean shutdown.
            return 0;
        };
        match msg {
            ToWorker::Run(job) => {
                let host_send = send.clone();
                let for_step = incoming.clone();
                let link = Link {
                    send: Box::new(move |m| host_send(FromWorker::Host(m))),
                    connect: Box::new(move |host| {
                        Box::pin(async move {
                            let mut rx = for_step.lock().await;
                            while let Some(msg) = rx.recv().await {
                                match msg {
                                    ToWorker::Gateway(m) => host.deliver(m),
                                    // Nothing else is sent while a step runs.
                                    _ => return,
                                }
                            }
                        })
                    }),
                };
                let heap_send = send.clone();
                let mut audit = move |chunk: &[u8]| {
                    heap_send(FromWorker::HeapChunk {
                        data: chunk.to_vec(),
                    })
                };
                let (outcome, spent) =
                    step::run_keeping(*job, link, rt, &watchdog, prepared.take(), Some(&mut audit));
                // On the socket before the next isolate is made, so the supervisor is not kept waiting.
                send_now(rt, FromWorker::Done(Box::new(outcome)));
                if one_step {
                    // What the supervisor still sends for this step (body chunks sent ahead of
                    // reads) is read up to `End`, so the next step process starts at a frame.
                    loop {
                        match rt.block_on(async { incoming.lock().await.recv().await }) {
                            Some(ToWorker::End) | None => break,
                            Some(_) => {}
                        }
                    }
                    // Nothing of this process is needed again: no isolate teardown, no destructors.
                    // `Done` went out whole (`send_now`), so the socket's write half holds no epoll
                    // registration that would outlive this process (see `socket::Writer`).
                    // SAFETY: _exit ends the process at once; the result is on the socket.
                    unsafe { libc::_exit(exit::STEP_DONE) };
                }
                // Torn down off the step's path, and before the next isolate exists.
                drop(spent);
                prepared = step::prepare(heap_bytes, rt).ok();
            }
            // A late message for a step that already ended, and its end.
            ToWorker::Gateway(_) | ToWorker::End => {}
            ToWorker::ProbeSandbox => {
                let results = sandbox::probe_refusals()
                    .into_iter()
                    .map(|(name, r)| (name.to_string(), r.err()))
                    .collect();
                send(FromWorker::Probed(results));
            }
            ToWorker::Init { .. } => return exit::PROTOCOL,
        }
    }
}
