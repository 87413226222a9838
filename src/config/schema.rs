//! The config file as TOML spells it: every table `deny_unknown_fields`, so a misspelt key
//! is a start-up error that names it rather than a silently ignored setting. Nothing here
//! is checked yet; `config/mod.rs` and `config/module.rs` turn it into a [`Config`].
//!
//! [`Config`]: super::Config

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{SlotResetChoice, WatchMode};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) admin_listen: Option<String>,
    #[serde(default)]
    pub(super) admin_hosts: Vec<String>,
    pub(super) modules_dir: Option<PathBuf>,
    pub(super) cache_dir: Option<PathBuf>,
    pub(super) max_instances: Option<u32>,
    pub(super) queue_timeout_ms: Option<u64>,
    pub(super) shutdown_grace_ms: Option<u64>,
    pub(super) cache_max_bytes: Option<u64>,
    pub(super) max_module_bytes: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) serve_threads: Option<usize>,
    pub(super) pin_serve_threads: Option<bool>,
    pub(super) body_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(super) shutdown_delay_ms: u64,
    #[serde(default)]
    pub(super) access_log: bool,
    pub(super) metrics: Option<bool>,
    #[serde(default)]
    pub(super) limits: FileLimits,
    #[serde(default)]
    pub(super) modules: BTreeMap<String, FileModule>,
    #[serde(default)]
    pub(super) watch: WatchMode,
    pub(super) poll_interval_ms: Option<u64>,
    pub(super) oci_poll_ms: Option<u64>,
    #[serde(default)]
    pub(super) oci_insecure: Vec<String>,
    #[serde(default)]
    pub(super) slot_reset: SlotResetChoice,
    #[serde(default)]
    pub(super) compile: FileCompile,
    pub(super) kv: Option<FileKv>,
    pub(super) http2_max_streams: Option<u32>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKv {
    pub(super) backend: Option<String>,
    pub(super) path: Option<PathBuf>,
    pub(super) max_key_bytes: Option<u64>,
    pub(super) max_value_bytes: Option<u64>,
    pub(super) max_store_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCompile {
    pub(super) timeout_ms: Option<u64>,
    pub(super) cpu_ms: Option<u64>,
    pub(super) max_memory_bytes: Option<u64>,
    pub(super) workers: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) timeout_ms: Option<u64>,
    pub(super) fuel: Option<u64>,
    pub(super) max_memory_bytes: Option<u64>,
    pub(super) max_output_bytes: Option<u64>,
    pub(super) max_body_bytes: Option<u64>,
    pub(super) max_concurrency: Option<u32>,
    pub(super) stream_after_bytes: Option<u64>,
    pub(super) stream_after_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileModule {
    #[serde(flatten)]
    pub(super) limits: FileLimits,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) pass_authorization: bool,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) volumes: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub(super) allowed_outbound_hosts: Vec<String>,
    pub(super) source: Option<String>,
    #[serde(default)]
    pub(super) kv_stores: Vec<String>,
}
