//! A module file on disk: reading it, and what it is (digest and size) independent of
//! whether it could be loaded. Errors name the reason, never the path.

use std::path::{Path, PathBuf};

use super::digest::Digest;

/// What a module file is, independent of whether it could be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub digest: Digest,
    pub size_bytes: u64,
}

impl FileFacts {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        FileFacts {
            digest: Digest::of(bytes),
            size_bytes: bytes.len() as u64,
        }
    }
}

/// A module file that cannot be read; the message names the reason, never the path.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read the module file: {0}")]
pub struct ReadError(String);

/// Reads a module file.
pub(crate) fn read_module_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    std::fs::read(path).map_err(|e| ReadError(e.kind().to_string()))
}

/// Where module `name` lives in the modules directory `dir`.
pub(crate) fn module_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasm"))
}
