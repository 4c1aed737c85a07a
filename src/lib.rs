//! codestep: runs untrusted workflow code steps in fresh V8 isolates. A step reaches the network only
//! through `fetch`, which Rust checks against the step's connectors (see `shared/docs/security-model.md`).

pub mod api;
pub mod cli;
pub mod connector;
pub mod egress;
pub mod engine;
pub mod store;
pub mod vault;
