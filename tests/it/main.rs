//! All integration tests live in one binary: each test binary links the whole V8 library.

mod cli_manage;
mod egress;
mod engine;
mod fetch_conformance;
mod security;
mod store;
mod support;
mod vault;
