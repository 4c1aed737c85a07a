//! The Node built-in modules: those codestep implements (in `js/node/`), and those a step cannot have.

/// Built-ins a step may import, as `node:X` or `X`.
pub const SUPPORTED: &[&str] = &[
    "assert",
    "assert/strict",
    "async_hooks",
    "buffer",
    "crypto",
    "events",
    "os",
    "path",
    "path/posix",
    "process",
    "querystring",
    "stream",
    "stream/promises",
    "stream/web",
    "string_decoder",
    "timers",
    "timers/promises",
    "url",
    "util",
    "util/types",
    "zlib",
];

/// Built-ins a step cannot have, and why. A step's own `import` of one fails when the step loads; a
/// package that imports one gets a module whose functions throw that error when called, so that a
/// package that only mentions (say) `fs` for a feature the step does not use still loads.
pub const REFUSED: &[(&str, &str)] = &[
    ("fs", "steps cannot read or write files"),
    ("fs/promises", "steps cannot read or write files"),
    (
        "net",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    (
        "tls",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    (
        "dgram",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    (
        "dns",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    (
        "dns/promises",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    (
        "http",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    (
        "https",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    (
        "http2",
        "steps reach the network only through fetch(), where connectors apply",
    ),
    ("child_process", "steps cannot start processes"),
    ("cluster", "steps cannot start processes"),
    ("worker_threads", "steps cannot start threads"),
    ("vm", "steps cannot reach the engine's internals"),
    ("v8", "steps cannot reach the engine's internals"),
    ("inspector", "steps cannot reach the engine's internals"),
    ("module", "steps load modules only through import"),
    ("repl", "steps have no terminal"),
    ("readline", "steps have no terminal"),
    ("tty", "steps have no terminal"),
    ("perf_hooks", "use the global performance object"),
    ("wasi", "steps cannot run WASI programs"),
];

/// A built-in's name without `node:`, when `specifier` names one.
pub fn name(specifier: &str) -> Option<&str> {
    let name = specifier.strip_prefix("node:").unwrap_or(specifier);
    if SUPPORTED.contains(&name) || REFUSED.iter().any(|(n, _)| *n == name) {
        Some(name)
    } else {
        None
    }
}

/// Why a step cannot have this built-in, when it cannot.
pub fn refused(name: &str) -> Option<&'static str> {
    REFUSED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// The message for a refused built-in.
pub fn refusal(name: &str) -> String {
    format!(
        "the Node module \"node:{name}\" is not available in a step: {}",
        refused(name).unwrap_or("it is not implemented")
    )
}
