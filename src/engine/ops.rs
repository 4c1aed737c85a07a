//! The ops a step's JS can reach (only through the polyfill: `Deno.core` is deleted before user code runs).
//!
//! This file is also compiled into `build.rs` to make the startup snapshot, so it depends on nothing but
//! deno_core, deno_error and serde. The real work lives behind the `StepHost` trait, which the engine puts
//! into `OpState` for each step; during snapshot creation no host exists and no op is ever called.
//!
//! Every argument is validated here or by the host in Rust: a direct op call can do no more than `fetch()`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use deno_core::{op2, JsBuffer, OpState, ToJsBuffer};
use deno_error::JsErrorBox;
use serde::{Deserialize, Serialize};

/// What JS asks the fetch op for. Unknown fields are refused so a typo in the polyfill fails loudly.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchArgs {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub redirect: String,
    pub request_id: u32,
}

/// What JS gets back. Headers and URL have already been cleaned by the egress path.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchReply {
    pub status: u16,
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub url: String,
    pub redirected: bool,
    pub body: ToJsBuffer,
}

pub type HostFuture = Pin<Box<dyn Future<Output = Result<FetchReply, String>>>>;

/// The engine side of one running step.
pub trait StepHost {
    /// Starts a fetch. An `Err` becomes a JS `TypeError` with that message, so it must be safe to show.
    fn fetch(&self, args: FetchArgs, body: Option<Vec<u8>>) -> HostFuture;
    fn abort(&self, request_id: u32);
    fn log(&self, level: u32, message: String);
    fn random_bytes(&self, buf: &mut [u8]);
}

fn host(state: &OpState) -> Result<Rc<dyn StepHost>, JsErrorBox> {
    state
        .try_borrow::<Rc<dyn StepHost>>()
        .cloned()
        .ok_or_else(|| JsErrorBox::type_error("no step is running"))
}

#[op2]
#[serde]
pub async fn op_codestep_fetch(
    state: Rc<RefCell<OpState>>,
    #[serde] args: FetchArgs,
    #[buffer] body: Option<JsBuffer>,
) -> Result<FetchReply, JsErrorBox> {
    // Copy the body out of the V8 buffer now: JS may mutate it after the call returns.
    let body = body.map(|b| b.to_vec());
    let fut = {
        let host = host(&state.borrow())?;
        host.fetch(args, body)
    };
    fut.await.map_err(JsErrorBox::type_error)
}

#[op2(fast)]
pub fn op_codestep_fetch_abort(
    state: &mut OpState,
    #[smi] request_id: u32,
) -> Result<(), JsErrorBox> {
    host(state)?.abort(request_id);
    Ok(())
}

#[op2(fast)]
pub fn op_codestep_log(
    state: &mut OpState,
    #[smi] level: u32,
    #[string] message: String,
) -> Result<(), JsErrorBox> {
    host(state)?.log(level, message);
    Ok(())
}

#[op2(fast)]
pub fn op_codestep_random_fill(
    state: &mut OpState,
    #[buffer] buf: &mut [u8],
) -> Result<(), JsErrorBox> {
    // The Web Crypto spec caps getRandomValues at 65536 bytes; the polyfill checks too, this is the backstop.
    if buf.len() > 65536 {
        return Err(JsErrorBox::new(
            "DOMExceptionQuotaExceededError",
            "getRandomValues: at most 65536 bytes",
        ));
    }
    host(state)?.random_bytes(buf);
    Ok(())
}
