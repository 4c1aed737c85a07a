//! The worker pool: a fixed set of threads, each running one step at a time with one live isolate, on
//! its own current-thread tokio runtime. HTTP runs on one shared multi-thread runtime, so a step's
//! thread is never needed to make network progress.

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

use super::watchdog::Watchdog;
use super::{
    runtime, step, ErrorKind, ExecutorConfig, Shared, StepError, StepRequest, StepResult, StepStats,
};
use crate::egress::Egress;

struct Job {
    request: StepRequest,
    reply: oneshot::Sender<StepResult>,
}

/// Runs steps. Cheap to share behind an `Arc`; `run` may be called from many tasks at once, and up to
/// `workers` steps run at the same time while the rest wait in order.
pub struct Executor {
    queue: Option<mpsc::Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
    http: Option<tokio::runtime::Runtime>,
    worker_count: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("egress configuration: {0}")]
    Egress(String),
    #[error("could not start the executor: {0}")]
    Start(#[from] std::io::Error),
}

impl Executor {
    /// Builds the pool. Call it from the main thread before other threads make V8 isolates.
    pub fn new(config: ExecutorConfig) -> Result<Executor, ExecutorError> {
        runtime::init_platform();
        let http = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("codestep-http")
            .enable_all()
            .build()?;
        let egress = {
            let _enter = http.enter();
            Egress::new(config.egress.clone()).map_err(|e| ExecutorError::Egress(e.to_string()))?
        };
        let worker_count = config.workers.max(1);
        let shared = Arc::new(Shared {
            config,
            egress,
            http: http.handle().clone(),
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(worker_count);
        for i in 0..worker_count {
            let rx = rx.clone();
            let shared = shared.clone();
            let watchdog = Watchdog::start(format!("codestep-watch-{i}"))?;
            workers.push(
                thread::Builder::new()
                    .name(format!("codestep-worker-{i}"))
                    .spawn(move || worker_loop(&rx, &shared, &watchdog))?,
            );
        }
        Ok(Executor {
            queue: Some(tx),
            workers,
            http: Some(http),
            worker_count,
        })
    }

    pub fn workers(&self) -> usize {
        self.worker_count
    }

    /// Runs one step and waits for its result.
    pub async fn run(&self, request: StepRequest) -> StepResult {
        let (reply, rx) = oneshot::channel();
        let sent = match &self.queue {
            Some(q) => q.send(Job { request, reply }).is_ok(),
            None => false,
        };
        if !sent {
            return internal_error("the executor has shut down".into());
        }
        rx.await
            .unwrap_or_else(|_| internal_error("the worker running this step died".into()))
    }

    /// `run` for callers without an async runtime (the CLI, benchmarks).
    pub fn run_blocking(&self, request: StepRequest) -> StepResult {
        futures::executor::block_on(self.run(request))
    }
}

fn worker_loop(rx: &Mutex<mpsc::Receiver<Job>>, shared: &Shared, watchdog: &Watchdog) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
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
            step::run(request, shared, &rt, watchdog, prepared)
        }))
        .unwrap_or_else(|_| {
            internal_error("the step crashed the engine; it has been discarded".into())
        });
        let _ = reply.send(result);
    }
}

fn internal_error(message: String) -> StepResult {
    StepResult {
        ok: false,
        output: None,
        error: Some(StepError {
            kind: ErrorKind::Internal,
            message,
            stack: None,
        }),
        logs: Vec::new(),
        requests: Vec::new(),
        stats: StepStats::default(),
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Closing the queue ends every worker after its current step.
        self.queue.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(http) = self.http.take() {
            // Dropping a runtime from inside another runtime's task would panic; this never blocks.
            http.shutdown_background();
        }
    }
}
