//! Turns a module file's bytes into something ready to instantiate: compiled with
//! Cranelift (or loaded from the artifact cache), then linked once into an `InstancePre`
//! with its `_start` export looked up ahead of time — or, for a component, into a
//! `ProxyPre` with its wasi:http handler looked up.
//!
//! A file is a core module or a component by its header ([`Abi::of`]). Everything that can
//! be checked before a request arrives is checked here — that the bytes are WebAssembly,
//! that every import is one the host provides, that there is a `_start` or an HTTP handler
//! — so a broken module is a clear load error in `/modules` and the log, not a surprise at
//! request time. What serving needs on top (settings, metrics, arguments) is added by
//! [`ServedModule`](super::served::ServedModule).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::cache::{Artifact, ArtifactCache};
use super::digest::Digest;
use super::failure::LoadError;
use super::file::FileFacts;
use super::preflight::{self, SlotFit};
pub(crate) use super::worker::CompileWorkers as Workers;
use crate::config::ModuleSettings;
use crate::guest::abi::Abi;
use crate::guest::linkers::{Linkers, Prepared, one_line};
use crate::guest::store::{Footprint, MAX_TABLE_ELEMENTS};
use crate::runtime::GuestRuntime;

/// Where a module's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// Compiled from the `.wasm` file.
    Compiled,
    /// Loaded from the compiled-artifact cache.
    Cache,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Provenance::Compiled => "compiled",
            Provenance::Cache => "cache",
        })
    }
}

/// What a module's settings ask of its compile: wasmtime-wasi's preview1 when it has
/// `volumes` to open, and a pool slot that holds its memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    pub has_volumes: bool,
    pub max_memory_bytes: u64,
}

impl Needs {
    pub(crate) fn of(settings: &ModuleSettings) -> Needs {
        Needs {
            has_volumes: !settings.volumes.is_empty(),
            max_memory_bytes: settings.limits.max_memory_bytes,
        }
    }

    fn slot_fit(self) -> SlotFit {
        SlotFit {
            max_memory_bytes: self.max_memory_bytes,
            max_tables: Footprint::CORE_MODULE.tables,
            max_table_elements: MAX_TABLE_ELEMENTS,
        }
    }
}

/// What compiling a module file produced.
pub(crate) struct Compiled {
    pub(crate) facts: FileFacts,
    pub(crate) prepared: Prepared,
    pub(crate) provenance: Provenance,
    /// Compiling (or loading from the cache) and linking, together.
    pub(crate) took: Duration,
}

/// Compiles and links modules for one engine, through the artifact cache when there is one
/// and in compile workers when there are some.
#[derive(Clone)]
pub(crate) struct Compiler {
    engine: Engine,
    linkers: Arc<Linkers>,
    cache: Option<Arc<ArtifactCache>>,
    workers: Option<Arc<Workers>>,
}

impl Compiler {
    /// A compiler for `runtime`'s engine and linkers, through `cache` when there is one.
    pub(crate) fn new(runtime: &GuestRuntime, cache: Option<Arc<ArtifactCache>>) -> Self {
        Compiler {
            engine: runtime.engine().clone(),
            linkers: runtime.linkers().clone(),
            cache,
            workers: None,
        }
    }

    /// This compiler, compiling in `workers`, which leave what they compile in the cache.
    /// Without a cache there is nowhere for them to leave it, and it compiles in-process.
    pub(crate) fn in_workers(self, workers: Option<Workers>) -> Self {
        Compiler {
            workers: workers.filter(|_| self.cache.is_some()).map(Arc::new),
            ..self
        }
    }

    /// Whether modules the cache does not hold are compiled in worker processes.
    pub(crate) fn compiles_in_workers(&self) -> bool {
        self.workers.is_some()
    }

    /// Checks, compiles and links `bytes` (whose `facts` the caller computed) as its
    /// settings' `needs` ask. Blocking: call it off the async runtime.
    pub(crate) fn compile(
        &self,
        bytes: &[u8],
        facts: FileFacts,
        needs: Needs,
    ) -> Result<Compiled, LoadError> {
        let started = Instant::now();
        let abi = facts.abi.ok_or(LoadError::NotWasm)?;
        preflight::check(bytes, abi, self.linkers.cgi_imports(), needs.slot_fit())?;
        let (prepared, provenance) = match abi {
            Abi::Cgi => {
                let (module, provenance) = self.machine_code::<Module>(&facts.digest, bytes)?;
                (self.linkers.link(&module, needs.has_volumes)?, provenance)
            }
            Abi::WasiHttp | Abi::WasiHttp03 => {
                let (component, provenance) =
                    self.machine_code::<Component>(&facts.digest, bytes)?;
                (self.linkers.link_component(&component)?, provenance)
            }
        };
        Ok(Compiled {
            facts,
            prepared,
            provenance,
            took: started.elapsed(),
        })
    }

    /// The machine code of a module or component: from the cache when a sound artifact is
    /// there; compiled otherwise, by a worker into the cache and then loaded from it, or
    /// here and then cached. Bytes that are not WebAssembly at all were refused before
    /// wasmtime sees them, since its message would quote them (and they may be any
    /// file's, through a symlink).
    fn machine_code<A: Compile>(
        &self,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(A, Provenance), LoadError> {
        if let Some(artifact) = self
            .cache
            .as_ref()
            .and_then(|c| c.get::<A>(&self.engine, digest))
        {
            return Ok((artifact, Provenance::Cache));
        }
        if let (Some(workers), Some(cache)) = (&self.workers, &self.cache) {
            workers.compile(bytes, cache.dir())?;
            let artifact = cache.get::<A>(&self.engine, digest).ok_or_else(|| {
                LoadError::Compile("the compile worker left no usable artifact".into())
            })?;
            return Ok((artifact, Provenance::Compiled));
        }
        let artifact = A::from_binary(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(one_line(&format!("{e:#}"))))?;
        if let Some(cache) = &self.cache
            && let Err(e) = cache.put(digest, &artifact)
        {
            tracing::warn!(module_digest = %digest, error = %e, "cannot write the compiled artifact to the cache");
        }
        Ok((artifact, Provenance::Compiled))
    }
}

/// What Cranelift compiles: a core module or a component.
trait Compile: Artifact {
    fn from_binary(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

impl Compile for Module {
    fn from_binary(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::from_binary(engine, bytes)
    }
}

impl Compile for Component {
    fn from_binary(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::from_binary(engine, bytes)
    }
}
