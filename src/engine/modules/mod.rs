//! Modules: a step may import the other modules it was given, packages from the operator's package
//! directory, and the Node built-ins codestep implements.
//!
//! The supervisor side (`resolve`) reads files, only inside the package directory, resolves every
//! specifier it can see ahead of time (`scan`) and sends the step's whole module set with the job: a
//! worker never opens a file (it cannot, once confined) and never asks for one. The isolate side
//! (`loader`) serves the set to deno_core and to `require()`, and keeps V8's code cache for package
//! files, keyed by their content, for the next steps of the same worker.

pub mod builtins;
pub mod loader;
pub mod resolve;
pub mod scan;

use serde::{Deserialize, Serialize};

/// How a module is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    Esm,
    Cjs,
    Json,
}

/// One module of a step's set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModuleFile {
    /// Its specifier: `file:///lib.js` for a module given with the step, `file:///node_modules/…` for a
    /// package file.
    pub id: String,
    pub format: Format,
    pub source: String,
    /// A hash of the source, for the code cache (package files only; 0 for the step's own modules,
    /// whose code is never cached).
    pub hash: u64,
    /// CommonJS: the names an ES module may import by name.
    pub exports: Vec<String>,
    /// The worker already has this source (sent with an earlier job, by hash): `source` is empty.
    #[serde(default)]
    pub cached: bool,
}

/// What a specifier imported by a module resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A module of the set, by id.
    Module(String),
    /// A Node built-in, by its name without `node:`.
    Builtin(String),
    /// Refused or not found: the message says which module and why.
    Error(String),
}

/// A step's modules and how each resolves what it imports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ModuleSet {
    /// The main module's specifier.
    pub main: String,
    /// Every module but the main one.
    pub files: Vec<ModuleFile>,
    /// (referrer id, specifier, target) for every specifier seen in the set's sources.
    pub links: Vec<(String, String, Target)>,
}

/// The name a user reads for a module: `step.js`, `lib/util.js`, `node_modules/stripe/…`.
pub fn display_name(id: &str) -> &str {
    id.strip_prefix("file:///").unwrap_or(id)
}
