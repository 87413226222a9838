//! The gateway's configuration: the TOML file of DESIGN.md, built-in defaults, and the
//! per-module limits that result from them.
//!
//! Every table is `deny_unknown_fields`, so a misspelt key is a start-up error that names
//! it rather than a silently ignored setting. Values are checked once here, so the rest of
//! the gateway can trust them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalogue::name::ModuleName;
use crate::guest::cgi::reserved::is_reserved_env_name;
use crate::guest::wasi_http::allowed::AllowedHost;
use crate::sources::reference::OciReference;

/// The size of a WebAssembly page: the unit of linear memory.
pub(crate) const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// Default public listener: every interface, port 8080.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default admin listener: loopback only, so metrics and module details stay private.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9180";
const DEFAULT_MAX_INSTANCES: u32 = 1000;
const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 1000;
const DEFAULT_CACHE_MAX_BYTES: u64 = 1 << 30;
const DEFAULT_MAX_MODULE_BYTES: u64 = 256 << 20;
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 30_000;
const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_FUEL: u64 = 10_000_000_000;
const DEFAULT_MAX_MEMORY_BYTES: u64 = 128 << 20;
const DEFAULT_MAX_OUTPUT_BYTES: u64 = 16 << 20;
const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;
const DEFAULT_STREAM_AFTER_BYTES: u64 = 64 << 10;
const DEFAULT_STREAM_AFTER_MS: u64 = 50;
const DEFAULT_POLL_INTERVAL_MS: u64 = 1000;
const DEFAULT_OCI_POLL_MS: u64 = 10_000;
/// A compile worker's wall-clock time: a 99 MB CPython build took about 200 s on 2 cores.
const DEFAULT_COMPILE_TIMEOUT_MS: u64 = 300_000;
/// A compile worker's CPU time, over all its threads (Cranelift compiles in parallel).
const DEFAULT_COMPILE_CPU_MS: u64 = 600_000;
/// A compile worker's memory: a 61 KB compile bomb needed 2.4 GiB, the examples far less.
const DEFAULT_COMPILE_MAX_MEMORY_BYTES: u64 = 2 << 30;
/// Compile workers running at once.
const DEFAULT_COMPILE_WORKERS: usize = 2;
/// The shortest interval a source may be polled at, so a typo cannot hammer a registry.
const MIN_POLL_MS: u64 = 50;
/// The largest linear memory a WebAssembly 32-bit module can address.
const MAX_WASM32_MEMORY_BYTES: u64 = 4 << 30;
/// A ceiling on buffered request or response bodies, so a typo cannot ask for terabytes.
const MAX_BUFFER_BYTES: u64 = 1 << 30;

/// A configuration that cannot be used; the message names the key (and the value), and
/// never a host path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file '{file}': {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config: `{key}` = {value} {reason}")]
    Value {
        key: String,
        value: String,
        reason: &'static str,
    },
}

impl ConfigError {
    fn value(key: &str, value: impl Display, reason: &'static str) -> Self {
        ConfigError::Value {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        }
    }
}

/// The whole configuration, after defaults, file and flags were merged.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Names the admin listener answers besides IP addresses and `localhost`, lowercased.
    pub admin_hosts: Vec<String>,
    pub modules_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Pool slots: guests running at once, across all modules.
    pub max_instances: u32,
    /// How long a request waits for a free slot before it is answered 503.
    pub queue_timeout: Duration,
    /// The compiled-artifact cache's size cap; least recently used artifacts go first.
    pub cache_max_bytes: u64,
    /// A module file larger than this is refused, checked before and while it is read.
    pub max_module_bytes: u64,
    /// Open client connections accepted at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// 0: the public listener is served by the shared multi-threaded runtime; N: by N
    /// threads, each with a runtime and a socket of its own. Unset: one per core
    /// ([`default_serve_threads`]).
    pub serve_threads: usize,
    /// Pin each serving thread to a core of its own when there is one thread per core the
    /// process may run on (on by default; see `http/cores.rs`).
    pub pin_serve_threads: bool,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// After SIGTERM, how long the public listener keeps accepting while `/readyz` already
    /// says 503, so that load balancers stop sending traffic before connections are refused.
    pub shutdown_delay: Duration,
    /// Log one line per request (target `wasmgate::access`).
    pub access_log: bool,
    /// Record Prometheus metrics (on by default; off only to measure what they cost).
    pub metrics: bool,
    /// How long requests in flight may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// The defaults for every module.
    pub limits: Limits,
    /// Per-module settings, keyed by module name.
    pub modules: HashMap<String, ModuleSettings>,
    /// How changes in the modules directory are noticed.
    pub watch: WatchMode,
    /// With [`WatchMode::Poll`], how often the directory is looked at.
    pub poll_interval: Duration,
    /// How often an OCI source's tag is resolved.
    pub oci_poll: Duration,
    /// Registries (`HOST:PORT`) spoken to over plain HTTP; loopback ones always may.
    pub oci_insecure: Vec<String>,
    /// How a pool slot's memory is reset between guests.
    pub slot_reset: SlotResetChoice,
    /// How modules are compiled while serving (`[compile]`).
    pub compile: CompileSettings,
}

/// How modules are compiled while serving (`[compile]`): each in a worker process of its
/// own, under these bounds, so that no module's compile can take the gateway's memory or
/// hold up another module's reload.
#[derive(Debug, Clone)]
pub struct CompileSettings {
    /// The program started as a compile worker (`PROGRAM compile-worker ...`): the
    /// gateway's own binary, which `wasmgate serve` sets. `None` compiles in the process
    /// itself, as a library user, the tests and the one-shot commands do.
    pub worker_program: Option<PathBuf>,
    /// Wall-clock time one compile may take.
    pub timeout: Duration,
    /// CPU time one compile may use, over all its threads.
    pub cpu: Duration,
    /// Memory one compile worker may allocate.
    pub max_memory_bytes: u64,
    /// Compile workers running at once.
    pub workers: usize,
}

/// Serving threads when `serve_threads` is not set: one per core this process may run on.
/// A runtime per thread keeps each connection, and the guests it runs, on one core, which
/// took 13–19% of the CPU per request off and served 17% more than the shared runtime
/// (BENCHMARKS.md, issue 18).
pub fn default_serve_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How a pool slot's memory is reset between guests (`slot_reset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotResetChoice {
    /// `PAGEMAP_SCAN` where the kernel has it (Linux 6.7 and later): only the pages a guest
    /// dirtied are reset, and up to 2 MiB stays resident. `memset` elsewhere.
    #[default]
    Auto,
    /// The first 64 KiB are zeroed with `memset`, the rest is given back with `madvise`:
    /// cheaper for modules whose whole memory is one 64 KiB page, far dearer for any with
    /// a real stack (Rust, C, Go, components), see BENCHMARKS.md.
    Memset,
}

/// How the modules directory is watched (`watch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// File-system events (inotify): immediate, for local disks.
    #[default]
    Events,
    /// Looking at the directory every `poll_interval_ms`: for NFS and other shared
    /// volumes, where events from other hosts never arrive.
    Poll,
}

/// The limits one request of a module runs under.
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
    /// is half the pool ([`default_concurrency`]), so no one module can take every slot.
    pub max_concurrency: u32,
    /// A CGI guest's stdout is buffered until it exits or writes this much (DESIGN.md
    /// "Streaming"); then its response streams.
    pub stream_after_bytes: u64,
    /// ... or until it has run this long.
    pub stream_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            fuel: DEFAULT_FUEL,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_concurrency: default_concurrency(DEFAULT_MAX_INSTANCES),
            stream_after_bytes: DEFAULT_STREAM_AFTER_BYTES,
            stream_after: Duration::from_millis(DEFAULT_STREAM_AFTER_MS),
        }
    }
}

/// What one module gets besides the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Where the module comes from, when not from the modules directory.
    pub source: Option<OciReference>,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub modules_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    #[serde(default)]
    admin_hosts: Vec<String>,
    modules_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    max_instances: Option<u32>,
    queue_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    cache_max_bytes: Option<u64>,
    max_module_bytes: Option<u64>,
    max_connections: Option<usize>,
    serve_threads: Option<usize>,
    pin_serve_threads: Option<bool>,
    body_timeout_ms: Option<u64>,
    #[serde(default)]
    shutdown_delay_ms: u64,
    #[serde(default)]
    access_log: bool,
    metrics: Option<bool>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    modules: BTreeMap<String, FileModule>,
    #[serde(default)]
    watch: WatchMode,
    poll_interval_ms: Option<u64>,
    oci_poll_ms: Option<u64>,
    #[serde(default)]
    oci_insecure: Vec<String>,
    #[serde(default)]
    slot_reset: SlotResetChoice,
    #[serde(default)]
    compile: FileCompile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCompile {
    timeout_ms: Option<u64>,
    cpu_ms: Option<u64>,
    max_memory_bytes: Option<u64>,
    workers: Option<usize>,
}

impl FileCompile {
    fn settings(&self) -> Result<CompileSettings, ConfigError> {
        let settings = CompileSettings {
            worker_program: None,
            timeout: millis(self.timeout_ms, DEFAULT_COMPILE_TIMEOUT_MS),
            cpu: millis(self.cpu_ms, DEFAULT_COMPILE_CPU_MS),
            max_memory_bytes: self
                .max_memory_bytes
                .unwrap_or(DEFAULT_COMPILE_MAX_MEMORY_BYTES),
            workers: self.workers.unwrap_or(DEFAULT_COMPILE_WORKERS),
        };
        for (key, value) in [
            ("compile.timeout_ms", settings.timeout.as_millis() as u64),
            ("compile.cpu_ms", settings.cpu.as_millis() as u64),
            ("compile.max_memory_bytes", settings.max_memory_bytes),
            ("compile.workers", settings.workers as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::value(key, 0, "must be at least 1"));
            }
        }
        Ok(settings)
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    timeout_ms: Option<u64>,
    fuel: Option<u64>,
    max_memory_bytes: Option<u64>,
    max_output_bytes: Option<u64>,
    max_body_bytes: Option<u64>,
    max_concurrency: Option<u32>,
    stream_after_bytes: Option<u64>,
    stream_after_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModule {
    #[serde(flatten)]
    limits: FileLimits,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    pass_authorization: bool,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    volumes: BTreeMap<String, PathBuf>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    source: Option<String>,
}

impl Config {
    /// Reads `path` (when given), applies `overrides`, and checks every value.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    file: display_name(path),
                    source,
                })?;
                parse_file(&text)?
            }
            None => FileConfig::default(),
        };
        build(file, overrides)
    }

    /// Parses a configuration from TOML text, as if it were the config file.
    pub fn from_toml(text: &str, overrides: Overrides) -> Result<Config, ConfigError> {
        build(parse_file(text)?, overrides)
    }

    /// The settings a module runs with: its own section, or the defaults.
    pub fn module_settings(&self, name: &str) -> ModuleSettings {
        self.modules.get(name).cloned().unwrap_or(ModuleSettings {
            limits: self.limits,
            ..ModuleSettings::default()
        })
    }

    /// Adds `pairs` to module `name`'s own `env`, checked as the config file's are; the
    /// module keeps every other setting it has.
    pub fn add_module_env(
        &mut self,
        name: &str,
        pairs: Vec<(String, String)>,
    ) -> Result<(), ConfigError> {
        let section = format!("modules.{name}");
        for (key, value) in &pairs {
            check_env(&section, key, value)?;
        }
        let mut settings = self.module_settings(name);
        settings.env.extend(pairs);
        self.modules.insert(name.to_string(), settings);
        Ok(())
    }

    /// Whether any module is metered: when none is, the engine compiles without fuel checks.
    pub fn fuel_metered(&self) -> bool {
        self.limits.fuel != 0 || self.modules.values().any(|m| m.limits.fuel != 0)
    }

    /// The largest memory any module may grow to: what each pool slot must reserve.
    pub fn largest_memory_bytes(&self) -> u64 {
        self.modules
            .values()
            .map(|m| m.limits.max_memory_bytes)
            .chain(std::iter::once(self.limits.max_memory_bytes))
            .max()
            .unwrap_or(DEFAULT_MAX_MEMORY_BYTES)
    }
}

/// Only the file's name goes into messages: full host paths stay out of errors.
fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
}

/// Guests of one module that may run at once unless its config says otherwise: half the
/// pool's slots, and at least one.
pub(crate) fn default_concurrency(max_instances: u32) -> u32 {
    (max_instances / 2).max(1)
}

fn build(file: FileConfig, overrides: Overrides) -> Result<Config, ConfigError> {
    let max_instances = file.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
    let base = Limits {
        max_concurrency: default_concurrency(max_instances),
        ..Limits::default()
    };
    let limits = merge_limits(&base, &file.limits, "limits")?;
    let mut modules = HashMap::new();
    for (name, module) in &file.modules {
        modules.insert(name.clone(), module_settings(name, module, &limits)?);
    }
    let config = Config {
        listen: pick_addr(
            overrides.listen,
            file.listen.as_deref(),
            "listen",
            DEFAULT_LISTEN,
        )?,
        admin_listen: pick_addr(
            overrides.admin_listen,
            file.admin_listen.as_deref(),
            "admin_listen",
            DEFAULT_ADMIN_LISTEN,
        )?,
        admin_hosts: file
            .admin_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        modules_dir: overrides
            .modules_dir
            .or(file.modules_dir)
            .unwrap_or_else(|| PathBuf::from("modules")),
        cache_dir: overrides
            .cache_dir
            .or(file.cache_dir)
            .unwrap_or_else(|| PathBuf::from(".wasmgate-cache")),
        max_instances,
        queue_timeout: millis(file.queue_timeout_ms, DEFAULT_QUEUE_TIMEOUT_MS),
        shutdown_grace: millis(file.shutdown_grace_ms, DEFAULT_SHUTDOWN_GRACE_MS),
        cache_max_bytes: file.cache_max_bytes.unwrap_or(DEFAULT_CACHE_MAX_BYTES),
        max_module_bytes: file.max_module_bytes.unwrap_or(DEFAULT_MAX_MODULE_BYTES),
        max_connections: file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        serve_threads: file.serve_threads.unwrap_or_else(default_serve_threads),
        pin_serve_threads: file.pin_serve_threads.unwrap_or(true),
        body_timeout: millis(file.body_timeout_ms, DEFAULT_BODY_TIMEOUT_MS),
        shutdown_delay: Duration::from_millis(file.shutdown_delay_ms),
        access_log: file.access_log,
        metrics: file.metrics.unwrap_or(true),
        limits,
        modules,
        watch: file.watch,
        poll_interval: poll_millis(
            "poll_interval_ms",
            file.poll_interval_ms,
            DEFAULT_POLL_INTERVAL_MS,
        )?,
        oci_poll: poll_millis("oci_poll_ms", file.oci_poll_ms, DEFAULT_OCI_POLL_MS)?,
        oci_insecure: file.oci_insecure,
        slot_reset: file.slot_reset,
        compile: file.compile.settings()?,
    };
    if config.max_instances == 0 {
        return Err(ConfigError::value("max_instances", 0, "must be at least 1"));
    }
    if config.max_module_bytes == 0 {
        return Err(ConfigError::value(
            "max_module_bytes",
            0,
            "must be at least 1",
        ));
    }
    if config.max_connections == 0 {
        return Err(ConfigError::value(
            "max_connections",
            0,
            "must be at least 1",
        ));
    }
    Ok(config)
}

/// A polling interval: its default, or at least [`MIN_POLL_MS`].
fn poll_millis(key: &str, value: Option<u64>, default_ms: u64) -> Result<Duration, ConfigError> {
    match value {
        Some(ms) if ms < MIN_POLL_MS => Err(ConfigError::value(key, ms, "must be at least 50")),
        _ => Ok(millis(value, default_ms)),
    }
}

/// A `*_ms` key as a duration, or its default.
fn millis(value: Option<u64>, default_ms: u64) -> Duration {
    Duration::from_millis(value.unwrap_or(default_ms))
}

fn pick_addr(
    flag: Option<SocketAddr>,
    file: Option<&str>,
    key: &str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    if let Some(addr) = flag {
        return Ok(addr);
    }
    let text = file.unwrap_or(default);
    text.parse()
        .map_err(|_| ConfigError::value(key, text, "is not an address like 127.0.0.1:8080"))
}

fn module_settings(
    name: &str,
    module: &FileModule,
    defaults: &Limits,
) -> Result<ModuleSettings, ConfigError> {
    let section = format!("modules.{name}");
    if ModuleName::parse(name).is_err() {
        return Err(ConfigError::value(
            &section,
            name,
            "is not a module name ([A-Za-z0-9_-], 1 to 64 characters)",
        ));
    }
    let limits = merge_limits(defaults, &module.limits, &section)?;
    for (key, value) in &module.env {
        check_env(&section, key, value)?;
    }
    if let Some(arg) = module.args.iter().find(|a| a.contains('\0')) {
        return Err(ConfigError::value(
            &format!("{section}.args"),
            format!("{arg:?}"),
            "has a NUL byte, which would split it into two arguments",
        ));
    }
    for (guest, host) in &module.volumes {
        let key = format!("{section}.volumes");
        if !guest.starts_with('/') || guest.contains('\0') {
            return Err(ConfigError::value(
                &key,
                guest,
                "is not an absolute guest path like \"/lib\"",
            ));
        }
        if !host.is_dir() {
            return Err(ConfigError::value(
                &key,
                guest,
                "maps to a host directory that does not exist",
            ));
        }
    }
    let allowed_outbound_hosts = module
        .allowed_outbound_hosts
        .iter()
        .map(|entry| {
            AllowedHost::parse(entry).map_err(|why| ConfigError::Value {
                key: format!("{section}.allowed_outbound_hosts"),
                value: format!("{entry:?}"),
                reason: why.reason(),
            })
        })
        .collect::<Result<_, _>>()?;
    let source = module
        .source
        .as_deref()
        .map(|text| {
            OciReference::parse(text).map_err(|why| ConfigError::Value {
                key: format!("{section}.source"),
                value: format!("{text:?}"),
                reason: why.reason(),
            })
        })
        .transpose()?;
    Ok(ModuleSettings {
        limits,
        source,
        allowed_outbound_hosts,
        args: module.args.clone(),
        volumes: module
            .volumes
            .iter()
            .map(|(g, h)| (g.clone(), h.clone()))
            .collect(),
        env: module
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        pass_authorization: module.pass_authorization,
    })
}

/// Refuses an environment variable that a guest cannot be given, naming `section.env`.
fn check_env(section: &str, key: &str, value: &str) -> Result<(), ConfigError> {
    let at = || format!("{section}.env");
    if value.contains('\0') {
        return Err(ConfigError::value(
            &at(),
            key,
            "has a NUL byte in its value, which an environment cannot carry",
        ));
    }
    if key.is_empty() || key.contains('=') || key.contains('\0') {
        return Err(ConfigError::value(
            &at(),
            key,
            "is not a valid variable name",
        ));
    }
    if is_reserved_env_name(key) {
        return Err(ConfigError::value(
            &at(),
            key,
            "is set by the gateway for every request and cannot be overridden",
        ));
    }
    Ok(())
}

fn merge_limits(base: &Limits, file: &FileLimits, section: &str) -> Result<Limits, ConfigError> {
    let limits = Limits {
        timeout: file.timeout_ms.map_or(base.timeout, Duration::from_millis),
        fuel: file.fuel.unwrap_or(base.fuel),
        max_memory_bytes: file.max_memory_bytes.unwrap_or(base.max_memory_bytes),
        max_output_bytes: file.max_output_bytes.unwrap_or(base.max_output_bytes),
        max_body_bytes: file.max_body_bytes.unwrap_or(base.max_body_bytes),
        max_concurrency: file.max_concurrency.unwrap_or(base.max_concurrency),
        stream_after_bytes: file.stream_after_bytes.unwrap_or(base.stream_after_bytes),
        stream_after: file
            .stream_after_ms
            .map_or(base.stream_after, Duration::from_millis),
    };
    let key = |k: &str| format!("{section}.{k}");
    if limits.max_concurrency == 0 {
        return Err(ConfigError::value(
            &key("max_concurrency"),
            0,
            "must be at least 1",
        ));
    }
    if limits.timeout.is_zero() {
        return Err(ConfigError::value(
            &key("timeout_ms"),
            0,
            "must be at least 1",
        ));
    }
    if limits.max_memory_bytes < WASM_PAGE_BYTES
        || limits.max_memory_bytes > MAX_WASM32_MEMORY_BYTES
    {
        return Err(ConfigError::value(
            &key("max_memory_bytes"),
            limits.max_memory_bytes,
            "must be between 65536 (one page) and 4 GiB",
        ));
    }
    for (name, value) in [
        ("max_output_bytes", limits.max_output_bytes),
        ("max_body_bytes", limits.max_body_bytes),
        ("stream_after_bytes", limits.stream_after_bytes),
    ] {
        if value > MAX_BUFFER_BYTES {
            return Err(ConfigError::value(
                &key(name),
                value,
                "must be at most 1 GiB",
            ));
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Overrides::default())
    }

    #[test]
    fn compile_bounds_have_defaults_and_refuse_zero() {
        let c = parse("").unwrap().compile;
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!(c.cpu, Duration::from_secs(600));
        assert_eq!(c.max_memory_bytes, 2 << 30);
        assert_eq!(c.workers, 2);
        assert!(c.worker_program.is_none());
        let c = parse("[compile]\ntimeout_ms = 5000\nworkers = 1\n")
            .unwrap()
            .compile;
        assert_eq!((c.timeout, c.workers), (Duration::from_secs(5), 1));
        let err = parse("[compile]\nmax_memory_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("compile.max_memory_bytes"), "{err}");
        let err = parse("[compile]\nthreads = 3\n").unwrap_err().to_string();
        assert!(err.contains("threads"), "{err}");
    }

    #[test]
    fn defaults_match_the_design() {
        let c = parse("").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(c.modules_dir, PathBuf::from("modules"));
        assert_eq!(c.max_instances, 1000);
        assert_eq!(c.limits.fuel, 10_000_000_000);
        assert_eq!(c.limits.max_memory_bytes, 134_217_728);
        assert_eq!(c.slot_reset, SlotResetChoice::Auto);
        assert_eq!(c.serve_threads, default_serve_threads());
        assert!(c.serve_threads >= 1);
        assert_eq!(parse("serve_threads = 0").unwrap().serve_threads, 0);
        assert!(c.pin_serve_threads);
        assert!(
            !parse("pin_serve_threads = false")
                .unwrap()
                .pin_serve_threads
        );
        let c = parse("slot_reset = \"memset\"").unwrap();
        assert_eq!(c.slot_reset, SlotResetChoice::Memset);
        let err = parse("slot_reset = \"sometimes\"").unwrap_err().to_string();
        assert!(
            err.contains("slot_reset") && err.contains("sometimes"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("listn = \"x\"").unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
        let err = parse("[limits]\ntimeout = 5").unwrap_err().to_string();
        assert!(err.contains("timeout"), "{err}");
        let err = parse("[modules.a]\nfule = 5").unwrap_err().to_string();
        assert!(err.contains("fule"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let err = parse("listen = \"nowhere\"").unwrap_err().to_string();
        assert!(err.contains("listen") && err.contains("nowhere"), "{err}");
        let err = parse("[limits]\nmax_memory_bytes = 5")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.max_memory_bytes") && err.contains('5'),
            "{err}"
        );
        let err = parse("[modules.\"a.b\"]").unwrap_err().to_string();
        assert!(err.contains("a.b"), "{err}");
        let err = parse("[modules.a]\nenv = { REQUEST_METHOD = \"x\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("REQUEST_METHOD"), "{err}");
        let err = parse("[modules.a]\nenv = { GREETING = \"a\\u0000b\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("GREETING") && err.contains("NUL"), "{err}");
    }

    #[test]
    fn module_sections_override_the_defaults() {
        let c = parse(
            "[limits]\nfuel = 7\ntimeout_ms = 9\n[modules.a]\nfuel = 3\nenv = { G = \"hi\" }",
        )
        .unwrap();
        let a = c.module_settings("a");
        assert_eq!(
            (a.limits.fuel, a.limits.timeout),
            (3, Duration::from_millis(9))
        );
        assert_eq!(a.env, vec![("G".to_string(), "hi".to_string())]);
        assert_eq!(c.module_settings("b").limits.fuel, 7);
    }

    #[test]
    fn outbound_hosts_are_parsed_and_checked() {
        let c =
            parse("[modules.api]\nallowed_outbound_hosts = [\"http://127.0.0.1:9000\"]").unwrap();
        let api = c.module_settings("api");
        assert_eq!(api.allowed_outbound_hosts.len(), 1);
        assert!(c.module_settings("other").allowed_outbound_hosts.is_empty());
        let e = parse("[modules.api]\nallowed_outbound_hosts = [\"http://x/api\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("modules.api.allowed_outbound_hosts"), "{e}");
        assert!(e.contains("\"http://x/api\""), "{e}");
        for entry in ["http://127.0.0.1:abc", "http://127.0.0.1:70000"] {
            let e = parse(&format!(
                "[modules.api]\nallowed_outbound_hosts = [{entry:?}]"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(entry) && e.contains("port"), "{e}");
        }
    }

    #[test]
    fn volumes_must_be_absolute_and_exist() {
        let dir = tempfile::tempdir().unwrap();
        let ok = format!(
            "[modules.py]\nargs = [\"-q\"]\nvolumes = {{ \"/lib\" = {:?} }}",
            dir.path()
        );
        let c = parse(&ok).unwrap();
        let py = c.module_settings("py");
        assert_eq!(py.args, ["-q"]);
        assert_eq!(py.volumes, [("/lib".to_string(), dir.path().to_path_buf())]);
        let relative = format!("[modules.py]\nvolumes = {{ \"lib\" = {:?} }}", dir.path());
        assert!(
            parse(&relative)
                .unwrap_err()
                .to_string()
                .contains("modules.py.volumes")
        );
        let missing = "[modules.py]\nvolumes = { \"/lib\" = \"/no/such/dir\" }";
        let err = parse(missing).unwrap_err().to_string();
        assert!(err.contains("/lib") && !err.contains("/no/such"), "{err}");
    }

    #[test]
    fn streaming_thresholds_default_and_override_per_module() {
        let c =
            parse("[limits]\nstream_after_ms = 10\n[modules.a]\nstream_after_bytes = 0").unwrap();
        let (a, b) = (c.module_settings("a").limits, c.module_settings("b").limits);
        assert_eq!(
            (a.stream_after_bytes, a.stream_after),
            (0, Duration::from_millis(10))
        );
        assert_eq!(
            (b.stream_after_bytes, b.stream_after),
            (65536, Duration::from_millis(10))
        );
        let err = parse("[limits]\nstream_after_bytes = 2147483648").unwrap_err();
        assert!(
            err.to_string().contains("limits.stream_after_bytes"),
            "{err}"
        );
    }

    #[test]
    fn one_module_gets_half_the_pool_unless_it_says_otherwise() {
        let c = parse("max_instances = 16\n[modules.a]\nmax_concurrency = 3").unwrap();
        assert_eq!(c.module_settings("a").limits.max_concurrency, 3);
        assert_eq!(c.module_settings("b").limits.max_concurrency, 8);
        assert_eq!(
            parse("max_instances = 1").unwrap().limits.max_concurrency,
            1
        );
        let err = parse("[limits]\nmax_concurrency = 0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.max_concurrency"), "{err}");
    }

    #[test]
    fn an_argument_with_a_nul_is_refused_naming_the_key() {
        let err = parse("[modules.a]\nargs = [\"-x\", \"a\\u0000b\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("modules.a.args") && err.contains("NUL"),
            "{err}"
        );
    }

    #[test]
    fn fuel_off_everywhere_turns_metering_off() {
        assert!(parse("").unwrap().fuel_metered());
        assert!(!parse("[limits]\nfuel = 0").unwrap().fuel_metered());
        assert!(
            parse("[limits]\nfuel = 0\n[modules.a]\nfuel = 5")
                .unwrap()
                .fuel_metered()
        );
    }

    #[test]
    fn flags_override_the_file() {
        let flags = Overrides {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            ..Overrides::default()
        };
        let c = Config::from_toml("listen = \"127.0.0.1:2\"", flags).unwrap();
        assert_eq!(c.listen.port(), 1);
    }
}
