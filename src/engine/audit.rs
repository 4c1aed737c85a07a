//! The heap audit: after a step, a heap snapshot of its isolate is searched for the bytes of each
//! connector secret. The security model's invariant is that the count is always zero. Operators can
//! turn this on (it costs a heap snapshot per step); the security tests always do.

use deno_core::v8;
use zeroize::Zeroizing;

pub fn heap_contains_any(isolate: &mut v8::Isolate, needles: &[Zeroizing<Vec<u8>>]) -> bool {
    // The snapshot holds the secret if it leaked: wipe it afterwards like the needles.
    let mut snapshot = Zeroizing::new(Vec::new());
    isolate.take_heap_snapshot(|chunk| {
        snapshot.extend_from_slice(chunk);
        true
    });
    needles.iter().filter(|n| !n.is_empty()).any(|needle| {
        snapshot
            .windows(needle.len())
            .any(|w| w == needle.as_slice())
    })
}
