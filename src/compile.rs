//! Turns a module file into something ready to serve: compiled with Cranelift, linked once
//! into an `InstancePre`, with its `_start` export looked up ahead of time.
//!
//! Everything that can be checked before a request arrives is checked here — that the bytes
//! are WebAssembly, that every import is one the host provides, that there is a `_start` —
//! so a broken module is a clear load error in `/modules` and the log, not a surprise at
//! request time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sha2::{Digest as _, Sha256};
use wasmtime::{Engine, InstancePre, Module, ModuleExport};

use crate::cache::ArtifactCache;
use crate::config::{Config, ModuleSettings};
use crate::error::LoadError;
use crate::host::{Host, Linkers};
use crate::metrics::{Metrics, ModuleMetrics};
use crate::preview1::{GuestAbi, StringBlock};

/// The entry point of a WASI command module.
pub const START_EXPORT: &str = "_start";

/// A module's content digest, shown as `sha256:<hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Where a module's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Compiled from the `.wasm` file.
    Compiled,
    /// Loaded from the compiled-artifact cache.
    Cache,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Source::Compiled => "compiled",
            Source::Cache => "cache",
        })
    }
}

/// What a module file is, independent of whether it could be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub digest: Digest,
    pub size_bytes: u64,
}

impl FileFacts {
    pub fn of(bytes: &[u8]) -> Self {
        FileFacts {
            digest: Digest::of(bytes),
            size_bytes: bytes.len() as u64,
        }
    }
}

/// Reads a module file; the error names the reason, never the path.
pub fn read_module_file(path: &Path) -> Result<Vec<u8>, LoadFailure> {
    std::fs::read(path).map_err(|e| LoadFailure {
        facts: None,
        error: LoadError::Read(e.kind().to_string()),
        at: SystemTime::now(),
    })
}

/// A module ready to serve.
pub struct LoadedModule {
    pub name: Arc<str>,
    pub facts: FileFacts,
    pub pre: InstancePre<Host>,
    pub start: ModuleExport,
    /// Which WASI implementation the module is linked against.
    pub abi: GuestAbi,
    /// Its arguments (the module name, then the config's `args`) as the guest reads them.
    pub args: Arc<StringBlock>,
    pub settings: ModuleSettings,
    /// The module's metric series, registered when it was loaded.
    pub metrics: Arc<ModuleMetrics>,
    pub source: Source,
    pub compile_ms: f64,
    pub loaded_at: SystemTime,
}

/// A compiled module linked and ready to instantiate.
pub struct Linked {
    pub pre: InstancePre<Host>,
    pub start: ModuleExport,
    pub abi: GuestAbi,
}

/// A module file that could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub facts: Option<FileFacts>,
    pub error: LoadError,
    pub at: SystemTime,
}

/// Compiles and links modules for one engine and configuration, through the artifact
/// cache when there is one.
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    linkers: Arc<Linkers>,
    config: Arc<Config>,
    cache: Option<Arc<ArtifactCache>>,
    metrics: Metrics,
}

impl Compiler {
    pub fn new(engine: Engine, linkers: Linkers, config: Arc<Config>) -> Self {
        Compiler {
            engine,
            linkers: Arc::new(linkers),
            config,
            cache: None,
            metrics: Metrics::disabled(),
        }
    }

    /// Registers each loaded module's series with `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Loads from, and stores into, `cache`.
    pub fn with_cache(mut self, cache: Arc<ArtifactCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.cache.as_deref()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads, compiles and links the file `path` as module `name`. Blocking: call it off
    /// the async runtime.
    pub fn load_file(&self, name: &str, path: &Path) -> Result<LoadedModule, LoadFailure> {
        let bytes = read_module_file(path)?;
        self.load_bytes(name, &bytes, FileFacts::of(&bytes))
    }

    /// Compiles and links `bytes` (whose `facts` the caller computed) as module `name`.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        facts: FileFacts,
    ) -> Result<LoadedModule, LoadFailure> {
        let started = Instant::now();
        let settings = self.config.module_settings(name);
        match self.compile_and_link(&facts.digest, bytes, &settings) {
            Ok((Linked { pre, start, abi }, source)) => Ok(LoadedModule {
                name: Arc::from(name),
                facts,
                pre,
                start,
                abi,
                args: Arc::new(StringBlock::args(
                    std::iter::once(name).chain(settings.args.iter().map(String::as_str)),
                )),
                settings,
                metrics: self.metrics.module(name),
                source,
                compile_ms: started.elapsed().as_secs_f64() * 1000.0,
                loaded_at: SystemTime::now(),
            }),
            Err(error) => Err(LoadFailure {
                facts: Some(facts),
                error,
                at: SystemTime::now(),
            }),
        }
    }

    fn compile_and_link(
        &self,
        digest: &Digest,
        bytes: &[u8],
        settings: &ModuleSettings,
    ) -> Result<(Linked, Source), LoadError> {
        let (module, source) = self.compile(digest, bytes)?;
        let linked = self.link(&module, settings)?;
        Ok((linked, source))
    }

    /// The module's machine code: from the cache when a sound artifact is there, compiled
    /// (and then cached) otherwise.
    fn compile(&self, digest: &Digest, bytes: &[u8]) -> Result<(Module, Source), LoadError> {
        if let Some(module) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, digest))
        {
            return Ok((module, Source::Cache));
        }
        let module = Module::from_binary(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(one_line(&format!("{e:#}"))))?;
        if let Some(cache) = &self.cache
            && let Err(e) = cache.put(digest, &module)
        {
            tracing::warn!(module_digest = %digest, error = %e, "cannot write the compiled artifact to the cache");
        }
        Ok((module, Source::Compiled))
    }

    /// Links a compiled module against the WASI implementation it needs, and finds its
    /// `_start`.
    pub fn link(&self, module: &Module, settings: &ModuleSettings) -> Result<Linked, LoadError> {
        let start = module
            .get_export_index(START_EXPORT)
            .filter(|_| {
                module
                    .get_export(START_EXPORT)
                    .is_some_and(|e| e.func().is_some())
            })
            .ok_or(LoadError::NoStart)?;
        let abi = GuestAbi::for_module(module, !settings.volumes.is_empty());
        let pre = self
            .linkers
            .get(abi)
            .instantiate_pre(module)
            .map_err(|e| LoadError::Link(one_line(&format!("{e:#}"))))?;
        Ok(Linked { pre, start, abi })
    }
}

/// wasmtime's messages can span lines; a load error is shown on one (log, JSON, HTTP).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
