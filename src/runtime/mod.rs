//! What every command needs to run guests, made in one place: the engine, the epoch ticker
//! that drives its deadlines, and the linkers. `serve`, `compile`, `run`, the tests and the
//! benches all start from [`GuestRuntime::new`], so none of them can assemble it
//! differently.

mod engine;
mod ticker;

use std::sync::Arc;

use wasmtime::Engine;

pub use engine::AllocatorChoice;
use ticker::EpochTicker;

use crate::catalogue::ArtifactCache;
use crate::catalogue::ServedModule;
use crate::catalogue::compile::{Compiler, Needs};
use crate::catalogue::failure::LoadFailure;
use crate::catalogue::file::FileFacts;
use crate::catalogue::served::ModuleShared;
use crate::config::Config;
use crate::guest::linkers::Linkers;
use crate::metrics::Metrics;

/// Why the runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot define the host functions: {0}")]
    Linkers(String),
    #[error("cannot start the epoch ticker: {0}")]
    Ticker(std::io::Error),
}

/// The engine a compile worker compiles with: the gateway's, with on-demand allocation,
/// which compiles the same machine code as the pool (the artifact cache's fingerprint
/// says so).
pub(crate) fn worker_engine(fuel_metered: bool) -> Result<Engine, RuntimeError> {
    engine::for_worker(fuel_metered).map_err(RuntimeError::Engine)
}

/// The engine, its ticker and the linkers. Deadlines are enforced while it lives.
pub struct GuestRuntime {
    engine: Engine,
    linkers: Arc<Linkers>,
    _ticker: EpochTicker,
}

impl GuestRuntime {
    /// Builds the runtime for `config`, with the allocator `choice` asks for.
    pub fn new(config: &Config, choice: AllocatorChoice) -> Result<GuestRuntime, RuntimeError> {
        let engine = engine::build(config, choice).map_err(RuntimeError::Engine)?;
        let linkers = Linkers::new(&engine).map_err(|e| RuntimeError::Linkers(format!("{e:#}")))?;
        let ticker = EpochTicker::start(&engine).map_err(RuntimeError::Ticker)?;
        Ok(GuestRuntime {
            engine,
            linkers: Arc::new(linkers),
            _ticker: ticker,
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A compiler for this engine, through `cache` when there is one.
    pub(crate) fn compiler(&self, cache: Option<Arc<ArtifactCache>>) -> Compiler {
        Compiler::new(self.engine.clone(), self.linkers.clone(), cache)
    }

    /// Compiles `bytes` as module `name`, with its settings from `config`, as the gateway
    /// would serve it (no cache, no metrics): for `run`, the tests and the benches.
    /// Blocking.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        config: &Config,
    ) -> Result<ServedModule, LoadFailure> {
        let settings = config.module_settings(name);
        let facts = FileFacts::of(bytes);
        let compiled = self
            .compiler(None)
            .compile(bytes, facts.clone(), Needs::of(&settings))
            .map_err(|error| LoadFailure::new(Some(facts), error))?;
        let shared = ModuleShared::new(
            Metrics::disabled().module(name),
            settings.limits.max_concurrency,
        );
        Ok(ServedModule::new(name, compiled, settings, shared))
    }
}
