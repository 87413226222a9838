//! `wasmgate compile`: fills the compiled-artifact cache for a modules directory and exits,
//! so that container images and CI can ship modules precompiled and a gateway starting from
//! them is ready at once.
//!
//! It builds the runtime exactly as `serve` does, so the artifacts it writes carry the same
//! engine fingerprint and are the ones `serve` will look for.

use std::sync::Arc;

use crate::catalogue::ArtifactCache;
use crate::catalogue::compile::{Compiler, Needs, Provenance};
use crate::catalogue::digest::Digest;
use crate::catalogue::failure::LoadError;
use crate::catalogue::file::{FileFacts, ReadLimits, module_path, read_module_file};
use crate::catalogue::loader::module_files;
use crate::catalogue::private_dir::{CacheError, PrivateDir};
use crate::catalogue::worker::CompileWorkers;
use crate::config::Config;
use crate::runtime::{AllocatorChoice, GuestRuntime, RuntimeError};

/// Why the directory could not be compiled at all.
#[derive(Debug, thiserror::Error)]
pub enum PrecompileError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot read the modules directory: {0}")]
    ModulesDir(std::io::Error),
}

/// A module that is now in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Precompiled {
    pub digest: Digest,
    /// `Cache` when a sound artifact was already there.
    pub provenance: Provenance,
    pub millis: f64,
}

/// Compiles the modules of one directory into the cache.
pub struct Precompiler {
    compiler: Compiler,
    config: Config,
    names: Vec<String>,
    /// Keeps the engine's ticker for as long as the compiler is used.
    _runtime: GuestRuntime,
}

impl Precompiler {
    pub fn new(config: &Config) -> Result<Self, PrecompileError> {
        let runtime = GuestRuntime::new(config, AllocatorChoice::PoolingWithFallback)?;
        let root = PrivateDir::open(&config.cache_dir)?;
        let cache = ArtifactCache::open(&root, runtime.engine(), config.cache_max_bytes)?;
        let names = module_files(&config.modules_dir).map_err(PrecompileError::ModulesDir)?;
        Ok(Precompiler {
            compiler: Compiler::new(&runtime, Some(Arc::new(cache)))
                .in_workers(CompileWorkers::for_config(config)),
            config: config.clone(),
            names,
            _runtime: runtime,
        })
    }

    /// The modules to compile, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Compiles (or finds in the cache) and links one module. Blocking.
    pub fn compile(&self, name: &str) -> Result<Precompiled, LoadError> {
        let dir = &self.config.modules_dir;
        let limits = ReadLimits {
            within: Some(dir),
            max_bytes: self.config.max_module_bytes,
        };
        let bytes = read_module_file(&module_path(dir, name), limits)?;
        let needs = Needs::of(&self.config.module_settings(name));
        let compiled = self
            .compiler
            .compile(&bytes, FileFacts::of(&bytes), needs)?;
        Ok(Precompiled {
            digest: compiled.facts.digest,
            provenance: compiled.provenance,
            millis: compiled.took.as_secs_f64() * 1000.0,
        })
    }
}
