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
use wasmtime::{Engine, InstancePre, Linker, Module, ModuleExport};

use crate::config::{Config, ModuleSettings};
use crate::error::LoadError;
use crate::host::Host;

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
        f.write_str(match self {
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

/// A module ready to serve.
pub struct LoadedModule {
    pub name: Arc<str>,
    pub facts: FileFacts,
    pub pre: InstancePre<Host>,
    pub start: ModuleExport,
    pub settings: ModuleSettings,
    pub source: Source,
    pub compile_ms: f64,
    pub loaded_at: SystemTime,
}

/// A module file that could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub facts: Option<FileFacts>,
    pub error: LoadError,
    pub at: SystemTime,
}

/// Compiles and links modules for one engine and configuration.
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    linker: Arc<Linker<Host>>,
    config: Arc<Config>,
}

impl Compiler {
    pub fn new(engine: Engine, linker: Linker<Host>, config: Arc<Config>) -> Self {
        Compiler {
            engine,
            linker: Arc::new(linker),
            config,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads, compiles and links the file `path` as module `name`. Blocking: call it off
    /// the async runtime.
    pub fn load_file(&self, name: &str, path: &Path) -> Result<LoadedModule, LoadFailure> {
        let bytes = std::fs::read(path).map_err(|e| LoadFailure {
            facts: None,
            error: LoadError::Read(e.kind().to_string()),
            at: SystemTime::now(),
        })?;
        self.load_bytes(name, &bytes)
    }

    /// Compiles and links `bytes` as module `name`.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<LoadedModule, LoadFailure> {
        let facts = FileFacts {
            digest: Digest::of(bytes),
            size_bytes: bytes.len() as u64,
        };
        let started = Instant::now();
        self.compile_and_link(bytes)
            .map(|(pre, start)| LoadedModule {
                name: Arc::from(name),
                facts: facts.clone(),
                pre,
                start,
                settings: self.config.module_settings(name),
                source: Source::Compiled,
                compile_ms: started.elapsed().as_secs_f64() * 1000.0,
                loaded_at: SystemTime::now(),
            })
            .map_err(|error| LoadFailure {
                facts: Some(facts),
                error,
                at: SystemTime::now(),
            })
    }

    fn compile_and_link(
        &self,
        bytes: &[u8],
    ) -> Result<(InstancePre<Host>, ModuleExport), LoadError> {
        let module = Module::from_binary(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        self.link(&module)
    }

    /// Links a compiled module and finds its `_start`.
    pub fn link(&self, module: &Module) -> Result<(InstancePre<Host>, ModuleExport), LoadError> {
        let start = module
            .get_export_index(START_EXPORT)
            .filter(|_| {
                module
                    .get_export(START_EXPORT)
                    .is_some_and(|e| e.func().is_some())
            })
            .ok_or(LoadError::NoStart)?;
        let pre = self
            .linker
            .instantiate_pre(module)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        Ok((pre, start))
    }
}
