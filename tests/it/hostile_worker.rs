//! A worker process taken over through a V8 bug (native code of an attacker's) attacking the supervisor,
//! and ordinary steps pushing on the same boundary. The compromised worker is played by a Python script
//! (`FAKE_WORKER`) that speaks the supervisor's frame format on fd 3 and does what the step's `code`
//! says. Tests that measure the supervisor's own memory (this test process) run alone, in a child
//! process of the test binary, so that no other test's allocations count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codestep::engine::{ErrorKind, Executor, ExecutorConfig, StepRequest};
use serde_json::json;

use crate::containment::{connector, statm_rss, SECRET};
use crate::support::{process_mode, Reply, TestServer};

/// Whether to run the test body here: in the child process made for it, yes; in the parent, the child
/// is run (this test alone, in a fresh process) and its result asserted.
fn alone(name: &str) -> bool {
    if std::env::var("CODESTEP_TEST_ALONE").as_deref() == Ok(name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env("CODESTEP_TEST_ALONE", name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} did not run: {stdout}");
    false
}

// The fake worker below speaks the supervisor's frame format on fd 3 (`ipc.rs`:
// `[u32 len][u8 flags][u32 header len][JSON header][payload]`) and does what the step's `code` tells it
// to, as a worker running an attacker's native code could.

/// The frame format on fd 3, in Python: what both stand-in workers below start with.
const FAKE_IO: &str = r#"#!/usr/bin/python3
import os, sys, json, struct, time, socket
sock = socket.socket(fileno=3)
def read_exact(n):
    b = bytearray()
    while len(b) < n:
        c = sock.recv(n - len(b))
        if not c:
            os._exit(0)
        b += c
    return bytes(b)
def recv():
    n, = struct.unpack('<I', read_exact(4))
    body = read_exact(n)
    hl, = struct.unpack('<I', body[1:5])
    return json.loads(body[5:5 + hl]), body[5 + hl:]
def frame(obj, payload=None):
    h = json.dumps(obj, separators=(',', ':')).encode()
    p = payload if payload is not None else b''
    return struct.pack('<IBI', 1 + 4 + len(h) + len(p), 1 if payload is not None else 0, len(h)) + h + p
def send(obj, payload=None):
    sock.sendall(frame(obj, payload))
def leaderless(mib):
    # The main thread exits while another thread lives on and grows: /proc/PID/statm is the main
    # thread's, and reads as empty from then on. (ctypes lets go of Python's lock for the call, so
    # the other thread runs.)
    import ctypes, threading
    def grow():
        time.sleep(0.3)
        global keep
        keep = b'\x01' * (mib << 20)
        time.sleep(60)
    threading.Thread(target=grow, daemon=True).start()
    ctypes.CDLL(None).syscall(60, 0)  # SYS_exit on x86-64: this thread only
"#;

const FAKE_WORKER: &str = r#"def done(out='1'):
    send({'Done': {'result': {'Ok': out}, 'logs': [], 'logs_dropped': 0}})
msg, _ = recv()
assert 'Init' in msg
send({'Ready': {'sandboxed': False}})
keep = None
while True:
    msg, _ = recv()
    if 'Run' not in msg:
        continue
    cmd, _, arg = msg['Run']['code'].partition(':')
    if cmd == 'ok':
        done()
    elif cmd == 'flood_after_done':
        # The step is over as far as the supervisor knows; keep writing anyway.
        done()
        chunk = b'\0' * (8 << 20)
        for _ in range(int(arg)):
            send({'HeapChunk': {}}, chunk)
    elif cmd == 'anon':
        # Control: ordinary resident memory, which the monitor sees.
        keep = b'\x01' * (int(arg) << 20)
        time.sleep(1.0)
        done()
        keep = None
    elif cmd == 'memfd':
        # memfd_create and write are allowed by the sandbox (sandbox.rs); the pages are shmem that is
        # never mapped, so they are not in /proc/PID/statm's resident count.
        fd = os.memfd_create('x')
        block = b'\x01' * (1 << 20)
        for _ in range(int(arg)):
            os.write(fd, block)
        time.sleep(1.0)
        done()
        os.close(fd)
    elif cmd == 'leaderless':
        leaderless(int(arg))
    elif cmd == 'idle_hog':
        # Report the step done, then use memory and CPU while idle, where no monitor looks.
        done()
        keep = b'\x01' * (int(arg) << 20)
        end = time.time() + 3
        while time.time() < end:
            pass
    elif cmd == 'hold_headers':
        # One slow fetch holds the only concurrency slot; the fetches queued behind it carry 12 MiB
        # frames of empty header pairs, each ~6x bigger once deserialised, and kept while they wait.
        n, _, url = arg.partition(':')
        send({'Host': {'Fetch': {'id': 0, 'method': 'GET', 'url': url, 'headers': [], 'redirect': 'follow', 'stream': False}}})
        pairs = [['', '']] * 1_500_000
        for i in range(1, int(n) + 1):
            send({'Host': {'Fetch': {'id': i, 'method': 'GET', 'url': url, 'headers': pairs, 'redirect': 'follow', 'stream': False}}})
        time.sleep(2.0)
        done()
    elif cmd == 'late_fetch':
        # Done first, then a fetch: the supervisor reads it only when the next step starts.
        done()
        send({'Host': {'Fetch': {'id': 1, 'method': 'GET', 'url': arg, 'headers': [], 'redirect': 'follow', 'stream': False}}})
    elif cmd == 'unasked_chunk':
        # A streamed body whose first chunk comes before the gateway asked for it (before the policy
        # check, in an honest worker's terms), then the end of the body. One write, so the chunk
        # reaches the supervisor with the request: written apart, on a loaded machine this process
        # could be descheduled long enough for the gateway to connect and really ask for the body.
        sock.sendall(
            frame({'Host': {'Fetch': {'id': 1, 'method': 'POST', 'url': arg, 'headers': [], 'redirect': 'follow', 'stream': True}}})
            + frame({'Host': {'BodyChunk': {'id': 1}}}, b'unasked')
            + frame({'Host': {'BodyEnd': {'id': 1}}}))
        time.sleep(1.0)
        done()
    elif cmd == 'wait':
        time.sleep(float(arg))
        done()
    elif cmd == 'unread_flood':
        # Never read the socket; every Fetch with a bad redirect mode makes the supervisor queue a
        # `Failed` that echoes the mode back.
        big = 'x' * (1 << 20)
        for i in range(int(arg)):
            send({'Host': {'Fetch': {'id': i, 'method': 'GET', 'url': 'https://a.test/', 'headers': [], 'redirect': big, 'stream': False}}})
        time.sleep(1.5)
        os._exit(0)
"#;

/// A worker that forks a process per step, as codestep's own does without a package directory: each
/// step process says `Ready`, runs one step, reads up to `End` and exits 74; the worker forks the
/// next. Its steps' `code` says how the step process misbehaves after `Done`.
const FAKE_FORKING_WORKER: &str = r#"msg, _ = recv()
assert 'Init' in msg
while True:
    pid = os.fork()
    if pid == 0:
        send({'Ready': {'sandboxed': False, 'forks': True}})
        while True:
            msg, _ = recv()
            if 'Run' in msg:
                break
        cmd, _, arg = msg['Run']['code'].partition(':')
        if cmd == 'anon':
            # Grows during its step, as a step would: the monitor must see it.
            keep = b'\x01' * (int(arg) << 20)
            time.sleep(2.0)
        elif cmd == 'leaderless':
            leaderless(int(arg))
        send({'Done': {'result': {'Ok': '1'}, 'logs': [], 'logs_dropped': 0}})
        if cmd == 'linger':
            # Ignores `End` and stays.
            time.sleep(30)
        elif cmd == 'forge_ready':
            # Says `Ready` for the next step process before it exits itself.
            send({'Ready': {'sandboxed': False, 'forks': True, 'pid': 1}})
        elif cmd == 'grow':
            # Grows after `Done`, before it exits.
            keep = b'\x01' * (int(arg) << 20)
            time.sleep(30)
        while True:
            msg, _ = recv()
            if msg == 'End':
                break
        os._exit(74)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 74):
        os._exit(1)
"#;

fn own_rss() -> u64 {
    statm_rss(std::process::id()).unwrap_or(0)
}

fn fake_worker_executor() -> (Executor, tempfile::TempPath) {
    fake_worker_executor_with(Default::default())
}

fn fake_forking_worker_executor() -> (Executor, tempfile::TempPath) {
    fake_worker_program(FAKE_FORKING_WORKER, Default::default())
}

fn fake_worker_executor_with(
    egress: codestep::egress::EgressConfig,
) -> (Executor, tempfile::TempPath) {
    fake_worker_program(FAKE_WORKER, egress)
}

fn fake_worker_program(
    program: &str,
    egress: codestep::egress::EgressConfig,
) -> (Executor, tempfile::TempPath) {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::Builder::new().suffix(".py").tempfile().unwrap();
    f.write_all(format!("{FAKE_IO}{program}").as_bytes())
        .unwrap();
    f.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .unwrap();
    let path = f.into_temp_path();
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        egress,
        mode: codestep::engine::Mode::Process {
            program: codestep::engine::WorkerProgram::Path(path.to_path_buf()),
            sandbox: false,
        },
        ..Default::default()
    })
    .unwrap();
    (exec, path)
}

fn fake_step(code: &str, memory_mb: Option<u64>) -> StepRequest {
    let mut r = StepRequest::new(code, json!({}));
    r.limits.memory_mb = memory_mb;
    r
}

/// Samples this process's (the supervisor's) resident memory while `f` runs, and for `after` beyond.
fn supervisor_growth(after: Duration, f: impl FnOnce()) -> u64 {
    let base = own_rss();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(base));
    let (s, p) = (stop.clone(), peak.clone());
    let t = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            p.fetch_max(own_rss(), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    f();
    std::thread::sleep(after);
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    peak.load(Ordering::Relaxed).saturating_sub(base)
}

/// A worker that keeps writing after `Done` is pushed back by its socket (at most a few frames wait
/// in the supervisor) and replaced before its next step: 40 × 8 MiB written after `Done` must not
/// pile up in the supervisor.
#[test]
fn messages_after_done_do_not_pile_up_in_the_supervisor() {
    if !alone("hostile_worker::messages_after_done_do_not_pile_up_in_the_supervisor") {
        return;
    }
    let (exec, _path) = fake_worker_executor();
    assert!(exec.run_blocking(fake_step("ok", None)).ok);
    let grew = supervisor_growth(Duration::from_secs(4), || {
        let r = exec.run_blocking(fake_step("flood_after_done:40", None));
        assert!(r.ok, "{r:?}");
    });
    eprintln!("supervisor grew by {} MiB after the step ended", grew >> 20);
    assert!(
        grew < 64 << 20,
        "the supervisor buffered {} MiB that a worker wrote after Done",
        grew >> 20
    );
}

/// A worker that never reads its socket, while asking for things the gateway answers (here `Fetch`es
/// with a 1 MiB invalid redirect mode, each answered by a short `Failed`), is killed once too much
/// waits for it, instead of growing the supervisor.
#[test]
fn a_worker_that_never_reads_cannot_grow_the_supervisor() {
    if !alone("hostile_worker::a_worker_that_never_reads_cannot_grow_the_supervisor") {
        return;
    }
    let (exec, _path) = fake_worker_executor();
    assert!(exec.run_blocking(fake_step("ok", None)).ok);
    let grew = supervisor_growth(Duration::from_millis(200), || {
        let _ = exec.run_blocking(fake_step("unread_flood:300", None));
    });
    eprintln!("supervisor grew by {} MiB during the step", grew >> 20);
    assert!(
        grew < 64 << 20,
        "the supervisor queued {} MiB for a worker that does not read",
        grew >> 20
    );
}

/// A step process that stays after its step's `End` is killed within a short grace, and its worker is
/// replaced before the next step: it is not watched as a step any more, and must not linger unwatched.
#[test]
fn a_step_process_that_stays_after_its_step_is_killed() {
    let (exec, _path) = fake_forking_worker_executor();
    assert!(exec.run_blocking(fake_step("ok", None)).ok);
    let worker = exec.worker_pids();
    let started = Instant::now();
    let r = exec.run_blocking(fake_step("linger", None));
    assert!(r.ok, "{r:?}");
    let next = exec.run_blocking(fake_step("ok", None));
    assert!(next.ok, "{next:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the lingering step process held its worker for {:?}",
        started.elapsed()
    );
    assert_ne!(exec.worker_pids(), worker, "the worker was not replaced");
}

/// A step process that says `Ready` for its successor is not taken for it: the supervisor takes the
/// step process from the kernel (the worker's one live child), so it never watches an exited process
/// (or one the message names) while the next step runs unwatched; the worker is replaced, and steps
/// keep running.
#[test]
fn a_forged_ready_does_not_choose_the_watched_process() {
    let (exec, _path) = fake_forking_worker_executor();
    for _ in 0..5 {
        assert!(exec.run_blocking(fake_step("ok", Some(64))).ok);
        let worker = exec.worker_pids();
        let r = exec.run_blocking(fake_step("forge_ready", Some(64)));
        assert!(r.ok, "{r:?}");
        // The next step runs in a process the monitor watches: one that grows past its limit is killed.
        let started = Instant::now();
        let grown = exec.run_blocking(fake_step("anon:400", Some(64)));
        assert!(
            !grown.ok,
            "a step process grew past its limit unwatched: {grown:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // The failed step is answered before its worker is replaced.
        let deadline = Instant::now() + Duration::from_secs(5);
        while exec.worker_pids() == worker && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_ne!(exec.worker_pids(), worker, "the worker was not replaced");
    }
}

/// A step process that held up to its step's memory limit still holds it while it exits: it is not
/// killed for that, and its worker goes on (it was killed, and its worker replaced, once it held more
/// than half the operator's cap).
#[test]
fn a_step_process_that_held_its_limit_exits_in_peace() {
    let (exec, _path) = fake_forking_worker_executor();
    assert!(exec.run_blocking(fake_step("ok", Some(128))).ok);
    let worker = exec.worker_pids();
    let r = exec.run_blocking(fake_step("anon:100", Some(128)));
    assert!(r.ok, "{r:?}");
    assert!(exec.run_blocking(fake_step("ok", Some(128))).ok);
    assert_eq!(exec.worker_pids(), worker, "the worker was replaced");
}

/// A step process that grows after `Done`, before it exits, is killed by the monitor: it is watched
/// until it is gone.
#[test]
fn a_step_process_that_grows_after_its_step_is_killed() {
    let (exec, _path) = fake_forking_worker_executor();
    assert!(exec.run_blocking(fake_step("ok", Some(64))).ok);
    let worker = exec.worker_pids();
    let r = exec.run_blocking(fake_step("grow:400", Some(64)));
    assert!(r.ok, "{r:?}");
    let started = Instant::now();
    let next = exec.run_blocking(fake_step("ok", Some(64)));
    assert!(next.ok, "{next:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the growing step process was not stopped promptly: {:?}",
        started.elapsed()
    );
    assert_ne!(exec.worker_pids(), worker, "the worker was not replaced");
}

/// A step process that ends its main thread and grows in another reads as empty in `/proc/PID/statm`
/// (the main thread's): the monitor reads a live process that reads as empty through its other
/// threads, so the step ends with `memory` once it grows instead of holding its memory, unseen, until
/// its deadline.
#[test]
fn a_step_process_that_ends_its_main_thread_is_still_measured() {
    if std::env::consts::ARCH != "x86_64" {
        return; // the fake step process calls SYS_exit by its x86-64 number
    }
    // A step process a worker forked, and a worker that runs steps itself (watched by its own pidfd).
    for (mode, (exec, _path)) in [
        ("forking", fake_forking_worker_executor()),
        ("not forking", fake_worker_executor()),
    ] {
        assert!(exec.run_blocking(fake_step("ok", Some(64))).ok, "{mode}");
        let started = Instant::now();
        let mut step = fake_step("leaderless:200", Some(64));
        step.limits.timeout_ms = Some(20_000);
        let r = exec.run_blocking(step);
        assert_eq!(
            r.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Memory),
            "{mode}: {:?}",
            r.error
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode}: the step held its memory for {:?}",
            started.elapsed()
        );
        assert!(exec.run_blocking(fake_step("ok", Some(64))).ok, "{mode}");
    }
}

/// Between steps a worker stays under the monitor: one that reports `Done` and then grows or spins is
/// killed and replaced.
#[test]
fn an_idle_worker_is_still_watched() {
    let (exec, _path) = fake_worker_executor();
    let r = exec.run_blocking(fake_step("idle_hog:400", Some(64)));
    assert!(r.ok, "{r:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let pids = exec.worker_pids();
    let rss: Vec<(u32, u64)> = pids
        .iter()
        .map(|p| (*p, statm_rss(*p).unwrap_or(0) >> 20))
        .collect();
    eprintln!("idle workers (pid, MiB resident): {rss:?}");
    assert!(
        rss.iter().all(|(_, mib)| *mib < 200),
        "an idle worker holds {rss:?} MiB under a 64 MiB step limit, unwatched"
    );
}

fn in_process_executor() -> Executor {
    Executor::new(ExecutorConfig {
        workers: 1,
        ..Default::default()
    })
    .unwrap()
}

fn real_process_executor() -> Executor {
    Executor::new(ExecutorConfig {
        workers: 1,
        mode: process_mode(),
        ..Default::default()
    })
    .unwrap()
}

/// A request body over `max_request_body_bytes` ends the step with `limit` in both modes: the isolate
/// side refuses it before it becomes a frame larger than the supervisor reads.
#[test]
fn a_large_request_body_is_a_limit_not_a_dead_worker() {
    let code = "export default async () => { await fetch('https://a.test/', { method: 'POST', body: new Uint8Array(20 << 20) }); return 1 }";
    let inproc = in_process_executor();
    let r = inproc.run_blocking(StepRequest::new(code, json!({})));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Limit),
        "in-process: {r:?}"
    );
    let exec = real_process_executor();
    let r = exec.run_blocking(StepRequest::new(code, json!({})));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Limit),
        "process mode: {:?}",
        r.error
    );
}

/// A thrown error's message and stack are capped (64 KiB each) on both sides, so a huge error is an
/// `error`, not a dead worker, and costs no more than the cap.
#[test]
fn error_messages_are_capped_like_output() {
    let code = "export default () => { throw new Error('x'.repeat(8 << 20)) }";
    let inproc = in_process_executor();
    let r = inproc.run_blocking(StepRequest::new(code, json!({})));
    let e = r.error.clone().expect("an error");
    let size = e.message.len() + e.stack.as_ref().map_or(0, String::len);
    eprintln!(
        "in-process: kind {:?}, {} bytes of message and stack",
        e.kind, size
    );
    let exec = real_process_executor();
    let p = exec.run_blocking(StepRequest::new(code, json!({})));
    eprintln!(
        "process mode: {:?}",
        p.error
            .as_ref()
            .map(|e| (e.kind, e.message.chars().take(120).collect::<String>()))
    );
    assert!(size <= 1 << 20, "in-process error is {size} bytes");
    assert_eq!(p.error.as_ref().map(|e| e.kind), Some(ErrorKind::Error));
}

/// More than 32 768 request headers (http's `HeaderMap` limit) once made the gateway's fetch task
/// panic, leaving the fetch hanging and unrecorded. Request headers are capped (256, 64 KiB), so the
/// fetch rejects with a `TypeError` at once.
#[test]
fn too_many_request_headers_reject_the_fetch() {
    let server = TestServer::start(|_| Reply::ok("fine"));
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        egress: server.egress_config(),
        ..Default::default()
    })
    .unwrap();
    let code = "export default async ({ u }) => { const h = new Headers(); for (let i = 0; i < 40000; i++) h.append('x-' + i, 'v'); try { const r = await fetch(u, { headers: h }); return 'sent ' + r.status } catch (e) { return 'rejected: ' + e.message } }";
    let mut req = StepRequest::new(code, json!({ "u": server.url("api.test", "/h") }));
    req.connectors = vec![connector(&server, false)];
    req.limits.timeout_ms = Some(5000);
    let started = Instant::now();
    let r = exec.run_blocking(req);
    eprintln!(
        "after {:?}: {:?} {:?} records {}",
        started.elapsed(),
        r.output,
        r.error,
        r.requests.len()
    );
    assert!(r.ok, "the fetch never settled: {:?}", r.error);
}

/// A compromised worker's `Fetch` frames with huge header lists are refused while they are read (at
/// most 256 pairs), and requests waiting for a concurrency slot count against the step's memory, so
/// queued fetches cannot pin supervisor memory.
#[test]
fn queued_fetches_do_not_pin_unbounded_supervisor_memory() {
    if !alone("hostile_worker::queued_fetches_do_not_pin_unbounded_supervisor_memory") {
        return;
    }
    let server = TestServer::start(|_| Reply::ok("slow").delay(Duration::from_secs(5)));
    let (exec, _path) = fake_worker_executor_with(server.egress_config());
    assert!(exec.run_blocking(fake_step("ok", None)).ok);
    let url = server.url("api.test", "/slow");
    let grew = supervisor_growth(Duration::from_millis(100), || {
        let mut req = fake_step(&format!("hold_headers:8:{url}"), Some(64));
        req.connectors = vec![connector(&server, false)];
        req.limits.max_concurrent_fetches = Some(1);
        let r = exec.run_blocking(req);
        eprintln!("{:?} {:?} records {}", r.output, r.error, r.requests.len());
    });
    eprintln!(
        "supervisor grew by {} MiB for a step limited to 64 MiB",
        grew >> 20
    );
    assert!(
        grew < 256 << 20,
        "queued fetches pinned {} MiB in the supervisor",
        grew >> 20
    );
}

/// A message a worker sends after `Done` never reaches the next step's gateway: the worker is replaced
/// before its next step, and nothing of step 1's late fetch reaches the upstream or step 2's records.
#[test]
fn messages_from_one_step_never_reach_the_next() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let (exec, _path) = fake_worker_executor_with(server.egress_config());
    let url = server.url("api.test", "/late");
    let r1 = exec.run_blocking(fake_step(&format!("late_fetch:{url}"), None));
    assert!(r1.ok, "{r1:?}");
    std::thread::sleep(Duration::from_millis(300));
    let mut step2 = fake_step("wait:0.5", None);
    step2.connectors = vec![connector(&server, false)];
    let r2 = exec.run_blocking(step2);
    eprintln!(
        "step 1 records {}, step 2 records {} ({:?}), upstream saw {}",
        r1.requests.len(),
        r2.requests.len(),
        r2.requests.first().map(|r| &r.path),
        server.requests().len()
    );
    assert_eq!(
        r2.requests.len(),
        0,
        "step 2 was charged with step 1's fetch"
    );
    assert_eq!(
        server.requests().len(),
        0,
        "a fetch sent after Done reached the upstream"
    );
}

/// A fetch whose first hop carried connector `svc`'s secret, and whose redirect was then blocked, is
/// recorded for `svc` too (one record per hop that reached an upstream): monitoring sees every use.
#[test]
fn a_redirected_fetch_is_recorded_against_every_connector_it_used() {
    let server = TestServer::start(|req| {
        if req.path == "/r" {
            Reply::redirect(302, "https://elsewhere.test/x")
        } else {
            Reply::ok("x")
        }
    });
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        egress: server.egress_config(),
        ..Default::default()
    })
    .unwrap();
    let code = "export default async ({ u }) => { try { await fetch(u) } catch (e) { return e.message } return 'followed' }";
    let mut req = StepRequest::new(code, json!({ "u": server.url("api.test", "/r") }));
    req.connectors = vec![connector(&server, false)];
    let r = exec.run_blocking(req);
    let got = server.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains(SECRET), "the first hop carried the secret");
    eprintln!("{:?} records: {:?}", r.output, r.requests);
    assert_eq!(
        r.requests[0].connector.as_deref(),
        Some("svc"),
        "the record of a request that carried svc's secret does not name svc"
    );
}

/// An output within its cap comes back in process mode as it does in-process: it travels as the
/// `Done` frame's raw payload, so output made of backslashes does not double inside JSON.
#[test]
fn an_output_within_its_cap_survives_the_frame() {
    let code = "export default () => '\\\\'.repeat(4 << 20)";
    let inproc = in_process_executor();
    let r = inproc.run_blocking(StepRequest::new(code, json!({})));
    assert!(r.ok, "in-process: {:?}", r.error);
    assert_eq!(r.output.as_ref().unwrap().get().len(), (8 << 20) + 2);
    let exec = real_process_executor();
    let p = exec.run_blocking(StepRequest::new(code, json!({})));
    assert!(p.ok, "process mode: {:?}", p.error);
}

/// The same from plain JS, no exploit: a step under a 64 MiB limit queues 54 fetches behind 6 slow
/// ones with 5 MiB of headers each; the header cap refuses them, and the supervisor does not grow.
#[test]
fn js_cannot_pin_supervisor_memory_with_queued_fetches() {
    if !alone("hostile_worker::js_cannot_pin_supervisor_memory_with_queued_fetches") {
        return;
    }
    let server = TestServer::start(|_| Reply::ok("slow").delay(Duration::from_secs(3)));
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        egress: server.egress_config(),
        mode: process_mode(),
        ..Default::default()
    })
    .unwrap();
    let code = "export default async ({ u }) => {
        const h = new Headers();
        const v = 'v'.repeat(5 * 1024);
        for (let i = 0; i < 1000; i++) h.append('x-' + i, v);
        const ps = [];
        for (let i = 0; i < 6; i++) ps.push(fetch(u).then(r => r.status, e => e.message));
        for (let i = 0; i < 54; i++) {
            ps.push(fetch(u, { headers: h }).then(r => r.status, e => e.message));
            await new Promise(r => setTimeout(r, 30));
        }
        return (await Promise.all(ps)).length;
    }";
    let mut warm = StepRequest::new("export default () => 1", json!({}));
    warm.limits.memory_mb = Some(64);
    assert!(exec.run_blocking(warm).ok);
    let grew = supervisor_growth(Duration::from_millis(100), || {
        let mut req = StepRequest::new(code, json!({ "u": server.url("api.test", "/slow") }));
        req.connectors = vec![connector(&server, false)];
        req.limits.memory_mb = Some(64);
        let r = exec.run_blocking(req);
        eprintln!("{:?} {:?} records {}", r.output, r.error, r.requests.len());
    });
    eprintln!(
        "supervisor grew by {} MiB for a step limited to 64 MiB",
        grew >> 20
    );
    assert!(
        grew < 128 << 20,
        "a JS step pinned {} MiB in the supervisor",
        grew >> 20
    );
}

/// A body chunk the gateway did not ask for cancels the request: nothing of it reaches the upstream.
#[test]
fn a_body_chunk_nobody_asked_for_cancels_the_request() {
    let server = TestServer::start(|_| Reply::ok("x"));
    let (exec, _path) = fake_worker_executor_with(server.egress_config());
    let mut req = fake_step(
        &format!("unasked_chunk:{}", server.url("api.test", "/up")),
        None,
    );
    req.connectors = vec![connector(&server, false)];
    let r = exec.run_blocking(req);
    assert!(r.ok, "{r:?}");
    assert!(
        server
            .requests()
            .iter()
            .all(|q| !q.body.ends_with(b"unasked")),
        "an unasked-for chunk reached the upstream"
    );
}

/// In process mode a worker process runs the steps of one tenant only: a step of another tenant gets a
/// new worker, and the same tenant keeps its worker.
#[test]
fn a_worker_runs_the_steps_of_one_tenant_only() {
    let exec = real_process_executor();
    let run = |tenant: &str| {
        let mut req = StepRequest::new("export default () => 1", json!({}));
        req.tenant = Some(tenant.into());
        assert!(exec.run_blocking(req).ok);
        exec.worker_pids()
    };
    let first = run("acme");
    assert_eq!(run("acme"), first, "the same tenant kept its worker");
    let other = run("globex");
    assert_eq!(other.len(), 1);
    assert_ne!(other, first, "another tenant's step ran in acme's worker");
    assert_ne!(run("acme"), other);
}
