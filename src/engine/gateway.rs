//! The gateway: the side of a step that holds its connectors and does its fetches. It runs where the
//! secrets are (the supervisor, or the embedding process in-process), never in a worker.
//!
//! It takes `HostMsg`s from the step's isolate, which may be hostile, and answers with `GatewayMsg`s
//! holding only what JS may see. It enforces the per-step fetch limits (count, concurrency, body sizes
//! as bytes flow), bounds what it sends ahead of what JS has read, and keeps a `FetchRecord` for every
//! request, whatever ended it: finished, failed, aborted by JS, or cut when the step ended.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::limits::Limits;
use super::protocol::{FetchStart, GatewayMsg, HostMsg, MAX_BODY_CHUNK, RESPONSE_WINDOW};
use crate::connector::Connector;
use crate::egress::{
    BodyStream, Egress, FetchError, FetchRecord, FetchRequest, RedirectMode, RequestLimits,
};

/// How long a cancelled fetch may take to write its record when the step ends.
const RECORD_GRACE: Duration = Duration::from_secs(2);

/// What the gateway saw of a step, joined to the isolate's `Outcome` at the end.
#[derive(Debug, Default)]
pub struct Summary {
    pub records: Vec<FetchRecord>,
    pub fetches: u32,
    /// Set when a step limit was hit here: the step ends with `limit` and this message.
    pub halted: Option<String>,
}

struct Request {
    cancel: CancellationToken,
    body: Option<mpsc::Sender<Vec<u8>>>,
    /// Body chunks asked for with `BodyWanted` and not yet received.
    wanted: Arc<AtomicU32>,
    window: Arc<Semaphore>,
}

#[derive(Default)]
struct State {
    fetches: u32,
    /// Bytes of requests (URL, headers, body) waiting for a concurrency slot: held here, on the
    /// step's account.
    waiting_bytes: u64,
    requests: HashMap<u32, Request>,
    records: Vec<FetchRecord>,
    halted: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Inner {
    egress: Egress,
    connectors: Vec<Connector>,
    limits: Limits,
    out: mpsc::UnboundedSender<GatewayMsg>,
    concurrency: Arc<Semaphore>,
    cancel: CancellationToken,
    halt: tokio::sync::Notify,
    state: Mutex<State>,
}

/// One step's gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
    http: tokio::runtime::Handle,
}

impl Gateway {
    /// A gateway for one step. Its fetches run on `http`; what it has to say goes to `out`.
    pub fn new(
        egress: Egress,
        http: tokio::runtime::Handle,
        connectors: Vec<Connector>,
        limits: Limits,
        out: mpsc::UnboundedSender<GatewayMsg>,
    ) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                egress,
                concurrency: Arc::new(Semaphore::new(limits.max_concurrent_fetches as usize)),
                connectors,
                limits,
                out,
                cancel: CancellationToken::new(),
                halt: tokio::sync::Notify::new(),
                state: Mutex::default(),
            }),
            http,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once a limit was hit here and the step was told to stop.
    pub async fn halted(&self) {
        loop {
            let notified = self.inner.halt.notified();
            if self.state().halted.is_some() {
                return;
            }
            notified.await;
        }
    }

    fn halt(inner: &Inner, message: String) {
        let first = {
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let first = st.halted.is_none();
            st.halted.get_or_insert(message.clone());
            first
        };
        if first {
            let _ = inner.out.send(GatewayMsg::Halt { message });
            inner.halt.notify_waiters();
        }
    }

    fn fail(&self, id: u32, message: String) {
        let _ = self.inner.out.send(GatewayMsg::Failed { id, message });
    }

    /// Handles one message from the isolate.
    pub fn handle(&self, msg: HostMsg) {
        match msg {
            HostMsg::Fetch(f) => self.start(f),
            HostMsg::BodyChunk { id, data } => {
                let mut st = self.state();
                let Some(req) = st.requests.get_mut(&id) else {
                    return;
                };
                // Only what was asked for: a chunk before `BodyWanted` would be read before the
                // policy check.
                let asked = req
                    .wanted
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok();
                let accepted = asked
                    && data.len() <= MAX_BODY_CHUNK
                    && req
                        .body
                        .as_ref()
                        .is_some_and(|tx| tx.try_send(data).is_ok());
                if !accepted {
                    // More than was asked for, or too big: the isolate broke the protocol.
                    req.cancel.cancel();
                }
            }
            HostMsg::BodyEnd { id } => {
                if let Some(req) = self.state().requests.get_mut(&id) {
                    req.body = None;
                }
            }
            HostMsg::Consumed { id, bytes } => {
                if let Some(req) = self.state().requests.get(&id) {
                    // Never more credit than one window, whatever the isolate claims it read.
                    let room = RESPONSE_WINDOW.saturating_sub(req.window.available_permits());
                    req.window.add_permits((bytes as usize).min(room));
                }
            }
            HostMsg::Abort { id } => {
                if let Some(req) = self.state().requests.get(&id) {
                    req.cancel.cancel();
                }
            }
        }
    }

    fn start(&self, f: FetchStart) {
        let FetchStart {
            id,
            method,
            url,
            headers,
            redirect,
            stream,
            body,
        } = f;
        let limits = &self.inner.limits;
        let redirect = match redirect.as_str() {
            "follow" => RedirectMode::Follow,
            "manual" => RedirectMode::Manual,
            "error" => RedirectMode::Error,
            other => {
                let shown: String = other.chars().take(32).collect();
                return self.fail(id, format!("fetch: invalid redirect mode {shown:?}"));
            }
        };
        let cancel = self.inner.cancel.child_token();
        let window = Arc::new(Semaphore::new(RESPONSE_WINDOW));
        let wanted = Arc::new(AtomicU32::new(0));
        let held = (url.len()
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
            + body.as_ref().map_or(0, Vec::len)) as u64;
        let (body_tx, body_rx) = if stream {
            let (tx, rx) = mpsc::channel::<Vec<u8>>(1);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        {
            let mut st = self.state();
            if st.halted.is_some() {
                drop(st);
                return self.fail(id, "fetch: the step is stopping".into());
            }
            if st.requests.contains_key(&id) {
                drop(st);
                return self.fail(id, "fetch: request id already in use".into());
            }
            st.fetches += 1;
            if st.fetches > limits.max_fetches {
                drop(st);
                let msg = format!("step limit: more than {} fetches", limits.max_fetches);
                Gateway::halt(&self.inner, msg.clone());
                return self.fail(id, msg);
            }
            if body.as_ref().map_or(0, Vec::len) as u64 > limits.max_request_body_bytes {
                drop(st);
                let msg = limits.request_body_over();
                Gateway::halt(&self.inner, msg.clone());
                return self.fail(id, msg);
            }
            if st.waiting_bytes + held > limits.memory_bytes() {
                drop(st);
                let msg = format!(
                    "step limit: fetches waiting for a connection hold more than {} MiB",
                    limits.memory_mb
                );
                Gateway::halt(&self.inner, msg.clone());
                return self.fail(id, msg);
            }
            st.waiting_bytes += held;
            st.requests.insert(
                id,
                Request {
                    cancel: cancel.clone(),
                    body: body_tx,
                    wanted: wanted.clone(),
                    window: window.clone(),
                },
            );
        }
        let request = FetchRequest {
            method,
            url,
            headers,
            body,
            redirect,
        };
        let over_limit = Arc::new(AtomicBool::new(false));
        let stream = body_rx.map(|rx| {
            streamed_body(
                rx,
                self.inner.out.clone(),
                id,
                wanted,
                limits.max_request_body_bytes,
                over_limit.clone(),
            )
        });
        let inner = self.inner.clone();
        let method = request.method.clone();
        let task = self.http.spawn(async move {
            let fetch = Fetch {
                id,
                held,
                cancel,
                window,
                over_limit,
            };
            // A bug in the egress path must not leave JS waiting or the request unrecorded.
            let record = AssertUnwindSafe(run_fetch(&inner, fetch, request, stream))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    let _ = inner.out.send(GatewayMsg::Failed {
                        id,
                        message: "fetch failed: an internal error in codestep".into(),
                    });
                    let mut r = FetchRecord::start(&method);
                    r.error = Some("internal".into());
                    vec![r]
                });
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            st.requests.remove(&id);
            st.records.extend(record);
        });
        let mut st = self.state();
        st.tasks.retain(|t| !t.is_finished());
        st.tasks.push(task);
    }

    /// Ends the step's fetches: cancels what is still in flight, waits for every record, and says
    /// what the gateway saw.
    pub async fn finish(&self) -> Summary {
        self.inner.cancel.cancel();
        let tasks = std::mem::take(&mut self.state().tasks);
        for task in tasks {
            let _ = tokio::time::timeout(RECORD_GRACE, task).await;
        }
        let mut st = self.state();
        let mut records = std::mem::take(&mut st.records);
        records.sort_by_key(|r| r.at_ms);
        Summary {
            records,
            fetches: st.fetches,
            halted: st.halted.clone(),
        }
    }
}

/// A body JS streams: each chunk is asked for with `BodyWanted` once the request is being sent (so
/// nothing is read from JS before the policy check passed), and its size is counted as it flows.
fn streamed_body(
    rx: mpsc::Receiver<Vec<u8>>,
    out: mpsc::UnboundedSender<GatewayMsg>,
    id: u32,
    wanted: Arc<AtomicU32>,
    max: u64,
    over_limit: Arc<AtomicBool>,
) -> BodyStream {
    let sent = Arc::new(AtomicU64::new(0));
    Box::pin(futures::stream::unfold(rx, move |mut rx| {
        let out = out.clone();
        let sent = sent.clone();
        let over_limit = over_limit.clone();
        let wanted = wanted.clone();
        async move {
            wanted.fetch_add(1, Ordering::Relaxed);
            let _ = out.send(GatewayMsg::BodyWanted { id });
            let chunk = rx.recv().await?;
            let total = sent.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            if total > max {
                over_limit.store(true, Ordering::Relaxed);
                return Some((
                    Err(std::io::Error::other("request body over the limit")),
                    rx,
                ));
            }
            Some((Ok(chunk), rx))
        }
    }))
}

/// One fetch, from the policy check to the end of its body. Returns its records (one per hop that
/// reached an upstream, the last hop's last), or none when it was cancelled before it left the host
/// (waiting for a concurrency slot).
/// What a fetch task needs besides its request.
struct Fetch {
    id: u32,
    /// Bytes of the request counted in `State::waiting_bytes` until it gets a slot.
    held: u64,
    cancel: CancellationToken,
    window: Arc<Semaphore>,
    over_limit: Arc<AtomicBool>,
}

async fn run_fetch(
    inner: &Inner,
    fetch: Fetch,
    request: FetchRequest,
    stream: Option<BodyStream>,
) -> Vec<FetchRecord> {
    let Fetch {
        id,
        held,
        cancel,
        window,
        over_limit,
    } = fetch;
    // Beyond the concurrency limit, fetches wait their turn rather than fail, as in browsers.
    let permit = tokio::select! {
        p = inner.concurrency.clone().acquire_owned() => p.ok(),
        () = cancel.cancelled() => None,
    };
    {
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.waiting_bytes = st.waiting_bytes.saturating_sub(held);
    }
    let Some(_permit) = permit else {
        let _ = inner.out.send(GatewayMsg::Failed {
            id,
            message: FetchError::Aborted.to_string(),
        });
        // It never left the host: nothing to record.
        return Vec::new();
    };
    let limits = RequestLimits {
        timeout: Duration::from_millis(inner.limits.request_timeout_ms),
        max_request_body: inner.limits.max_request_body_bytes as usize,
        max_response_body: inner.limits.max_response_body_bytes as usize,
    };
    let started = Instant::now();
    let mut record = FetchRecord::start(&request.method);
    let mut earlier = Vec::new();
    let mut head_sent = false;
    let result = {
        let work = async {
            let opened = inner
                .egress
                .open(
                    &inner.connectors,
                    request,
                    stream,
                    &limits,
                    &mut record,
                    &mut earlier,
                )
                .await?;
            let _ = inner.out.send(GatewayMsg::Head {
                id,
                status: opened.status,
                status_text: opened.status_text.clone(),
                headers: opened.headers,
                url: opened.url,
                redirected: opened.redirected,
            });
            head_sent = true;
            if opened.status >= 400 {
                record.status_text = Some(opened.status_text);
            }
            let mut body = opened.body;
            while let Some(chunk) = body.next().await? {
                // An error body's excerpt, as far as it was read (JS may stop reading).
                if let Some(e) = body.excerpt_update() {
                    record.error_excerpt = Some(e);
                }
                // Sent ahead of what JS read by at most one window: a step that never reads a body
                // makes the gateway hold at most that much.
                let n = chunk.len().clamp(1, RESPONSE_WINDOW) as u32;
                window
                    .acquire_many(n)
                    .await
                    .map_err(|_| FetchError::Aborted)?
                    .forget();
                let _ = inner.out.send(GatewayMsg::Chunk { id, data: chunk });
            }
            if let Some(e) = body.excerpt_update() {
                record.error_excerpt = Some(e);
            }
            let _ = inner.out.send(GatewayMsg::End { id });
            Ok::<(), FetchError>(())
        };
        tokio::select! {
            r = tokio::time::timeout(limits.timeout, work) => r.unwrap_or(Err(FetchError::Timeout)),
            () = cancel.cancelled() => Err(FetchError::Aborted),
        }
    };
    let result = result.map_err(|e| match e {
        FetchError::Network(_) if over_limit.load(Ordering::Relaxed) => {
            FetchError::RequestBodyTooLarge
        }
        e => inner.egress.safe_error(&inner.connectors, e),
    });
    match &result {
        // The upstream answered; JS (or the step's end) only stopped reading its body.
        Err(FetchError::Aborted) if head_sent => record.finish(started, Ok(())),
        r => record.finish(started, r.as_ref().map(|_| ())),
    }
    if let Err(e) = result {
        let message = match e {
            FetchError::RequestBodyTooLarge | FetchError::ResponseBodyTooLarge => {
                let msg = format!("step limit: {e}");
                Gateway::halt(inner, msg.clone());
                msg
            }
            e => e.to_string(),
        };
        let _ = inner.out.send(GatewayMsg::Failed { id, message });
    }
    earlier.push(record);
    earlier
}
