//! The gateway's configuration: the TOML file of `../shared/DESIGN.md`, built-in defaults,
//! and the per-module settings that result from them. Values are checked once here, so the
//! rest of the gateway can trust them.
//!
//! - [`schema`]: the file as TOML spells it;
//! - [`defaults`]: every default, in one table;
//! - [`module`]: one module's settings over the defaults;
//! - [`name`] and [`reference`]: the two values a user writes that the rest of the gateway
//!   parses again (a module's name, an OCI source).

pub(crate) mod defaults;
mod kv;
mod module;
pub(crate) mod name;
mod protocols;
pub(crate) mod reference;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::guest::settings::{Limits, ModuleSettings};
pub use defaults::default_serve_threads;
use defaults::*;
use module::{check_env, merge_limits, module_settings};
pub use protocols::{Protocols, TlsFiles};
use reference::OciReference;

use crate::kv::KvSettings;
use schema::{FileCompile, FileConfig};

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
    pub(crate) fn value(key: &str, value: impl Display, reason: &'static str) -> Self {
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
    /// process may run on (on by default; see `front/cores.rs`).
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
    /// Modules that come from an OCI registry rather than the modules directory, by name.
    pub sources: BTreeMap<String, OciReference>,
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
    /// The key-value stores (`[kv]`), when the config has the table or a module lists
    /// `kv_stores`.
    pub kv: Option<KvSettings>,
    /// What the public listener speaks: HTTP/1.1 and HTTP/2, over TLS when it has a pair.
    pub protocols: Protocols,
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
/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub modules_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
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
        self.modules
            .get(name)
            .cloned()
            .unwrap_or_else(|| ModuleSettings::with_limits(self.limits))
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

fn build(file: FileConfig, overrides: Overrides) -> Result<Config, ConfigError> {
    let max_instances = file.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
    let base = Limits {
        max_concurrency: default_concurrency(max_instances),
        ..LIMITS
    };
    let limits = merge_limits(&base, &file.limits, "limits")?;
    let mut modules = HashMap::new();
    let mut sources = BTreeMap::new();
    for (name, module) in &file.modules {
        let (settings, source) = module_settings(name, module, &limits)?;
        modules.insert(name.clone(), settings);
        sources.extend(source.map(|source| (name.clone(), source)));
    }
    let any_lists_stores = modules.values().any(|m| !m.kv_stores.is_empty());
    let protocols = protocols::protocols(&file)?;
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
        sources,
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
        kv: kv::kv_settings(file.kv.as_ref(), any_lists_stores)?,
        protocols,
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
