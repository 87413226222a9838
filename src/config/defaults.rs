//! Every default of the configuration in one table, with the bounds values are checked
//! against. ../shared/DESIGN.md's tables list the same numbers; `defaults_match_the_design` in
//! `config/mod.rs` holds them to it.

use std::time::Duration;

use crate::guest::settings::Limits;

/// The size of a WebAssembly page: the unit of linear memory.
pub(crate) const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// Default public listener: every interface, port 8080.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default admin listener: loopback only, so metrics and module details stay private.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9180";
pub(crate) const DEFAULT_MAX_INSTANCES: u32 = 1000;
pub(crate) const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 1000;
pub(crate) const DEFAULT_CACHE_MAX_BYTES: u64 = 1 << 30;
pub(crate) const DEFAULT_MAX_MODULE_BYTES: u64 = 256 << 20;
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub(crate) const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
pub(crate) const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 30_000;
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub(crate) const DEFAULT_FUEL: u64 = 10_000_000_000;
pub(crate) const DEFAULT_MAX_MEMORY_BYTES: u64 = 128 << 20;
pub(crate) const DEFAULT_MAX_OUTPUT_BYTES: u64 = 16 << 20;
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;
pub(crate) const DEFAULT_STREAM_AFTER_BYTES: u64 = 64 << 10;
pub(crate) const DEFAULT_STREAM_AFTER_MS: u64 = 50;
pub(crate) const DEFAULT_POLL_INTERVAL_MS: u64 = 1000;
pub(crate) const DEFAULT_OCI_POLL_MS: u64 = 10_000;
/// A compile worker's wall-clock time: a 99 MB CPython build took about 200 s on 2 cores.
pub(crate) const DEFAULT_COMPILE_TIMEOUT_MS: u64 = 300_000;
/// A compile worker's CPU time, over all its threads (Cranelift compiles in parallel).
pub(crate) const DEFAULT_COMPILE_CPU_MS: u64 = 600_000;
/// A compile worker's memory: a 61 KB compile bomb needed 2.4 GiB, the examples far less.
pub(crate) const DEFAULT_COMPILE_MAX_MEMORY_BYTES: u64 = 2 << 30;
/// Compile workers running at once.
pub(crate) const DEFAULT_COMPILE_WORKERS: usize = 2;
/// The shortest interval a source may be polled at, so a typo cannot hammer a registry.
pub(crate) const MIN_POLL_MS: u64 = 50;
/// The largest linear memory a WebAssembly 32-bit module can address.
pub(crate) const MAX_WASM32_MEMORY_BYTES: u64 = 4 << 30;
/// A ceiling on buffered request or response bodies, so a typo cannot ask for terabytes.
pub(crate) const MAX_BUFFER_BYTES: u64 = 1 << 30;

/// The limits of a module that no config file mentions.
pub(crate) const LIMITS: Limits = Limits {
    timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
    fuel: DEFAULT_FUEL,
    max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
    max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
    max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    max_concurrency: default_concurrency(DEFAULT_MAX_INSTANCES),
    stream_after_bytes: DEFAULT_STREAM_AFTER_BYTES,
    stream_after: Duration::from_millis(DEFAULT_STREAM_AFTER_MS),
};

/// Guests of one module that may run at once unless its config says otherwise: half the
/// pool's slots, and at least one.
pub(crate) const fn default_concurrency(max_instances: u32) -> u32 {
    match max_instances / 2 {
        0 => 1,
        half => half,
    }
}

pub fn default_serve_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
