//! The `codestep` deno_core extension: our ops and the polyfill in `js/`.
//!
//! Shared with `build.rs` (through `#[path]`), because the snapshot and the runtime must be made from the
//! same extensions, in the same order.

use super::ops::*;

deno_core::extension!(
    codestep,
    deps = [deno_webidl, deno_web],
    ops = [
        op_codestep_fetch,
        op_codestep_fetch_body_ready,
        op_codestep_fetch_body_write,
        op_codestep_fetch_body_end,
        op_codestep_fetch_next,
        op_codestep_fetch_take,
        op_codestep_fetch_abort,
        op_codestep_log,
        op_codestep_random_fill,
    ],
    esm_entry_point = "ext:codestep/90_main.js",
    esm = [
        dir "js",
        "00_globals.js",
        "10_headers.js",
        "20_body.js",
        "30_request.js",
        "40_response.js",
        "50_fetch.js",
        "90_main.js",
    ],
);

/// All extensions of a step runtime, in the order the snapshot was made with.
pub fn extensions() -> Vec<deno_core::Extension> {
    vec![
        deno_webidl::deno_webidl::init(),
        deno_web::deno_web::init(
            std::sync::Arc::new(deno_web::BlobStore::default()),
            None,
            false,
            deno_web::InMemoryBroadcastChannel::default(),
        ),
        codestep::init(),
    ]
}
