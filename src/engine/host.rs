//! The engine's side of the ops for one step: it turns `op_codestep_fetch` into an egress call on the
//! shared HTTP runtime, enforces the per-step fetch limits, and collects logs and fetch records.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use deno_core::v8;
use deno_core::ToJsBuffer;
use tokio::sync::Semaphore;

use super::console::{Level, LogBuffer};
use super::limits::Limits;
use super::ops::{FetchArgs, FetchReply, HostFuture, StepHost};
use crate::connector::Connector;
use crate::egress::{Egress, FetchError, FetchRecord, FetchRequest, RedirectMode, RequestLimits};

/// Why the engine stopped a step from the outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    Limit(String),
}

pub struct Host {
    egress: Egress,
    http: tokio::runtime::Handle,
    connectors: Arc<Vec<Connector>>,
    limits: Limits,
    concurrency: Arc<Semaphore>,
    isolate: RefCell<Option<v8::IsolateHandle>>,
    fetches: Cell<u32>,
    inflight: Rc<RefCell<HashMap<u32, tokio::task::AbortHandle>>>,
    pub records: Rc<RefCell<Vec<FetchRecord>>>,
    pub logs: RefCell<LogBuffer>,
    stop: Rc<RefCell<Option<Stop>>>,
    stopped: Rc<tokio::sync::Notify>,
}

impl Host {
    pub fn new(
        egress: Egress,
        http: tokio::runtime::Handle,
        connectors: Arc<Vec<Connector>>,
        limits: Limits,
    ) -> Rc<Self> {
        let concurrency = Arc::new(Semaphore::new(limits.max_concurrent_fetches as usize));
        Rc::new(Host {
            egress,
            http,
            connectors,
            limits,
            concurrency,
            isolate: RefCell::new(None),
            fetches: Cell::new(0),
            inflight: Rc::default(),
            records: Rc::default(),
            logs: RefCell::default(),
            stop: Rc::default(),
            stopped: Rc::default(),
        })
    }

    pub fn set_isolate(&self, handle: v8::IsolateHandle) {
        *self.isolate.borrow_mut() = Some(handle);
    }

    pub fn fetch_count(&self) -> u32 {
        self.fetches.get()
    }

    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop.borrow().clone()
    }

    /// Resolves once the engine has decided to stop the step (see `halt`).
    pub async fn stopped(&self) {
        self.stopped.notified().await
    }

    /// Ends the step with `reason`. Running JS stops at its next check; a step waiting on the event
    /// loop is dropped by the step driver, which waits on `stopped`.
    fn halt(
        stop: &RefCell<Option<Stop>>,
        stopped: &tokio::sync::Notify,
        isolate: Option<&v8::IsolateHandle>,
        reason: Stop,
    ) {
        stop.borrow_mut().get_or_insert(reason);
        stopped.notify_one();
        if let Some(handle) = isolate {
            handle.terminate_execution();
        }
    }

    /// Cancels every request still in flight; called when the step ends, whatever the reason.
    pub fn abort_all(&self) {
        for (_, handle) in self.inflight.borrow_mut().drain() {
            handle.abort();
        }
    }
}

fn redirect_mode(s: &str) -> Result<RedirectMode, String> {
    match s {
        "follow" => Ok(RedirectMode::Follow),
        "manual" => Ok(RedirectMode::Manual),
        "error" => Ok(RedirectMode::Error),
        other => Err(format!("fetch: invalid redirect mode {other:?}")),
    }
}

impl StepHost for Host {
    fn fetch(&self, args: FetchArgs, body: Option<Vec<u8>>) -> HostFuture {
        let redirect = match redirect_mode(&args.redirect) {
            Ok(r) => r,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if self.stop.borrow().is_some() {
            // The step is being stopped; JS may still run a little before termination lands.
            return Box::pin(async { Err("fetch: the step is stopping".to_string()) });
        }
        let n = self.fetches.get() + 1;
        self.fetches.set(n);
        if n > self.limits.max_fetches {
            let msg = format!("step limit: more than {} fetches", self.limits.max_fetches);
            Host::halt(
                &self.stop,
                &self.stopped,
                self.isolate.borrow().as_ref(),
                Stop::Limit(msg.clone()),
            );
            return Box::pin(async move { Err(msg) });
        }
        if body.as_ref().map_or(0, |b| b.len() as u64) > self.limits.max_request_body_bytes {
            let msg = format!(
                "step limit: request body over {} bytes",
                self.limits.max_request_body_bytes
            );
            Host::halt(
                &self.stop,
                &self.stopped,
                self.isolate.borrow().as_ref(),
                Stop::Limit(msg.clone()),
            );
            return Box::pin(async move { Err(msg) });
        }

        let request = FetchRequest {
            method: args.method,
            url: args.url,
            headers: args.headers,
            body,
            redirect,
        };
        let limits = RequestLimits {
            timeout: Duration::from_millis(self.limits.request_timeout_ms),
            max_request_body: self.limits.max_request_body_bytes as usize,
            max_response_body: self.limits.max_response_body_bytes as usize,
        };
        let egress = self.egress.clone();
        let connectors = self.connectors.clone();
        let concurrency = self.concurrency.clone();
        // The request runs on the shared multi-thread HTTP runtime; the step's thread only awaits it.
        let task = self.http.spawn(async move {
            // Beyond the concurrency limit, fetches wait their turn rather than fail, as in browsers.
            let _permit = concurrency.acquire_owned().await;
            egress.fetch(&connectors, request, &limits).await
        });
        let id = args.request_id;
        self.inflight.borrow_mut().insert(id, task.abort_handle());

        let inflight = self.inflight.clone();
        let records = self.records.clone();
        let stop = self.stop.clone();
        let stopped = self.stopped.clone();
        let isolate = self.isolate.borrow().clone();
        Box::pin(async move {
            let joined = task.await;
            inflight.borrow_mut().remove(&id);
            let (result, record) = match joined {
                Ok(pair) => pair,
                Err(_) => return Err("fetch: the request was aborted".to_string()),
            };
            records.borrow_mut().push(record);
            match result {
                Ok(resp) => Ok(FetchReply {
                    status: resp.status,
                    status_text: resp.status_text,
                    headers: resp.headers,
                    url: resp.url,
                    redirected: resp.redirected,
                    body: ToJsBuffer::from(resp.body.into_boxed_slice()),
                }),
                Err(err @ (FetchError::ResponseBodyTooLarge | FetchError::RequestBodyTooLarge)) => {
                    let msg = format!("step limit: {err}");
                    Host::halt(&stop, &stopped, isolate.as_ref(), Stop::Limit(msg.clone()));
                    Err(msg)
                }
                Err(err) => Err(err.to_string()),
            }
        })
    }

    fn abort(&self, request_id: u32) {
        if let Some(handle) = self.inflight.borrow_mut().remove(&request_id) {
            handle.abort();
        }
    }

    fn log(&self, level: u32, message: String) {
        self.logs.borrow_mut().push(Level::from_op(level), message);
    }

    fn random_bytes(&self, buf: &mut [u8]) {
        getrandom_fill(buf);
    }
}

/// Fills `buf` from the OS. A failure here means the machine has no entropy source: nothing sensible
/// can run, so it panics (the pool turns a panicking step into an `internal` error).
fn getrandom_fill(buf: &mut [u8]) {
    use rand::RngCore;
    rand::rngs::OsRng.fill_bytes(buf);
}
