//! All integration tests live in one binary: each test binary links the whole V8 library.

mod api;
mod cli_manage;
mod cli_run;
mod containment;
mod dashboard;
mod egress;
mod engine;
mod fetch_conformance;
mod governance;
mod hostile_worker;
mod modules;
mod multinode;
mod node_compat;
mod placements;
mod sdk;
mod security;
mod serve;
mod store;
mod support;
mod vault;
mod web_crypto;
