//! The messages between a step's isolate and the gateway that does its fetches.
//!
//! The isolate side (`host`) holds no secret and no connector: it describes requests as JS made them and
//! gets back only what JS may see. The gateway side (`gateway`) holds the connectors and runs the egress
//! path. In process mode these messages cross a socket between a worker process and the supervisor
//! (`ipc` frames them); in-process they travel over channels, so both modes share one code path.
//!
//! Nothing that arrives at the gateway is trusted: a worker may be running native code of an attacker's.

use serde::{Deserialize, Serialize};

use super::console::LogEntry;
use super::limits::Limits;
use super::{ErrorKind, StepError};
use crate::egress::MAX_REQUEST_HEADERS;

/// Most bytes in one request-body chunk; the polyfill splits larger ones.
pub const MAX_BODY_CHUNK: usize = 256 * 1024;
/// Response bytes the gateway may send ahead of what JS has read, per request.
pub const RESPONSE_WINDOW: usize = 256 * 1024;

/// A new `fetch()`. `body` is the whole body when JS had it at once; `stream` says the body follows as
/// `BodyChunk`s, each asked for with `BodyWanted`.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchStart {
    pub id: u32,
    pub method: String,
    pub url: String,
    /// At most `MAX_REQUEST_HEADERS`: a frame with more is refused while it is read, before a
    /// hostile worker's list of empty pairs can grow to many times its frame's size.
    #[serde(deserialize_with = "bounded_headers")]
    pub headers: Vec<(String, String)>,
    pub redirect: String,
    pub stream: bool,
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
}

fn bounded_headers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "at most {MAX_REQUEST_HEADERS} header pairs")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(pair) = seq.next_element::<(String, String)>()? {
                if out.len() == MAX_REQUEST_HEADERS {
                    return Err(serde::de::Error::custom("too many request headers"));
                }
                out.push(pair);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded)
}

/// Isolate to gateway.
#[derive(Debug, Serialize, Deserialize)]
pub enum HostMsg {
    Fetch(FetchStart),
    BodyChunk {
        id: u32,
        #[serde(skip)]
        data: Vec<u8>,
    },
    BodyEnd {
        id: u32,
    },
    /// JS took this many response bytes: the gateway may send as many more.
    Consumed {
        id: u32,
        bytes: u32,
    },
    Abort {
        id: u32,
    },
}

/// Gateway to isolate.
#[derive(Debug, Serialize, Deserialize)]
pub enum GatewayMsg {
    Head {
        id: u32,
        status: u16,
        status_text: String,
        headers: Vec<(String, String)>,
        url: String,
        redirected: bool,
    },
    Chunk {
        id: u32,
        #[serde(skip)]
        data: Vec<u8>,
    },
    End {
        id: u32,
    },
    /// The fetch failed, before or after its head; the message is safe to show JS.
    Failed {
        id: u32,
        message: String,
    },
    /// The request passed the policy check and wants (more of) its streamed body.
    BodyWanted {
        id: u32,
    },
    /// A step limit was hit on the gateway side: the step must stop.
    Halt {
        message: String,
    },
}

/// The bulk bytes a message carries, kept out of its JSON header by the socket framing.
pub trait Payload {
    fn take_payload(&mut self) -> Option<Vec<u8>>;
    fn put_payload(&mut self, data: Vec<u8>);
}

impl Payload for HostMsg {
    fn take_payload(&mut self) -> Option<Vec<u8>> {
        match self {
            HostMsg::Fetch(f) => f.body.take(),
            HostMsg::BodyChunk { data, .. } => Some(std::mem::take(data)),
            _ => None,
        }
    }
    fn put_payload(&mut self, payload: Vec<u8>) {
        match self {
            HostMsg::Fetch(f) => f.body = Some(payload),
            HostMsg::BodyChunk { data, .. } => *data = payload,
            _ => {}
        }
    }
}

impl Payload for GatewayMsg {
    fn take_payload(&mut self) -> Option<Vec<u8>> {
        match self {
            GatewayMsg::Chunk { data, .. } => Some(std::mem::take(data)),
            _ => None,
        }
    }
    fn put_payload(&mut self, payload: Vec<u8>) {
        if let GatewayMsg::Chunk { data, .. } = self {
            *data = payload;
        }
    }
}

/// One step for an isolate to run. It holds connector names, never connectors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub code: String,
    /// The step's other modules and the package files they import, resolved by the supervisor.
    pub modules: super::modules::ModuleSet,
    /// `process.env`: only what the operator passes to steps.
    pub env: Vec<(String, String)>,
    /// The input as JSON text.
    pub input: String,
    /// `ctx` as JSON text.
    pub ctx: String,
    pub limits: Limits,
    /// Stream a heap snapshot back after the step, for the secret audit.
    pub audit_heap: bool,
}

/// What the isolate side reports when a step ends. The gateway's view (records, limits it saw) is
/// joined to it by `outcome::assemble`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// The step's output as JSON text, or why it failed.
    pub result: Result<String, StepError>,
    pub logs: Vec<LogEntry>,
    pub logs_dropped: usize,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn failed(kind: ErrorKind, message: impl Into<String>) -> Outcome {
        Outcome {
            result: Err(StepError {
                kind,
                message: message.into(),
                stack: None,
                location: None,
                frame: None,
            }),
            logs: Vec::new(),
            logs_dropped: 0,
            warnings: Vec::new(),
        }
    }
}

/// The module that imports the preloaded packages (`preload::MAIN_NAME`), and every file it imports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Preload {
    pub set: super::modules::ModuleSet,
    pub main_code: String,
}

/// Supervisor to worker process.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// First message: how to set up before confining itself.
    Init {
        heap_bytes: usize,
        sandbox: bool,
        /// Set for the process that makes the package snapshot (`preload`), and only for it: it
        /// answers with `FromWorker::Snapshot` and exits.
        preload: Option<Preload>,
        /// The package snapshot every isolate of this worker starts from; empty for a built-in one.
        #[serde(skip)]
        snapshot: Vec<u8>,
        /// Without a package snapshot: start from the built-in snapshot that holds deno_web's
        /// streams (set when the server has a package directory).
        streams_in_snapshot: bool,
        /// Run each step in a process of its own, forked from this one (see `worker`).
        process_per_step: bool,
    },
    Run(Box<Job>),
    Gateway(GatewayMsg),
    /// After `Done`: nothing more of that step follows. A step process reads up to here before it
    /// exits, so the next one starts reading at a frame boundary.
    End,
    /// Test hook: try every call the sandbox refuses and report each result.
    ProbeSandbox,
}

impl Payload for ToWorker {
    fn take_payload(&mut self) -> Option<Vec<u8>> {
        match self {
            ToWorker::Gateway(m) => m.take_payload(),
            ToWorker::Init { snapshot, .. } => Some(std::mem::take(snapshot)),
            _ => None,
        }
    }
    fn put_payload(&mut self, data: Vec<u8>) {
        match self {
            ToWorker::Gateway(m) => m.put_payload(data),
            ToWorker::Init { snapshot, .. } => *snapshot = data,
            _ => {}
        }
    }
}

/// Worker process to supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// Set up, confined (when asked) and waiting for a step. Sent again after each `End` by a worker
    /// that runs each step in a process of its own, by the process that runs the next step (the
    /// supervisor finds that process from the kernel, never from a message).
    Ready {
        sandboxed: bool,
        /// Sent by a worker before it ran anything of a step, so the supervisor can trust it: this
        /// worker forks a process for each step and sends `Ready` again after each `End`.
        #[serde(default)]
        forks: bool,
    },
    Host(HostMsg),
    /// Part of the heap snapshot asked for by `Job::audit_heap`.
    HeapChunk {
        #[serde(skip)]
        data: Vec<u8>,
    },
    Done(Box<Outcome>),
    /// For `ProbeSandbox`: each refused call, and `None` when it was refused as it should be.
    Probed(Vec<(String, Option<String>)>),
    /// The package snapshot asked for by `Init::preload`, and the ids of the files evaluated into it.
    Snapshot {
        #[serde(skip)]
        blob: Vec<u8>,
        modules: Vec<String>,
    },
}

impl Payload for FromWorker {
    fn take_payload(&mut self) -> Option<Vec<u8>> {
        match self {
            FromWorker::Host(m) => m.take_payload(),
            FromWorker::HeapChunk { data } => Some(std::mem::take(data)),
            FromWorker::Snapshot { blob, .. } => Some(std::mem::take(blob)),
            // The output travels raw: inside the JSON header every `"` and `\` of it would double.
            FromWorker::Done(o) => match &mut o.result {
                Ok(json) => Some(std::mem::take(json).into_bytes()),
                Err(_) => None,
            },
            _ => None,
        }
    }
    fn put_payload(&mut self, payload: Vec<u8>) {
        match self {
            FromWorker::Host(m) => m.put_payload(payload),
            FromWorker::HeapChunk { data } => *data = payload,
            FromWorker::Snapshot { blob, .. } => *blob = payload,
            FromWorker::Done(o) => {
                if let Ok(json) = &mut o.result {
                    *json = String::from_utf8(payload)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                }
            }
            _ => {}
        }
    }
}
