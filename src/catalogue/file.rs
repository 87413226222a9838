//! A module file on disk: reading it safely, and what it is (digest and size) independent of
//! whether it could be loaded. Errors name the reason, never the path or the file's bytes.
//!
//! Whatever sits in the modules directory under a `NAME.wasm` name, the read never blocks
//! and never runs away: the file is opened non-blocking (a FIFO cannot hold a reload
//! worker in `open`), only a regular file is read, no more than `max_module_bytes` of it
//! (checked before the read and during it, so `/dev/zero` cannot fill memory), and a
//! symlink is followed only to a regular file inside the modules directory's real path
//! (what Kubernetes ConfigMap volumes and git-sync are made of), never out of it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::digest::Digest;
use crate::guest::abi::Abi;

/// What a module file is, independent of whether it could be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub digest: Digest,
    pub size_bytes: u64,
    /// What its header says it is; `None` when it is not WebAssembly.
    pub abi: Option<Abi>,
}

impl FileFacts {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        FileFacts {
            digest: Digest::of(bytes),
            size_bytes: bytes.len() as u64,
            abi: Abi::of(bytes),
        }
    }
}

/// A module file that cannot be read; the message names the reason, never the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the module file: {0}")]
    Io(String),
    #[error("the module file is not a regular file but {0}")]
    NotRegular(&'static str),
    #[error("the module file is a symlink to somewhere outside the modules directory")]
    OutsideModulesDir,
    #[error("the module file is larger than max_module_bytes ({0} bytes)")]
    TooLarge(u64),
}

impl ReadError {
    fn io(e: std::io::Error) -> ReadError {
        ReadError::Io(e.kind().to_string())
    }
}

/// Where a module file may be read from, and how much of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits<'a> {
    /// The modules directory a symlink must resolve into; `None` for a file named on the
    /// command line.
    pub within: Option<&'a Path>,
    pub max_bytes: u64,
}

/// Reads a module file within `limits`.
pub(crate) fn read_module_file(path: &Path, limits: ReadLimits<'_>) -> Result<Vec<u8>, ReadError> {
    let target = resolve(path, limits.within)?;
    let file = File::options()
        .read(true)
        .custom_flags(
            rustix::fs::OFlags::NONBLOCK.bits() as i32 | rustix::fs::OFlags::NOFOLLOW.bits() as i32,
        )
        .open(&target)
        .map_err(ReadError::io)?;
    let meta = file.metadata().map_err(ReadError::io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(describe(kind)));
    }
    if meta.len() > limits.max_bytes {
        return Err(ReadError::TooLarge(limits.max_bytes));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte past the cap tells a file that grew while it was read.
    file.take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::io)?;
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ReadError::TooLarge(limits.max_bytes));
    }
    Ok(bytes)
}

/// The file to open: `path` itself, or, for a symlink, its target once it is known to be
/// inside `within`'s real path.
fn resolve(path: &Path, within: Option<&Path>) -> Result<PathBuf, ReadError> {
    let link = std::fs::symlink_metadata(path).map_err(ReadError::io)?;
    if !link.file_type().is_symlink() {
        return Ok(path.to_path_buf());
    }
    let target = std::fs::canonicalize(path).map_err(ReadError::io)?;
    if let Some(dir) = within {
        let dir = std::fs::canonicalize(dir).map_err(ReadError::io)?;
        if !target.starts_with(&dir) {
            return Err(ReadError::OutsideModulesDir);
        }
    }
    Ok(target)
}

/// What a non-regular file is, for the error message.
fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "something else"
    }
}

/// Where module `name` lives in the modules directory `dir`.
pub(crate) fn module_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANYWHERE: ReadLimits<'static> = ReadLimits {
        within: None,
        max_bytes: 1 << 20,
    };

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.wasm");
        let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, mode).unwrap();
        assert_eq!(
            read_module_file(&fifo, ANYWHERE),
            Err(ReadError::NotRegular("a FIFO"))
        );
    }

    #[test]
    fn a_directory_and_a_device_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("d.wasm");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            read_module_file(&sub, ANYWHERE),
            Err(ReadError::NotRegular("a directory"))
        );
        assert_eq!(
            read_module_file(Path::new("/dev/zero"), ANYWHERE),
            Err(ReadError::NotRegular("a device"))
        );
    }

    #[test]
    fn symlinks_resolve_only_inside_the_modules_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"root:x:0:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("ok.wasm"), b"\0asm").unwrap();
        std::os::unix::fs::symlink(data.join("ok.wasm"), dir.path().join("ok.wasm")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("bad.wasm"))
            .unwrap();
        let limits = ReadLimits {
            within: Some(dir.path()),
            max_bytes: 1 << 20,
        };
        assert_eq!(
            read_module_file(&dir.path().join("ok.wasm"), limits).unwrap(),
            b"\0asm"
        );
        assert_eq!(
            read_module_file(&dir.path().join("bad.wasm"), limits),
            Err(ReadError::OutsideModulesDir)
        );
    }

    #[test]
    fn a_file_past_the_cap_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.wasm");
        std::fs::write(&big, vec![0u8; 4096]).unwrap();
        let limits = ReadLimits {
            within: None,
            max_bytes: 4095,
        };
        assert_eq!(
            read_module_file(&big, limits),
            Err(ReadError::TooLarge(4095))
        );
        let limits = ReadLimits {
            within: None,
            max_bytes: 4096,
        };
        assert_eq!(read_module_file(&big, limits).unwrap().len(), 4096);
    }
}
