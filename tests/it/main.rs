//! The integration tests, as one test binary: real gateways on ephemeral ports (in this
//! process, or as processes of the release binary), real HTTP, real modules. One binary
//! links wasmtime once instead of once per file; each file is a module, named as before
//! (`cargo test --release --test it core::` runs one file's tests). The swap tests are a
//! binary of their own (`tests/swap.rs` says why).

mod common;
#[path = "common/preview1_cases.rs"]
mod preview1_cases;
#[path = "common/preview1_diff.rs"]
mod preview1_diff;

mod cache_dir;
mod cli;
mod compile_bounds;
mod components;
mod core;
mod examples;
mod hardening;
mod hints;
mod host_memory;
mod hostile_registries;
mod http2;
mod kv;
mod kv_redis;
mod layout;
mod limits;
mod metrics;
mod ops;
mod preview1;
mod preview1_props;
mod reload;
mod service;
mod sources;
mod streaming;
mod tls;
