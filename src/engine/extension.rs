//! The `codestep` deno_core extension: our ops and the polyfill in `js/`.
//!
//! Shared with `build.rs` (through `#[path]`), because the snapshot and the runtime must be made from the
//! same extensions, in the same order.
//!
//! The Node modules (`js/node/`) are lazily loaded scripts: they are in the binary but not in the
//! snapshot's heap, and are compiled the first time a step imports one (or touches `Buffer` or
//! `process`). Each is also the backing of a synthetic ES module `node:X` (deno_core's `synthetic_esm`).

use super::node_ops::*;
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
        op_codestep_require,
        op_codestep_module_source,
        op_codestep_env,
        op_codestep_user_agent,
        op_codestep_hash,
        op_codestep_hmac,
        op_codestep_sign,
        op_codestep_verify,
        op_codestep_zlib,
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
        "60_node_globals.js",
        "90_main.js",
    ],
    lazy_loaded_js = [
        dir "js",
        "node/_cjs.js",
        "node/_empty.js",
        "node/assert.js",
        "node/assert_strict.js",
        "node/async_hooks.js",
        "node/buffer.js",
        "node/crypto.js",
        "node/events.js",
        "node/os.js",
        "node/path.js",
        "node/process.js",
        "node/querystring.js",
        "node/stream.js",
        "node/stream_promises.js",
        "node/stream_web.js",
        "node/string_decoder.js",
        "node/timers.js",
        "node/timers_promises.js",
        "node/url.js",
        "node/util.js",
        "node/util_types.js",
        "node/zlib.js",
    ],
    synthetic_esm = [
        "codestep:cjs" = "ext:codestep/node/_cjs.js",
        "node:_empty" = "ext:codestep/node/_empty.js",
        "node:assert" = "ext:codestep/node/assert.js",
        "node:assert/strict" = "ext:codestep/node/assert_strict.js",
        "node:async_hooks" = "ext:codestep/node/async_hooks.js",
        "node:buffer" = "ext:codestep/node/buffer.js",
        "node:crypto" = "ext:codestep/node/crypto.js",
        "node:events" = "ext:codestep/node/events.js",
        "node:os" = "ext:codestep/node/os.js",
        "node:path" = "ext:codestep/node/path.js",
        "node:path/posix" = "ext:codestep/node/path.js",
        "node:process" = "ext:codestep/node/process.js",
        "node:querystring" = "ext:codestep/node/querystring.js",
        "node:stream" = "ext:codestep/node/stream.js",
        "node:stream/promises" = "ext:codestep/node/stream_promises.js",
        "node:stream/web" = "ext:codestep/node/stream_web.js",
        "node:string_decoder" = "ext:codestep/node/string_decoder.js",
        "node:timers" = "ext:codestep/node/timers.js",
        "node:timers/promises" = "ext:codestep/node/timers_promises.js",
        "node:url" = "ext:codestep/node/url.js",
        "node:util" = "ext:codestep/node/util.js",
        "node:util/types" = "ext:codestep/node/util_types.js",
        "node:zlib" = "ext:codestep/node/zlib.js",
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
