//! `wasmgate compile`: fills the compiled-artifact cache for a modules directory and exits,
//! so that container images and CI can ship modules precompiled and a gateway starting from
//! them is ready at once.
//!
//! It builds the engine exactly as `serve` does, so the artifacts it writes carry the same
//! engine fingerprint and are the ones `serve` will look for.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::ArtifactCache;
use crate::compile::{Compiler, Digest, Source};
use crate::config::Config;
use crate::engine::{AllocatorChoice, GatewayEngine};
use crate::error::{EngineError, LoadError};
use crate::host;
use crate::loader::module_files;

/// Why the directory could not be compiled at all.
#[derive(Debug, thiserror::Error)]
pub enum PrecompileError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot open the cache directory: {0}")]
    Cache(std::io::Error),
    #[error("cannot read the modules directory: {0}")]
    ModulesDir(std::io::Error),
}

/// How one module fared.
#[derive(Debug)]
pub struct ModuleReport {
    pub name: String,
    pub result: Result<Compiled, LoadError>,
}

/// A module that is now in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Compiled {
    pub digest: Digest,
    /// `Cache` when a sound artifact was already there.
    pub source: Source,
    pub millis: f64,
}

/// Compiles the modules of one directory into the cache.
pub struct Precompiler {
    compiler: Compiler,
    dir: PathBuf,
    names: Vec<String>,
}

impl Precompiler {
    pub fn new(config: &Config) -> Result<Self, PrecompileError> {
        let engine = GatewayEngine::new(config, AllocatorChoice::PoolingWithFallback)?;
        let linkers =
            host::Linkers::new(&engine.engine).map_err(|e| EngineError(format!("{e:#}")))?;
        let cache = ArtifactCache::open(&config.cache_dir, &engine.engine, config.cache_max_bytes)
            .map_err(PrecompileError::Cache)?;
        let compiler = Compiler::new(engine.engine.clone(), linkers, Arc::new(config.clone()))
            .with_cache(Arc::new(cache));
        let names = module_files(&config.modules_dir).map_err(PrecompileError::ModulesDir)?;
        Ok(Precompiler {
            compiler,
            dir: config.modules_dir.clone(),
            names,
        })
    }

    /// The modules to compile, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Compiles (or finds in the cache) and links one module. Blocking.
    pub fn compile(&self, name: &str) -> ModuleReport {
        let path = self.dir.join(format!("{name}.wasm"));
        let result = self
            .compiler
            .load_file(name, &path)
            .map(|m| Compiled {
                digest: m.facts.digest,
                source: m.source,
                millis: m.compile_ms,
            })
            .map_err(|f| f.error);
        ModuleReport {
            name: name.to_string(),
            result,
        }
    }
}
