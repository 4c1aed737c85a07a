//! The ops a step's JS can reach (only through the polyfill: `Deno.core` is deleted before user code runs).
//!
//! This file is also compiled into `build.rs` to make the startup snapshot, so it depends on nothing but
//! deno_core, deno_error and serde. The real work lives behind the `StepHost` trait, which the engine puts
//! into `OpState` for each step; during snapshot creation only the warm-up's stand-in host (in `build.rs`)
//! answers them.
//!
//! Every argument is validated here or by the host in Rust: a direct op call can do no more than `fetch()`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use deno_core::{op2, JsBuffer, OpState};
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
    /// The body follows as chunks (`op_codestep_fetch_body_*`) instead of coming with the call.
    pub stream: bool,
}

/// What JS gets back once the response head is in. Headers and URL have already been cleaned by the
/// egress path. The body is read with `op_codestep_fetch_next` and `op_codestep_fetch_take`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchHead {
    pub status: u16,
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub url: String,
    pub redirected: bool,
}

pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The engine side of one running step. Every `Err` becomes a JS `TypeError` with that message, so it
/// must be safe to show.
pub trait StepHost {
    /// Starts a fetch; resolves with the response head.
    fn fetch(
        &self,
        args: FetchArgs,
        body: Option<Vec<u8>>,
    ) -> LocalFuture<Result<FetchHead, String>>;
    /// For a streamed body: resolves `true` when the request wants its next chunk, `false` when it no
    /// longer wants any (it failed or was blocked). No chunk is read before the policy check passed.
    fn body_ready(&self, request_id: u32) -> LocalFuture<bool>;
    fn body_write(&self, request_id: u32, chunk: Vec<u8>) -> Result<(), String>;
    fn body_end(&self, request_id: u32);
    /// The size of the next response chunk, or 0 at the end of the body.
    fn next_chunk(&self, request_id: u32) -> LocalFuture<Result<u32, String>>;
    /// Copies the next chunk into `buf`, which JS made exactly its size (so it counts against the
    /// step's memory), and lets the upstream send more.
    fn take_chunk(&self, request_id: u32, buf: &mut [u8]) -> Result<(), String>;
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
) -> Result<FetchHead, JsErrorBox> {
    // Copy the body out of the V8 buffer now: JS may mutate it after the call returns.
    let body = body.map(|b| b.to_vec());
    let fut = {
        let host = host(&state.borrow())?;
        host.fetch(args, body)
    };
    fut.await.map_err(JsErrorBox::type_error)
}

/// The URL `fetch()` sends for a string it was given, when `new Request` would take it as it is: an
/// absolute `http:` or `https:` URL without credentials. Then the serialisation without its fragment;
/// otherwise `null`, and the polyfill builds the Request, whose conversion reports what is wrong.
/// The parser is the one deno_web's `URL` uses (`url`, WHATWG), so the result is what `new URL(input)`
/// would give, for a fraction of its cost in a fresh isolate (see `fetch` in `js/50_fetch.js`).
#[op2]
#[string]
pub fn op_codestep_fetch_url(#[string] input: &str) -> Option<String> {
    let mut url = deno_core::url::Url::parse(input).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_fragment(None);
    Some(url.into())
}

#[op2]
pub async fn op_codestep_fetch_body_ready(
    state: Rc<RefCell<OpState>>,
    #[smi] request_id: u32,
) -> Result<bool, JsErrorBox> {
    let fut = host(&state.borrow())?.body_ready(request_id);
    Ok(fut.await)
}

#[op2]
pub fn op_codestep_fetch_body_write(
    state: &mut OpState,
    #[smi] request_id: u32,
    #[buffer] chunk: JsBuffer,
) -> Result<(), JsErrorBox> {
    host(state)?
        .body_write(request_id, chunk.to_vec())
        .map_err(JsErrorBox::type_error)
}

#[op2(fast)]
pub fn op_codestep_fetch_body_end(
    state: &mut OpState,
    #[smi] request_id: u32,
) -> Result<(), JsErrorBox> {
    host(state)?.body_end(request_id);
    Ok(())
}

#[op2]
pub async fn op_codestep_fetch_next(
    state: Rc<RefCell<OpState>>,
    #[smi] request_id: u32,
) -> Result<u32, JsErrorBox> {
    let fut = host(&state.borrow())?.next_chunk(request_id);
    fut.await.map_err(JsErrorBox::type_error)
}

#[op2(fast)]
pub fn op_codestep_fetch_take(
    state: &mut OpState,
    #[smi] request_id: u32,
    #[buffer] buf: &mut [u8],
) -> Result<(), JsErrorBox> {
    host(state)?
        .take_chunk(request_id, buf)
        .map_err(JsErrorBox::type_error)
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

thread_local! {
    /// The generator behind `Math.random` (`js/00_globals.js`), seeded from the OS for every step.
    static MATH_RANDOM: RefCell<Option<rand::rngs::StdRng>> = const { RefCell::new(None) };
}

/// Seeds `Math.random` anew for a step. V8's own generator is seeded once per process, so in a step
/// process forked from a worker holding one prepared isolate, every step would draw the same numbers.
pub fn reseed_math_random() {
    use rand::SeedableRng;
    MATH_RANDOM.with(|r| *r.borrow_mut() = Some(rand::rngs::StdRng::from_entropy()));
}

#[op2(fast)]
pub fn op_codestep_math_random() -> f64 {
    use rand::{Rng, SeedableRng};
    MATH_RANDOM.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(rand::rngs::StdRng::from_entropy)
            .gen::<f64>()
    })
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
