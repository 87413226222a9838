//! Why a module file could not be made ready to serve. The messages name the reason and
//! never a host path: they end up in `/modules`, the log and HTTP error bodies.

use std::sync::Arc;
use std::time::SystemTime;

use super::file::{FileFacts, ReadError};
use super::preflight::Refusal;
use crate::guest::linkers::LinkError;

/// Why a module could not be made ready to serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot compile the module: it is not WebAssembly (no `\\0asm` magic at its start)")]
    NotWasm,
    #[error("cannot compile the module: {0}")]
    Compile(String),
    /// A compile worker went past one of the `[compile]` bounds.
    #[error("cannot compile the module within its bounds: {0}")]
    CompileBound(String),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("cannot serve the module: {0}")]
    Refused(#[from] Refusal),
    /// A module source (an OCI registry) did not give the module: what it said.
    #[error("{0}")]
    Source(Arc<str>),
}

/// A module file that could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// The file's facts, when it could be read.
    pub facts: Option<FileFacts>,
    pub error: LoadError,
    pub at: SystemTime,
    /// Where the failed version came from, when the loader knows.
    pub origin: Option<Arc<str>>,
}

impl LoadFailure {
    pub(crate) fn new(facts: Option<FileFacts>, error: LoadError) -> Self {
        LoadFailure {
            facts,
            error,
            at: SystemTime::now(),
            origin: None,
        }
    }
}
