//! The `codestep` deno_core extension: our ops and the polyfill in `js/`.
//!
//! Shared with `build.rs` (through `#[path]`), because the snapshot and the runtime must be made from the
//! same extensions, in the same order.
//!
//! The Node modules (`js/node/`) are lazily loaded scripts: they are in the binary but not in the
//! snapshot's heap, and are compiled the first time a step imports one (or touches `Buffer` or
//! `process`). Each is also the backing of a synthetic ES module `node:X` (deno_core's `synthetic_esm`).

use super::clone::op_codestep_structured_clone;
use super::node_ops::*;
use super::ops::*;

deno_core::extension!(
    codestep,
    deps = [deno_webidl, deno_web, deno_crypto],
    ops = [
        op_codestep_fetch,
        op_codestep_fetch_url,
        op_codestep_fetch_body_ready,
        op_codestep_fetch_body_write,
        op_codestep_fetch_body_end,
        op_codestep_fetch_next,
        op_codestep_fetch_take,
        op_codestep_fetch_abort,
        op_codestep_log,
        op_codestep_random_fill,
        op_codestep_math_random,
        op_codestep_require,
        op_codestep_module_source,
        op_codestep_env,
        op_codestep_user_agent,
        op_codestep_hash,
        op_codestep_hmac,
        op_codestep_sign,
        op_codestep_verify,
        op_codestep_zlib,
        op_codestep_structured_clone,
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
        without_unused(deno_web::deno_web::init(
            std::sync::Arc::new(deno_web::BlobStore::default()),
            None,
            false,
            deno_web::InMemoryBroadcastChannel::default(),
        )),
        // No seed: keys and random values come from the OS.
        deno_crypto::deno_crypto::init(None),
        codestep::init(),
    ]
}

/// deno_web's ops that none of the JS a step loads calls (broadcast channels, compression, locks,
/// URL patterns, geometry, performance and the Rust side of console previews). Every op is bound in
/// every fresh isolate, so each costs start-up time, and each is a handle a step should not have.
/// `tests::unused_ops_are_unused` checks that no JS we load names them.
pub const UNUSED_WEB_OPS: &[&str] = &[
    "op_base64_decode_into",
    "op_base64url_decode",
    "op_base64url_decode_into",
    "op_base64url_encode_from_buffer",
    "op_compression_new",
    "op_compression_write",
    "op_compression_finish",
    "op_now",
    "op_time_origin",
    "op_geometry_get_enable_css_parser_features",
    "op_geometry_matrix_set_matrix_value",
    "op_geometry_matrix_to_string",
    "op_lock_manager_request",
    "op_lock_manager_await_lock",
    "op_lock_manager_await_steal",
    "op_lock_manager_is_stolen",
    "op_lock_manager_cancel",
    "op_lock_manager_release",
    "op_lock_manager_query",
    "op_urlpattern_parse",
    "op_urlpattern_process_match_input",
    "op_preview_entries",
    "op_broadcast_subscribe",
    "op_broadcast_unsubscribe",
    "op_broadcast_serialize",
    "op_broadcast_deserialize",
    "op_broadcast_free",
    "op_broadcast_send",
    "op_broadcast_recv",
];

/// deno_web's classes backed by Rust objects that no JS we load uses (CSS, geometry, ImageData); only
/// `Console` is kept.
pub const UNUSED_WEB_OBJECTS: &[&str] = &[
    "CSSRule",
    "CSSStyleSheet",
    "DOMPointReadOnly",
    "DOMPoint",
    "DOMRectReadOnly",
    "DOMRect",
    "DOMQuad",
    "DOMMatrixReadOnly",
    "DOMMatrix",
    "ImageData",
];

/// deno_web without `UNUSED_WEB_OPS` and `UNUSED_WEB_OBJECTS`. The snapshot and the runtime both
/// use this, so they agree on the ops.
fn without_unused(mut ext: deno_core::Extension) -> deno_core::Extension {
    ext.ops = ext
        .ops
        .iter()
        .filter(|op| !UNUSED_WEB_OPS.contains(&op.name))
        .copied()
        .collect::<Vec<_>>()
        .into();
    ext.objects = ext
        .objects
        .iter()
        .filter(|o| !UNUSED_WEB_OBJECTS.contains(&o.name.0))
        .cloned()
        .collect::<Vec<_>>()
        .into();
    ext
}

#[cfg(test)]
mod tests {
    use super::*;

    /// deno_web's scripts that nothing we load loads (with `core.loadExtScript`).
    const NOT_LOADED: &[&str] = &[
        "01_broadcast_channel.js",
        "01_urlpattern.js",
        "04_global_interfaces.js",
        "10_filereader.js",
        "12_location.js",
        "14_compression.js",
        "15_performance.js",
        "16_image_data.js",
        "17_geometry.js",
        "18_css_stylesheet.js",
        "locks.js",
        "webtransport.js",
    ];

    /// Every script a step's isolate can have loaded: ours, deno_webidl's, and deno_web's except
    /// `NOT_LOADED` (whose being unloaded this also checks).
    fn loaded_sources() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for ext in extensions() {
            let files = ext
                .esm_files
                .iter()
                .chain(ext.js_files.iter())
                .chain(ext.lazy_loaded_js_files.iter())
                .chain(ext.lazy_loaded_esm_files.iter());
            for f in files {
                let name = f.specifier.rsplit('/').next().unwrap_or_default();
                if ext.name == "deno_web" && NOT_LOADED.contains(&name) {
                    continue;
                }
                let code = f.load().expect("extension source").as_str().to_string();
                out.push((f.specifier.to_string(), code));
            }
        }
        out
    }

    #[test]
    fn unused_ops_are_unused() {
        let sources = loaded_sources();
        assert!(sources.len() > 15, "{}", sources.len());
        for (specifier, code) in &sources {
            for name in UNUSED_WEB_OPS.iter().chain(UNUSED_WEB_OBJECTS) {
                let used = code.match_indices(name).any(|(i, _)| {
                    let after = code[i + name.len()..].chars().next();
                    !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                assert!(
                    !used,
                    "{specifier} uses {name}, which the step runtime leaves out"
                );
            }
            // The scripts left out are not loaded by anything that is loaded.
            for not_loaded in NOT_LOADED {
                assert!(
                    !code.contains(&format!("ext:deno_web/{not_loaded}")),
                    "{specifier} loads {not_loaded}"
                );
            }
        }
    }

    #[test]
    fn unused_ops_are_left_out() {
        let web = extensions()
            .into_iter()
            .find(|e| e.name == "deno_web")
            .unwrap();
        assert!(web.ops.iter().all(|op| !UNUSED_WEB_OPS.contains(&op.name)));
        assert_eq!(web.objects.len(), 1, "only Console is kept");
        // Each name in the lists is a real op or object of deno_web (a renamed one would be missed).
        let full = deno_web::deno_web::init(
            std::sync::Arc::new(deno_web::BlobStore::default()),
            None,
            false,
            deno_web::InMemoryBroadcastChannel::default(),
        );
        for name in UNUSED_WEB_OPS {
            assert!(full.ops.iter().any(|op| op.name == *name), "{name}");
        }
        for name in UNUSED_WEB_OBJECTS {
            assert!(full.objects.iter().any(|o| o.name.0 == *name), "{name}");
        }
    }
}
