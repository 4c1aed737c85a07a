//! Process mode: each step runs in a worker process (`worker`), confined by `sandbox`, while the
//! connectors, the egress path and every secret stay here, in the supervisor.
//!
//! The supervisor keeps one slot per worker. A slot starts its worker, waits until it is `Ready`,
//! measures its resident memory as the baseline, and then gives it steps one at a time. During a step
//! it relays the isolate's fetch messages to the step's `Gateway` and back, and puts the worker under
//! the `Monitor`. A worker that dies fails only its own step (`memory` when it ran out of memory, else
//! what the monitor killed it for, else `internal`), and the slot starts a new one. Starting failures
//! back off exponentially, so a crash loop cannot spin.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::code_pages;
use super::monitor::{self, Kill, Monitor, Watch, GRACE};
use super::outcome;
use super::protocol::{FromWorker, Outcome, ToWorker};
use super::worker::{SOCKET_FD, WORKER_ARG};
use super::{ipc, socket, ErrorKind, Shared, StepRequest, StepResult, WorkerProgram};

/// The largest frame the supervisor reads from a worker: a step's output or a request body at the
/// operator's caps (both travel raw), plus its logs (1 MiB, up to six times that once escaped as JSON)
/// and some room. Anything larger is a protocol violation, and the worker is killed.
fn max_frame(shared: &Shared) -> usize {
    let caps = &shared.config.caps;
    (caps.max_output_bytes.max(caps.max_request_body_bytes) as usize).saturating_add(8 << 20)
}

/// How long the process making the package snapshot may take, and the largest snapshot it may send.
const PRELOAD_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_PACKAGE_SNAPSHOT: usize = 256 << 20;

/// Makes the package snapshot in a worker process started for that alone (see `preload`), confined
/// like every worker. Its answer is the snapshot, or how it failed.
async fn make_package_snapshot(
    slot: &Slot,
    preload: &crate::engine::protocol::Preload,
) -> Result<Arc<super::PackageSnapshot>, String> {
    let started = Instant::now();
    let mut maker = Worker::spawn(slot, MAX_PACKAGE_SNAPSHOT)
        .await
        .map_err(|e| format!("could not start the process that preloads packages: {e}"))?;
    maker.send(ToWorker::Init {
        heap_bytes: slot.shared.config.caps.heap_bytes(),
        sandbox: slot.sandbox,
        preload: Some(preload.clone()),
        snapshot: Vec::new(),
        streams_in_snapshot: false,
        process_per_step: false,
    });
    let result = match tokio::time::timeout(PRELOAD_TIMEOUT, maker.from.recv()).await {
        Ok(Some(FromWorker::Snapshot { blob, modules })) if !blob.is_empty() => {
            // Only files of the set it was given: the maker is trusted with no more than that.
            let known: std::collections::HashSet<&str> =
                preload.set.files.iter().map(|f| f.id.as_str()).collect();
            let modules = modules
                .into_iter()
                .filter(|m| known.contains(m.as_str()))
                .collect();
            Ok(Arc::new(super::PackageSnapshot { blob, modules }))
        }
        Ok(_) => {
            let why = maker.died().await;
            Err(format!(
                "the packages could not be preloaded ({}){}",
                why.status,
                why.excerpt.map(|e| format!(": {e}")).unwrap_or_default()
            ))
        }
        Err(_) => Err(format!(
            "preloading the packages took longer than {} s",
            PRELOAD_TIMEOUT.as_secs()
        )),
    };
    maker.stop().await;
    match &result {
        Ok(snapshot) => tracing::info!(
            bytes = snapshot.blob.len(),
            modules = snapshot.modules.len(),
            ms = started.elapsed().as_millis() as u64,
            "made the package snapshot every worker starts from"
        ),
        Err(e) => tracing::error!(error = %e, "could not make the package snapshot"),
    }
    result
}

/// How long a new worker may take to say `Ready`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How much of a worker's stdout and stderr is kept, for the log line when it dies.
const OUTPUT_TAIL: usize = 8 * 1024;
/// Frames a worker may have written that the supervisor has not handled yet. The supervisor handles
/// each at once during a step, so a full queue pushes back on the worker instead of growing.
const INBOX: usize = 4;
/// Bytes queued for a worker that it has not read. An honest worker reads promptly and is sent at
/// most one response window per request; one that stops reading is killed rather than buffered for.
const MAX_UNREAD: usize = 16 << 20;
/// CPU time an idle worker may use between two steps (making its next isolate takes a few ms).
const IDLE_CPU: Duration = Duration::from_secs(2);
/// How long a step process may take to exit after `End`.
const STEP_EXIT: Duration = Duration::from_secs(2);

/// What `ProbeSandbox` found: each refused call, and `None` when it was refused as it should be.
pub type Probed = Result<Vec<(String, Option<String>)>, String>;

pub enum Task {
    Step {
        request: Box<StepRequest>,
        reply: oneshot::Sender<StepResult>,
    },
    Probe {
        reply: oneshot::Sender<Probed>,
    },
}

/// The process pool.
pub struct ProcessPool {
    queue: Option<mpsc::UnboundedSender<Task>>,
    monitor: Monitor,
    pids: Arc<Mutex<Vec<Option<u32>>>>,
}

impl ProcessPool {
    pub fn start(
        shared: Arc<Shared>,
        program: &WorkerProgram,
        sandbox: bool,
    ) -> std::io::Result<Self> {
        let program = match program {
            WorkerProgram::CurrentExe => std::env::current_exe()?,
            WorkerProgram::Path(p) => p.clone(),
        };
        if process_per_step(&shared) {
            let started = Instant::now();
            match code_pages::cache_in_huge_pages(&program) {
                Ok(c) => tracing::info!(
                    huge = c.huge,
                    ranges = c.ranges,
                    ms = started.elapsed().as_millis() as u64,
                    "worker code: 2 MiB ranges cached as 2 MiB pages"
                ),
                Err(e) => tracing::info!(error = %e, "worker code: not cached as 2 MiB pages"),
            }
        }
        let monitor = Monitor::start()?;
        let workers = shared.config.workers.max(1);
        let (tx, rx) = mpsc::unbounded_channel::<Task>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let pids = Arc::new(Mutex::new(vec![None; workers]));
        for i in 0..workers {
            let slot = Slot {
                index: i,
                shared: shared.clone(),
                program: program.clone(),
                sandbox,
                queue: rx.clone(),
                monitor: monitor.clone(),
                pids: pids.clone(),
            };
            shared.http.spawn(slot.run());
        }
        Ok(ProcessPool {
            queue: Some(tx),
            monitor,
            pids,
        })
    }

    pub fn submit(&self, task: Task) -> Result<(), Task> {
        match &self.queue {
            Some(q) => q.send(task).map_err(|e| e.0),
            None => Err(task),
        }
    }

    /// The process ids of the live workers.
    pub fn pids(&self) -> Vec<u32> {
        self.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .copied()
            .collect()
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        // Closing the queue ends every slot after its current step; each closes its worker's socket.
        self.queue.take();
        self.monitor.shutdown();
    }
}

struct Slot {
    index: usize,
    shared: Arc<Shared>,
    program: PathBuf,
    sandbox: bool,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Task>>>,
    monitor: Monitor,
    pids: Arc<Mutex<Vec<Option<u32>>>>,
}

impl Slot {
    fn set_pid(&self, pid: Option<u32>) {
        self.pids.lock().unwrap_or_else(|e| e.into_inner())[self.index] = pid;
    }

    async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        // A task taken from the queue for a worker found unfit to run it: it runs on the next worker.
        let mut pending: Option<Task> = None;
        loop {
            let mut worker = match Worker::start(&self).await {
                Ok(w) => {
                    backoff = BACKOFF_MIN;
                    w
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start a worker process");
                    // Work must not wait forever on a worker that cannot start: fail what is queued.
                    let message = format!("no worker process could be started: {e}");
                    if let Some(task) = pending.take() {
                        fail(task, message.clone());
                    }
                    while let Ok(task) = self.queue.lock().await.try_recv() {
                        fail(task, message.clone());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            self.set_pid(Some(worker.pid));
            loop {
                // Between steps the worker is still watched: an idle worker has no reason to grow or
                // to use CPU time, and one that does is replaced before it gets another step.
                let (pid, pidfd, statm) = worker.watched();
                let idle = self.monitor.watch(Watch {
                    pid,
                    pidfd,
                    statm,
                    idle: true,
                    max_rss: worker.idle_limit(&self.shared),
                    max_cpu: IDLE_CPU,
                    cpu_start: monitor::cpu_time(pid).unwrap_or_default(),
                    kill_at: Instant::now() + Duration::from_secs(365 * 24 * 3600),
                });
                let task = match pending.take() {
                    Some(t) => t,
                    None => match self.queue.lock().await.recv().await {
                        Some(t) => t,
                        None => {
                            idle.finish();
                            worker.stop().await;
                            self.set_pid(None);
                            return;
                        }
                    },
                };
                let killed_while_idle = idle.finish();
                let unfit = if killed_while_idle.is_some() {
                    Some("it grew or used CPU time while idle")
                } else if !worker.from.is_empty() {
                    // An honest worker says nothing between `Done` and the next `Run`.
                    Some("it wrote to the supervisor between steps")
                } else if !worker.may_run(task.tenant()) {
                    // A worker serves one tenant: were its process ever taken over through a V8
                    // bug, it would see no other workspace's steps. Routine: no log line.
                    Some("")
                } else {
                    None
                };
                if let Some(why) = unfit {
                    if !why.is_empty() {
                        tracing::warn!(pid = worker.pid, reason = why, "worker replaced");
                    }
                    pending = Some(task);
                    worker.stop().await;
                    break;
                }
                let alive = match task {
                    Task::Step { request, reply } => {
                        let (result, alive) = worker.run(*request, &self).await;
                        let _ = reply.send(result);
                        alive && worker.next_step_process(&self).await
                    }
                    Task::Probe { reply } => {
                        let r = worker.probe().await;
                        let alive = r.is_ok();
                        let _ = reply.send(r);
                        alive
                    }
                };
                if !alive {
                    break;
                }
                // A worker whose idle memory crept up is replaced, so the baseline the monitor
                // measures from stays honest.
                if worker
                    .resident_bytes()
                    .is_some_and(|rss| rss > worker.idle_limit(&self.shared))
                {
                    tracing::warn!(
                        pid = worker.pid,
                        "worker replaced: it held more memory after its step than it may idle"
                    );
                    worker.stop().await;
                    break;
                }
            }
            self.set_pid(None);
        }
    }
}

impl Task {
    /// The tenant a step belongs to (`None` for a probe, which any worker may answer).
    fn tenant(&self) -> Option<&Option<String>> {
        match self {
            Task::Step { request, .. } => Some(&request.tenant),
            Task::Probe { .. } => None,
        }
    }
}

fn fail(task: Task, message: String) {
    match task {
        Task::Step { reply, .. } => {
            let _ = reply.send(outcome::internal(message));
        }
        Task::Probe { reply } => {
            let _ = reply.send(Err(message));
        }
    }
}

struct Worker {
    child: tokio::process::Child,
    pid: u32,
    /// For a worker that forks a process per step (it said so in its first `Ready`): that process.
    step: Option<StepProcess>,
    to: mpsc::UnboundedSender<ipc::Outgoing>,
    /// Bytes sent to the worker that are not on the socket yet.
    unread: Arc<std::sync::atomic::AtomicUsize>,
    from: mpsc::Receiver<FromWorker>,
    /// The tenant of the steps this worker ran; `None` while it has run none.
    served: Option<Option<String>>,
    output: Arc<Mutex<VecDeque<u8>>>,
    output_done: Option<tokio::task::JoinHandle<()>>,
    baseline: u64,
    /// The most the last step's process could hold: it may still hold that while it exits.
    step_max_rss: u64,
    /// Package files (by content hash) this worker was sent: it keeps their sources, so a later job
    /// names them instead of carrying them again.
    sent: std::collections::HashSet<u64>,
    /// The worker's own pidfd and `/proc/PID/statm`, for the monitor while it runs steps itself.
    pidfd: Option<Arc<OwnedFd>>,
    statm: Arc<std::fs::File>,
}

impl Worker {
    /// Starts a worker process and its pipes; it waits for `Init`. `max` is the largest frame it may send.
    async fn spawn(slot: &Slot, max: usize) -> std::io::Result<Worker> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let mut cmd = tokio::process::Command::new(&slot.program);
        // No environment: whatever secrets the operator's environment holds (a connectors file's
        // `secret_env`, the master key, a database URL) stay in the supervisor.
        cmd.arg(WORKER_ARG)
            .env_clear()
            // The one variable a worker gets: V8 reads the time zone from it, as the sandbox lets it
            // open no zoneinfo file.
            .env("TZ", std::env::var("TZ").unwrap_or_else(|_| "UTC".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if process_per_step(&slot.shared) {
            // Every page a step process writes in the allocator's heap is a copy of its worker's.
            // glibc's per-thread cache refills itself from the heap's free lists, writing into up to
            // seven free chunks at a time, anywhere in the heap: without it, about 18 fewer pages are
            // copied per step process (`perf stat -e page-faults`, 12 interleaved rounds).
            cmd.env("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0");
        }
        let fd = theirs.as_raw_fd();
        // SAFETY: only async-signal-safe calls (fcntl, dup2, prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == SOCKET_FD {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, SOCKET_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // A worker never outlives the supervisor that started it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        drop(theirs);
        let pid = child.id().unwrap_or(0);
        // Our own child, not yet reaped: its `statm` is there unless something is badly wrong.
        let statm = monitor::open_statm(pid as i32)
            .map(Arc::new)
            .ok_or_else(|| std::io::Error::other("cannot open the worker's statm"))?;

        let output = Arc::new(Mutex::new(VecDeque::new()));
        let mut streams: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = Vec::new();
        if let Some(s) = child.stdout.take() {
            streams.push(Box::new(s));
        }
        if let Some(s) = child.stderr.take() {
            streams.push(Box::new(s));
        }
        let tail = output.clone();
        let output_done = tokio::spawn(async move {
            let readers = streams.into_iter().map(|mut s| {
                let tail = tail.clone();
                async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                        t.extend(&buf[..n]);
                        while t.len() > OUTPUT_TAIL {
                            t.pop_front();
                        }
                    }
                }
            });
            futures::future::join_all(readers).await;
        });

        let (rd, wr) = socket::split(ours)?;
        let (to, to_rx) = mpsc::unbounded_channel::<ipc::Outgoing>();
        let unread = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(ipc::write_all(wr, to_rx, Some(unread.clone())));
        let mut rd = ipc::buffered(rd);
        let (from_tx, from) = mpsc::channel::<FromWorker>(INBOX);
        tokio::spawn(async move {
            // Until the end of the stream, or a frame no honest worker writes: either way this worker
            // is done, and the receiver sees the channel close.
            while let Ok(Some(msg)) = ipc::read::<FromWorker, _>(&mut rd, max).await {
                if from_tx.send(msg).await.is_err() {
                    break;
                }
            }
        });

        Ok(Worker {
            child,
            pid,
            step: None,
            to,
            unread,
            from,
            served: None,
            output,
            output_done: Some(output_done),
            baseline: 0,
            step_max_rss: 0,
            sent: Default::default(),
            pidfd: monitor::pidfd_open(pid as i32).map(Arc::new),
            statm,
        })
    }

    async fn start(slot: &Slot) -> std::io::Result<Worker> {
        let snapshot = match &slot.shared.preload {
            None => Vec::new(),
            Some(preload) => slot
                .shared
                .package_snapshot
                .get_or_init(|| make_package_snapshot(slot, preload))
                .await
                .clone()
                .map_err(std::io::Error::other)?
                .blob
                .clone(),
        };
        let mut worker = Worker::spawn(slot, max_frame(&slot.shared)).await?;
        worker.send(ToWorker::Init {
            heap_bytes: slot.shared.config.caps.heap_bytes(),
            sandbox: slot.sandbox,
            preload: None,
            snapshot,
            streams_in_snapshot: slot.shared.config.packages.is_some(),
            process_per_step: process_per_step(&slot.shared),
        });
        let forks = match tokio::time::timeout(START_TIMEOUT, worker.from.recv()).await {
            Ok(Some(FromWorker::Ready { forks, .. })) => forks,
            Ok(_) => {
                let why = worker.died().await;
                return Err(std::io::Error::other(format!(
                    "the worker exited while starting ({}){}",
                    why.status,
                    why.excerpt.map(|e| format!(": {e}")).unwrap_or_default()
                )));
            }
            Err(_) => {
                worker.stop().await;
                return Err(std::io::Error::other("the worker did not start in time"));
            }
        };
        if forks {
            if let Err(e) = worker.take_step_process() {
                worker.stop().await;
                return Err(e);
            }
        }
        worker.baseline = worker.resident_bytes().unwrap_or(0);
        Ok(worker)
    }

    /// The process steps run in, its pidfd and its `statm`.
    fn watched(&self) -> (i32, Option<Arc<OwnedFd>>, Arc<std::fs::File>) {
        match &self.step {
            Some(s) => (s.pid as i32, Some(s.fd.clone()), s.statm.clone()),
            None => (self.pid as i32, self.pidfd.clone(), self.statm.clone()),
        }
    }

    /// The resident memory of the process steps run in.
    fn resident_bytes(&self) -> Option<u64> {
        monitor::resident_bytes_in(&self.watched().2)
    }

    /// Takes the step process this worker just forked: its one child, found from the kernel (a
    /// process's word for its own pid could name any process), and held by a pidfd.
    fn take_step_process(&mut self) -> std::io::Result<()> {
        let step = StepProcess::of(self.pid)?;
        self.step = Some(step);
        // Package sources sent to the previous step process went with it.
        self.sent.clear();
        Ok(())
    }

    /// After a step of a worker that forks: ends its step process (`End`, and it exits; it is watched
    /// until it has), then takes the next one once it says `Ready`. False when any of it fails: the
    /// worker is done.
    async fn next_step_process(&mut self, slot: &Slot) -> bool {
        let Some(old) = self.step.take() else {
            return true;
        };
        self.send(ToWorker::End);
        let watched = slot.monitor.watch(Watch {
            pid: old.pid as i32,
            pidfd: Some(old.fd.clone()),
            statm: old.statm.clone(),
            idle: false,
            // What its step could hold, not what an idle worker may: it holds its step's memory
            // until it is gone.
            max_rss: self.step_max_rss,
            max_cpu: IDLE_CPU,
            cpu_start: monitor::cpu_time(old.pid as i32).unwrap_or_default(),
            kill_at: Instant::now() + STEP_EXIT,
        });
        let exited = old.exited().await;
        let killed = watched.finish();
        if killed.is_some() || !exited {
            tracing::warn!(
                pid = self.pid,
                step_process = old.pid,
                killed = ?killed,
                exited,
                "worker replaced: its step process was killed or did not exit after its step"
            );
            return false;
        }
        match tokio::time::timeout(START_TIMEOUT, self.from.recv()).await {
            Ok(Some(FromWorker::Ready { .. })) => {}
            other => {
                let why = match other {
                    Err(_) => "no step process was ready in time",
                    Ok(None) => "the worker's stream ended",
                    Ok(Some(_)) => "the worker wrote something other than Ready",
                };
                tracing::warn!(pid = self.pid, reason = why, "worker replaced");
                return false;
            }
        }
        if let Err(e) = self.take_step_process() {
            tracing::warn!(pid = self.pid, error = %e, "worker replaced");
            return false;
        }
        self.baseline = self.resident_bytes().unwrap_or(0);
        true
    }

    fn send(&self, msg: ToWorker) {
        let out = ipc::Outgoing::new(msg);
        self.unread
            .fetch_add(out.frame.len(), std::sync::atomic::Ordering::Relaxed);
        let _ = self.to.send(out);
    }

    /// Whether the worker has left more than its allowance of what it was sent unread.
    fn stopped_reading(&self, allowance: usize) -> bool {
        self.unread.load(std::sync::atomic::Ordering::Relaxed) > allowance
    }

    /// The resident memory an idle worker may have: its baseline plus half a step's memory limit (the
    /// allocator keeps some of what a step freed).
    fn idle_limit(&self, shared: &Shared) -> u64 {
        self.baseline + shared.config.caps.memory_bytes() / 2
    }

    /// Whether this worker may run a step of `tenant` (a probe: any worker).
    fn may_run(&self, tenant: Option<&Option<String>>) -> bool {
        match (tenant, &self.served) {
            (None, _) | (_, None) => true,
            (Some(t), Some(served)) => t == served,
        }
    }

    /// Runs one step; the flag says whether the worker is still usable.
    async fn run(&mut self, request: StepRequest, slot: &Slot) -> (StepResult, bool) {
        let shared = &slot.shared;
        self.served = Some(request.tenant.clone());
        let super::Started {
            job,
            limits,
            gateway,
            from_gateway: mut gw_rx,
            mut search,
            at: started,
        } = super::Started::new(request, shared);
        let mut job = job;
        for file in job.modules.files.iter_mut().filter(|f| f.hash != 0) {
            if !self.sent.insert(file.hash) {
                file.source = String::new();
                file.cached = true;
            }
        }
        self.step_max_rss = self.baseline + limits.memory_bytes();
        let (pid, pidfd, statm) = self.watched();
        let watched = slot.monitor.watch(Watch {
            pid,
            pidfd,
            statm,
            idle: false,
            max_rss: self.step_max_rss,
            max_cpu: limits.cpu_time(),
            cpu_start: monitor::cpu_time(pid).unwrap_or_default(),
            kill_at: started + limits.wall_time() + GRACE,
        });
        let job = ToWorker::Run(Box::new(job));
        self.send(job);
        // The job itself may be large (code and input); beyond it, the worker must keep reading.
        let allowance = self
            .unread
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_add(MAX_UNREAD);
        let mut halted = false;
        let reported: Option<Outcome> = loop {
            tokio::select! {
                msg = self.from.recv() => match msg {
                    Some(FromWorker::Host(m)) => gateway.handle(m),
                    Some(FromWorker::HeapChunk { data }) => {
                        if let Some(s) = search.as_mut() {
                            s.feed(&data);
                        }
                    }
                    Some(FromWorker::Done(o)) => break Some(*o),
                    // Not a message of a step: the worker broke the protocol.
                    Some(_) | None => break None,
                },
                Some(m) = gw_rx.recv() => {
                    self.send(ToWorker::Gateway(m));
                    if self.stopped_reading(allowance) {
                        // It asks and does not read: a worker that broke the protocol.
                        break None;
                    }
                }
                () = gateway.halted(), if !halted => {
                    halted = true;
                    watched.kill_by(Instant::now() + GRACE);
                }
            }
        };
        let killed = watched.finish();
        let summary = gateway.finish().await;
        drop(gw_rx);
        let secret_in_heap = search.map(|s| s.found());
        let max_output = limits.max_output_bytes;
        match (reported, killed) {
            (Some(o), None) => (
                outcome::assemble(o, summary, started, max_output, secret_in_heap),
                true,
            ),
            (_, killed) => {
                let why = self.died().await;
                let (kind, message) = match killed {
                    Some(Kill::Memory) => (
                        ErrorKind::Memory,
                        format!(
                            "step ran out of memory: its worker grew past {} MiB over its baseline",
                            limits.memory_mb
                        ),
                    ),
                    Some(Kill::Cpu) => (
                        ErrorKind::Timeout,
                        format!("step exceeded its CPU time of {} ms", limits.cpu_time_ms),
                    ),
                    Some(Kill::Deadline) => (
                        ErrorKind::Timeout,
                        format!(
                            "step exceeded its wall time of {} ms and did not stop; its worker was killed",
                            limits.timeout_ms
                        ),
                    ),
                    None if why.out_of_memory => (
                        ErrorKind::Memory,
                        "step ran out of memory: V8 stopped its worker process".to_string(),
                    ),
                    None => (
                        ErrorKind::Internal,
                        format!("the worker process running this step died ({})", why.status),
                    ),
                };
                tracing::warn!(
                    pid = self.pid,
                    status = %why.status,
                    kind = ?kind,
                    last_output = why.excerpt.as_deref().unwrap_or(""),
                    "worker ended during a step; it is replaced"
                );
                (
                    outcome::assemble(
                        Outcome::failed(kind, message),
                        summary,
                        started,
                        max_output,
                        None,
                    ),
                    false,
                )
            }
        }
    }

    async fn probe(&mut self) -> Probed {
        self.send(ToWorker::ProbeSandbox);
        match self.from.recv().await {
            Some(FromWorker::Probed(r)) => Ok(r),
            _ => Err(format!("the worker died ({})", self.died().await.status)),
        }
    }

    /// Makes sure the worker is gone, and says how it ended.
    async fn died(&mut self) -> Death {
        if let Some(step) = self.step.take() {
            // The worker reaps its step process and ends the way it did; killing the worker first
            // would leave the step process to whatever reaps orphans.
            monitor::kill_pidfd(&step.fd);
            let _ = tokio::time::timeout(STEP_EXIT, self.child.wait()).await;
        }
        let _ = self.child.start_kill();
        let status = match self.child.wait().await {
            Ok(s) => describe(s),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        if let Some(t) = self.output_done.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), t).await;
        }
        let tail = {
            let t = self.output.lock().unwrap_or_else(|e| e.into_inner());
            String::from_utf8_lossy(&t.iter().copied().collect::<Vec<u8>>()).into_owned()
        };
        let lower = tail.to_ascii_lowercase();
        let out_of_memory = lower.contains("out of memory") || lower.contains("invalid size error");
        let excerpt = tail
            .lines()
            .map(str::trim)
            .find(|l| l.contains("Fatal") || l.contains("error"))
            .map(|l| l.chars().take(200).collect());
        Death {
            status,
            out_of_memory,
            excerpt,
        }
    }

    /// Ends an idle worker: closing its socket makes it exit; it is killed if it does not.
    async fn stop(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        self.to = closed;
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

struct Death {
    status: String,
    out_of_memory: bool,
    excerpt: Option<String>,
}

/// The process a worker forked to run its next step.
struct StepProcess {
    pid: u32,
    fd: Arc<OwnedFd>,
    statm: Arc<std::fs::File>,
}

impl StepProcess {
    /// The one child process of `worker`, read from `/proc`, with a pidfd that names it for good.
    fn of(worker: u32) -> std::io::Result<StepProcess> {
        let file = std::fs::File::open(format!("/proc/{worker}/task/{worker}/children"))?;
        let mut buf = [0u8; 1024];
        let list = monitor::read_whole_at(&file, &mut buf)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| std::io::Error::other("cannot read the worker's child processes"))?;
        let pids: Vec<u32> = list
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        let [pid] = pids[..] else {
            return Err(std::io::Error::other(format!(
                "the worker has {} child processes, not one",
                pids.len()
            )));
        };
        let fd = monitor::pidfd_open(pid as i32).ok_or_else(std::io::Error::last_os_error)?;
        let statm = monitor::open_statm(pid as i32)
            .map(Arc::new)
            .ok_or_else(|| std::io::Error::other("cannot open the step process's statm"))?;
        // Still the worker's child now that the pidfd and `statm` are open, and (the poll below) not
        // exited: so both name that process, which has held the pid throughout (the worker reaps its
        // children, so the pid read above could have been reused in between).
        if monitor::parent_of(pid as i32) != Some(worker as i32) {
            return Err(std::io::Error::other("the worker's step process is gone"));
        }
        // An exited child not yet reaped is listed too: the previous step process, were a `Ready`
        // forged by it taken for the next one's.
        if monitor::pidfd_exited(&fd) != Some(false) {
            return Err(std::io::Error::other(
                "the worker's one child has already exited",
            ));
        }
        Ok(StepProcess {
            pid,
            fd: Arc::new(fd),
            statm,
        })
    }

    /// Waits until the process has exited (a pidfd turns readable), for at most `STEP_EXIT`.
    async fn exited(&self) -> bool {
        // SAFETY: the AsyncFd holds its own reference to the pidfd, which stays open while it is
        // registered.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                self.fd.clone(),
                tokio::io::Interest::READABLE,
            )
        };
        let Ok(fd) = registered else {
            return false;
        };
        tokio::time::timeout(STEP_EXIT, fd.readable())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Whether a server's workers fork a process for each step. Not with a package directory: its
/// sources and their compiled code are kept by a worker process from step to step, and a step
/// process would lose them when it ends.
fn process_per_step(shared: &Shared) -> bool {
    shared.config.packages.is_none()
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}
