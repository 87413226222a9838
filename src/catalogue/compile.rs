//! Turns a module file's bytes into something ready to instantiate: compiled with
//! Cranelift (or loaded from the artifact cache), then linked once into an `InstancePre`
//! with its `_start` export looked up ahead of time.
//!
//! Everything that can be checked before a request arrives is checked here — that the bytes
//! are WebAssembly, that every import is one the host provides, that there is a `_start` —
//! so a broken module is a clear load error in `/modules` and the log, not a surprise at
//! request time. What serving needs on top (settings, metrics, arguments) is added by
//! [`ServedModule`](super::served::ServedModule).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Module};

use super::cache::ArtifactCache;
use super::digest::Digest;
use super::failure::LoadError;
use super::file::FileFacts;
use crate::guest::linkers::{Linkers, Prepared, one_line};

/// How every WebAssembly binary, module or component, begins.
const WASM_MAGIC: &[u8] = b"\0asm";

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

/// What compiling a module file produced.
pub(crate) struct Compiled {
    pub(crate) facts: FileFacts,
    pub(crate) prepared: Prepared,
    pub(crate) source: Source,
    /// Compiling (or loading from the cache) and linking, together.
    pub(crate) took: Duration,
}

/// Compiles and links modules for one engine, through the artifact cache when there is one.
#[derive(Clone)]
pub(crate) struct Compiler {
    engine: Engine,
    linkers: Arc<Linkers>,
    cache: Option<Arc<ArtifactCache>>,
}

impl Compiler {
    pub(crate) fn new(
        engine: Engine,
        linkers: Arc<Linkers>,
        cache: Option<Arc<ArtifactCache>>,
    ) -> Self {
        Compiler {
            engine,
            linkers,
            cache,
        }
    }

    /// Compiles and links `bytes` (whose `facts` the caller computed); `has_volumes` links
    /// it against wasmtime-wasi, which can open them. Blocking: call it off the async
    /// runtime.
    pub(crate) fn compile(
        &self,
        bytes: &[u8],
        facts: FileFacts,
        has_volumes: bool,
    ) -> Result<Compiled, LoadError> {
        let started = Instant::now();
        let (module, source) = self.machine_code(&facts.digest, bytes)?;
        let prepared = self.linkers.link(&module, has_volumes)?;
        Ok(Compiled {
            facts,
            prepared,
            source,
            took: started.elapsed(),
        })
    }

    /// The module's machine code: from the cache when a sound artifact is there, compiled
    /// (and then cached) otherwise. Bytes that are not WebAssembly at all are refused
    /// before wasmtime sees them, since its message would quote them (and they may be any
    /// file's, through a symlink).
    fn machine_code(&self, digest: &Digest, bytes: &[u8]) -> Result<(Module, Source), LoadError> {
        if !bytes.starts_with(WASM_MAGIC) {
            return Err(LoadError::NotWasm);
        }
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
}
