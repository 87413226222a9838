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

use crate::config::Config;
use crate::guest::linkers::Linkers;

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

    /// The linkers every module of this engine is linked against.
    pub(crate) fn linkers(&self) -> &Arc<Linkers> {
        &self.linkers
    }
}
