//! The isolate's side of a step: it turns the fetch ops into `HostMsg`s for the gateway and routes the
//! gateway's answers back to the JS promises waiting for them. It holds no connector and no secret:
//! in process mode it runs in the sandboxed worker.
//!
//! Response bytes wait here until JS takes them; they count against the step's memory budget while
//! they do, and the gateway sends at most one window ahead of what JS took.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use deno_core::v8;
use tokio::sync::Notify;

use super::console::{Level, LogBuffer};
use super::limits::Limits;
use super::ops::{FetchArgs, FetchHead, LocalFuture, StepHost};
use super::protocol::{FetchStart, GatewayMsg, HostMsg, MAX_BODY_CHUNK};
use super::runtime::BufferBudget;

/// Why a step was stopped from the outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The gateway hit a step limit (fetch count, body sizes).
    Limit(String),
    /// Response bytes waiting for JS went over the memory budget.
    Memory,
}

#[derive(Default)]
struct Pending {
    head: Option<FetchHead>,
    chunks: VecDeque<Vec<u8>>,
    ended: bool,
    failed: Option<String>,
    /// `BodyWanted`s not yet used by a chunk.
    credit: u32,
    data: Rc<Notify>,
    wanted: Rc<Notify>,
}

pub struct IsolateHost {
    send: Box<dyn Fn(HostMsg)>,
    budget: Arc<BufferBudget>,
    limits: Limits,
    isolate: RefCell<Option<v8::IsolateHandle>>,
    requests: RefCell<HashMap<u32, Pending>>,
    pub logs: RefCell<LogBuffer>,
    stop: RefCell<Option<Stop>>,
    stopped: Notify,
}

impl IsolateHost {
    /// A host whose messages for the gateway go to `send`.
    pub fn new(
        send: Box<dyn Fn(HostMsg)>,
        budget: Arc<BufferBudget>,
        limits: Limits,
    ) -> Rc<IsolateHost> {
        Rc::new(IsolateHost {
            send,
            budget,
            limits,
            isolate: RefCell::new(None),
            requests: RefCell::default(),
            logs: RefCell::default(),
            stop: RefCell::new(None),
            stopped: Notify::new(),
        })
    }

    pub fn set_isolate(&self, handle: v8::IsolateHandle) {
        *self.isolate.borrow_mut() = Some(handle);
    }

    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop.borrow().clone()
    }

    /// Resolves once the step must stop (see `halt`).
    pub async fn stopped(&self) {
        self.stopped.notified().await
    }

    /// Ends the step with `reason`. Running JS stops at its next check; a step waiting on the event
    /// loop is dropped by the step driver, which waits on `stopped`.
    fn halt(&self, reason: Stop) {
        self.stop.borrow_mut().get_or_insert(reason);
        self.stopped.notify_one();
        if let Some(handle) = self.isolate.borrow().as_ref() {
            handle.terminate_execution();
        }
    }

    /// Takes one message from the gateway.
    pub fn deliver(&self, msg: GatewayMsg) {
        if let GatewayMsg::Halt { message } = msg {
            return self.halt(Stop::Limit(message));
        }
        let mut requests = self.requests.borrow_mut();
        let id = match &msg {
            GatewayMsg::Head { id, .. }
            | GatewayMsg::Chunk { id, .. }
            | GatewayMsg::End { id }
            | GatewayMsg::Failed { id, .. }
            | GatewayMsg::BodyWanted { id } => *id,
            GatewayMsg::Halt { .. } => unreachable!("handled above"),
        };
        let Some(p) = requests.get_mut(&id) else {
            return;
        };
        match msg {
            GatewayMsg::Head {
                status,
                status_text,
                headers,
                url,
                redirected,
                ..
            } => {
                p.head = Some(FetchHead {
                    status,
                    status_text,
                    headers,
                    url,
                    redirected,
                });
                p.data.notify_one();
            }
            GatewayMsg::Chunk { data, .. } => {
                if !self.budget.reserve(data.len()) {
                    drop(requests);
                    return self.halt(Stop::Memory);
                }
                p.chunks.push_back(data);
                p.data.notify_one();
            }
            GatewayMsg::End { .. } => {
                p.ended = true;
                p.data.notify_one();
            }
            GatewayMsg::Failed { message, .. } => {
                p.failed = Some(message);
                p.data.notify_one();
                p.wanted.notify_one();
            }
            GatewayMsg::BodyWanted { .. } => {
                p.credit += 1;
                p.wanted.notify_one();
            }
            GatewayMsg::Halt { .. } => unreachable!("handled above"),
        }
    }

    /// Forgets a request, giving back the budget of the bytes JS never took.
    fn forget(&self, id: u32) {
        if let Some(p) = self.requests.borrow_mut().remove(&id) {
            self.budget
                .release(p.chunks.iter().map(Vec::len).sum::<usize>());
            p.data.notify_one();
            p.wanted.notify_one();
        }
    }

    /// The step is over: every request is forgotten (the gateway cancels them on its side).
    pub fn close(&self) {
        let ids: Vec<u32> = self.requests.borrow().keys().copied().collect();
        for id in ids {
            self.forget(id);
        }
    }

    /// Waits until `check` gives an answer for request `id`, woken by `notify` of that request.
    async fn wait<T>(
        self: Rc<Self>,
        id: u32,
        which: fn(&Pending) -> &Rc<Notify>,
        check: impl Fn(&mut Pending) -> Option<T>,
        gone: T,
    ) -> T {
        loop {
            let notify = {
                let mut requests = self.requests.borrow_mut();
                let Some(p) = requests.get_mut(&id) else {
                    return gone;
                };
                if let Some(answer) = check(p) {
                    return answer;
                }
                which(p).clone()
            };
            notify.notified().await;
        }
    }
}

const ABORTED: &str = "fetch: the request was aborted";

impl StepHost for Rc<IsolateHost> {
    fn fetch(
        &self,
        args: FetchArgs,
        body: Option<Vec<u8>>,
    ) -> LocalFuture<Result<FetchHead, String>> {
        let id = args.request_id;
        if self.stop.borrow().is_some() {
            // The step is being stopped; JS may still run a little before termination lands.
            return Box::pin(async { Err("fetch: the step is stopping".to_string()) });
        }
        if args.stream && body.is_some() {
            return Box::pin(async {
                Err("fetch: a body is either given or streamed".to_string())
            });
        }
        // The gateway enforces these; seen here first, the request is not sent to it at all, so no
        // frame to the supervisor is larger than the limits allow.
        if body.as_ref().map_or(0, Vec::len) as u64 > self.limits.max_request_body_bytes {
            let msg = self.limits.request_body_over();
            self.halt(Stop::Limit(msg.clone()));
            return Box::pin(async move { Err(msg) });
        }
        if let Err(e) = crate::egress::check_request_header_sizes(&args.headers) {
            return Box::pin(async move { Err(e.to_string()) });
        }
        {
            let mut requests = self.requests.borrow_mut();
            if requests.contains_key(&id) {
                return Box::pin(async { Err("fetch: request id already in use".to_string()) });
            }
            requests.insert(id, Pending::default());
        }
        (self.send)(HostMsg::Fetch(FetchStart {
            id,
            method: args.method,
            url: args.url,
            headers: args.headers,
            redirect: args.redirect,
            stream: args.stream,
            body,
        }));
        Box::pin(self.clone().wait(
            id,
            |p| &p.data,
            |p| {
                if let Some(head) = p.head.take() {
                    return Some(Ok(head));
                }
                p.failed.clone().map(Err)
            },
            Err(ABORTED.to_string()),
        ))
    }

    fn body_ready(&self, request_id: u32) -> LocalFuture<bool> {
        Box::pin(self.clone().wait(
            request_id,
            |p| &p.wanted,
            |p| {
                if p.failed.is_some() {
                    return Some(false);
                }
                (p.credit > 0).then_some(true)
            },
            false,
        ))
    }

    fn body_write(&self, request_id: u32, chunk: Vec<u8>) -> Result<(), String> {
        if chunk.len() > MAX_BODY_CHUNK {
            return Err(format!(
                "fetch: body chunks are at most {MAX_BODY_CHUNK} bytes"
            ));
        }
        {
            let mut requests = self.requests.borrow_mut();
            let p = requests.get_mut(&request_id).ok_or(ABORTED)?;
            if p.credit == 0 {
                return Err("fetch: the request did not ask for more body".to_string());
            }
            p.credit -= 1;
        }
        (self.send)(HostMsg::BodyChunk {
            id: request_id,
            data: chunk,
        });
        Ok(())
    }

    fn body_end(&self, request_id: u32) {
        if self.requests.borrow().contains_key(&request_id) {
            (self.send)(HostMsg::BodyEnd { id: request_id });
        }
    }

    fn next_chunk(&self, request_id: u32) -> LocalFuture<Result<u32, String>> {
        let this = self.clone();
        Box::pin(async move {
            let answer = this
                .clone()
                .wait(
                    request_id,
                    |p| &p.data,
                    |p| {
                        if let Some(c) = p.chunks.front() {
                            return Some(Ok(c.len() as u32));
                        }
                        if p.ended {
                            return Some(Ok(0));
                        }
                        p.failed.clone().map(Err)
                    },
                    Err(ABORTED.to_string()),
                )
                .await;
            if matches!(answer, Ok(0) | Err(_)) {
                this.forget(request_id);
            }
            answer
        })
    }

    fn take_chunk(&self, request_id: u32, buf: &mut [u8]) -> Result<(), String> {
        let (chunk, ended) = {
            let mut requests = self.requests.borrow_mut();
            let p = requests.get_mut(&request_id).ok_or(ABORTED)?;
            match p.chunks.front() {
                Some(c) if c.len() == buf.len() => {
                    (p.chunks.pop_front().expect("checked"), p.ended)
                }
                _ => return Err("fetch: no chunk of that size is waiting".to_string()),
            }
        };
        buf.copy_from_slice(&chunk);
        self.budget.release(chunk.len());
        // Once the whole body is here, the gateway has nothing left to send: no need to wake it.
        if !ended {
            (self.send)(HostMsg::Consumed {
                id: request_id,
                bytes: chunk.len() as u32,
            });
        }
        Ok(())
    }

    fn abort(&self, request_id: u32) {
        if self.requests.borrow().contains_key(&request_id) {
            (self.send)(HostMsg::Abort { id: request_id });
            self.forget(request_id);
        }
    }

    fn log(&self, level: u32, message: String) {
        self.logs.borrow_mut().push(Level::from_op(level), message);
    }

    fn random_bytes(&self, buf: &mut [u8]) {
        use rand::RngCore;
        // A failure here means the machine has no entropy source: nothing sensible can run, so it
        // panics (a panicking step becomes an `internal` error).
        rand::rngs::OsRng.fill_bytes(buf);
    }
}
