//! What one module's guests run with: the limits every request is held to, and the
//! environment, arguments, volumes and outbound hosts the config gives it. The config
//! checks and merges them (`config/module.rs`); the guest only reads them.

use std::path::PathBuf;
use std::time::Duration;

use super::wasi_http::allowed::AllowedHost;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline, enforced with epoch interruption.
    pub timeout: Duration,
    /// Fuel per request; 0 means unmetered.
    pub fuel: u64,
    pub max_memory_bytes: u64,
    pub max_output_bytes: u64,
    pub max_body_bytes: u64,
    /// Guests of one module running at once; past it that module answers 503. The default
    /// is half the pool (`config/defaults.rs`), so no one module can take every slot.
    pub max_concurrency: u32,
    /// A CGI guest's stdout is buffered until it exits or writes this much (../shared/DESIGN.md
    /// "Streaming"); then its response streams.
    pub stream_after_bytes: u64,
    /// ... or until it has run this long.
    pub stream_after: Duration,
}

/// What one module gets besides the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSettings {
    pub limits: Limits,
    /// Extra environment variables, in a stable order.
    pub env: Vec<(String, String)>,
    /// Whether `Authorization` and `Proxy-Authorization` reach the guest as `HTTP_*`.
    pub pass_authorization: bool,
    /// The guest's arguments after `argv[0]` (which is the module name).
    pub args: Vec<String>,
    /// Read-only directories the guest sees: (guest path, host directory).
    pub volumes: Vec<(String, PathBuf)>,
    /// Where a component's outgoing HTTP requests may go; empty denies them all.
    pub allowed_outbound_hosts: Vec<AllowedHost>,
    /// The key-value stores its guests may open, sorted.
    pub kv_stores: Vec<String>,
}

impl ModuleSettings {
    /// A module's settings with `limits` and nothing else: no extra environment, no
    /// arguments, no volumes, no outbound hosts, credentials withheld.
    pub fn with_limits(limits: Limits) -> ModuleSettings {
        ModuleSettings {
            limits,
            env: Vec::new(),
            pass_authorization: false,
            args: Vec::new(),
            volumes: Vec::new(),
            allowed_outbound_hosts: Vec::new(),
            kv_stores: Vec::new(),
        }
    }
}
