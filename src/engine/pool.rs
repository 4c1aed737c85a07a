//! In-process mode: a fixed set of threads in the embedding process, each running one step at a time
//! with one live isolate, on its own current-thread tokio runtime. The step's gateway runs on the shared
//! HTTP runtime, exactly as in process mode, so the isolate side never touches a connector; but the
//! secrets share the address space with untrusted JS, and a V8 abort ends the whole process. This is the
//! weaker mode, for embedding and tests (security model, "Containment").

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

use super::outcome;
use super::step::{self, Link};
use super::watchdog::Watchdog;
use super::{Shared, StepRequest, StepResult};

struct Job {
    request: StepRequest,
    reply: oneshot::Sender<StepResult>,
}

pub struct ThreadPool {
    queue: Option<mpsc::Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl ThreadPool {
    pub fn start(shared: Arc<Shared>) -> std::io::Result<ThreadPool> {
        let count = shared.config.workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(count);
        for i in 0..count {
            let rx = rx.clone();
            let shared = shared.clone();
            let watchdog = Watchdog::new(format!("codestep-watch-{i}"));
            workers.push(
                thread::Builder::new()
                    .name(format!("codestep-worker-{i}"))
                    .spawn(move || worker_loop(&rx, &shared, &watchdog))?,
            );
        }
        Ok(ThreadPool {
            queue: Some(tx),
            workers,
        })
    }

    pub fn submit(&self, request: StepRequest, reply: oneshot::Sender<StepResult>) -> bool {
        match &self.queue {
            Some(q) => q.send(Job { request, reply }).is_ok(),
            None => false,
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // Closing the queue ends every worker after its current step.
        self.queue.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker_loop(rx: &Mutex<mpsc::Receiver<Job>>, shared: &Shared, watchdog: &Watchdog) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Web Crypto runs its algorithms on this runtime's blocking threads: one, so a step that
        // starts many jobs gets them in turn, not one thread (and one core) each.
        .max_blocking_threads(1)
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return,
    };
    let default_heap = shared.config.caps.heap_bytes();
    loop {
        // The next step's isolate is made while the worker waits for it. The previous one is gone by
        // now, so the thread still has one live isolate at a time.
        let prepared = step::prepare(default_heap, &rt).ok();
        let job = {
            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            guard.recv()
        };
        let Ok(Job { request, reply }) = job else {
            return;
        };
        // A panic in one step must not take the worker (or the process) down with it.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_one(request, shared, &rt, watchdog, prepared)
        }))
        .unwrap_or_else(|_| {
            outcome::internal("the step crashed the engine; it has been discarded")
        });
        let _ = reply.send(result);
    }
}

fn run_one(
    request: StepRequest,
    shared: &Shared,
    rt: &tokio::runtime::Runtime,
    watchdog: &Watchdog,
    prepared: Option<step::Prepared>,
) -> StepResult {
    let super::Started {
        job,
        limits,
        gateway,
        from_gateway: mut gw_rx,
        mut search,
        at: started,
    } = super::Started::new(request, shared);
    let to_gateway = gateway.clone();
    let link = Link {
        send: Box::new(move |m| to_gateway.handle(m)),
        connect: Box::new(move |host| {
            Box::pin(async move {
                while let Some(m) = gw_rx.recv().await {
                    host.deliver(m);
                }
            })
        }),
    };
    let mut feed = |chunk: &[u8]| {
        if let Some(s) = search.as_mut() {
            s.feed(chunk);
        }
    };
    let reported = step::run(job, link, rt, watchdog, prepared, Some(&mut feed));
    let summary = rt.block_on(gateway.finish());
    let secret_in_heap = search.map(|s| s.found());
    outcome::assemble(
        reported,
        summary,
        started,
        limits.max_output_bytes,
        secret_in_heap,
    )
}
