//! The snapshot warm-up: run on a snapshot's context just before it is serialised (by `build.rs` for the
//! built-in snapshot, and by `preload` for a package snapshot), so the polyfill's hot paths, the whole
//! fetch path included, are compiled into it. See `js/snapshot_warmup.js`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Answers the warm-up's fetches (`js/snapshot_warmup.js`) with a small JSON response, so that the
/// polyfill's whole fetch path, not just its front half, is compiled into the snapshot. It exists
/// only while a snapshot is made: no step ever sees it, and nothing of it is in the snapshot.
#[derive(Default)]
struct WarmupHost {
    bodies: RefCell<HashMap<u32, Vec<u8>>>,
}

impl super::ops::StepHost for WarmupHost {
    fn fetch(
        &self,
        args: super::ops::FetchArgs,
        _body: Option<Vec<u8>>,
    ) -> super::ops::LocalFuture<Result<super::ops::FetchHead, String>> {
        let body = br#"{"data":[{"id":1,"name":"a"}],"has_more":false}"#.to_vec();
        self.bodies.borrow_mut().insert(args.request_id, body);
        Box::pin(std::future::ready(Ok(super::ops::FetchHead {
            status: 200,
            status_text: "OK".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            url: args.url,
            redirected: false,
        })))
    }
    fn body_ready(&self, _request_id: u32) -> super::ops::LocalFuture<bool> {
        Box::pin(std::future::ready(false))
    }
    fn body_write(&self, _request_id: u32, _chunk: Vec<u8>) -> Result<(), String> {
        Err("no streamed bodies in the warm-up".into())
    }
    fn body_end(&self, _request_id: u32) {}
    fn next_chunk(&self, request_id: u32) -> super::ops::LocalFuture<Result<u32, String>> {
        let size = self.bodies.borrow().get(&request_id).map_or(0, Vec::len);
        Box::pin(std::future::ready(Ok(size as u32)))
    }
    fn take_chunk(&self, request_id: u32, buf: &mut [u8]) -> Result<(), String> {
        let body = self.bodies.borrow_mut().remove(&request_id);
        match body {
            Some(b) if b.len() == buf.len() => {
                buf.copy_from_slice(&b);
                Ok(())
            }
            _ => Err("no such chunk".into()),
        }
    }
    fn abort(&self, request_id: u32) {
        self.bodies.borrow_mut().remove(&request_id);
    }
    fn log(&self, _level: u32, _message: String) {}
    fn random_bytes(&self, buf: &mut [u8]) {
        buf.fill(7);
    }
}

/// `warm_up`, then deno_web's streams loaded, for a snapshot that holds them
/// (`runtime::startup_snapshot`). No stream is made: streams register with a FinalizationRegistry,
/// and V8 cannot snapshot one with pending cleanups.
pub fn warm_up_with_streams(rt: &mut deno_core::JsRuntimeForSnapshot) {
    warm_up(rt);
    rt.execute_script(
        "ext:codestep/snapshot_warmup_streams.js",
        "void globalThis.ReadableStream;",
    )
    .expect("the streams warm-up failed");
}

/// Runs `js/snapshot_warmup.js` against `WarmupHost` to its end, and takes the host out again.
pub fn warm_up(rt: &mut deno_core::JsRuntimeForSnapshot) {
    // A stand-in host for the warm-up's fetches; it is taken out again before the snapshot.
    rt.op_state()
        .borrow_mut()
        .put::<Rc<dyn super::ops::StepHost>>(Rc::new(WarmupHost::default()));
    let done = rt
        .execute_script(
            "ext:codestep/snapshot_warmup.js",
            include_str!("../../js/snapshot_warmup.js"),
        )
        .expect("the snapshot warm-up script failed");
    // Runs the warm-up's fetches to their end, so no op or job of it is left pending.
    let done = rt.resolve(done);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the warm-up")
        .block_on(
            rt.with_event_loop_promise(Box::pin(done), deno_core::PollEventLoopOptions::default()),
        )
        .expect("the snapshot warm-up's fetch failed");
    rt.op_state()
        .borrow_mut()
        .take::<Rc<dyn super::ops::StepHost>>();
    // Settle its promises now, so no job of the warm-up is left queued in the snapshot.
    rt.v8_isolate().perform_microtask_checkpoint();
}
