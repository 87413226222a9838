//! The compiled-artifact cache: machine code for each module, kept on disk so that a
//! restart loads modules instead of compiling them again.
//!
//! Artifacts live in `cache_dir/<engine fingerprint>/<module sha256>.cwasm`. The fingerprint
//! comes from `Engine::precompile_compatibility_hash`, so an artifact built by another
//! wasmtime version or with other settings is never even looked at.
//!
//! Core modules and components are cached alike ([`Artifact`]); wasmtime's own header tells
//! the two apart and refuses one deserialized as the other.
//!
//! Loading an artifact runs native code (`Module::deserialize` is unsafe), so it is only
//! loaded after checking it against a seal kept beside it (`.seal`): the module digest it
//! was compiled from and the sha256 of the artifact's own bytes. A mismatch — a flipped
//! byte, a truncated write, another module's artifact copied into place — is discarded,
//! logged, counted and recompiled, never executed. The bytes checked are the bytes loaded
//! (read once into memory), so nothing can change between the check and the load.
//!
//! What the seal protects against: corruption, truncation, and artifacts swapped or copied
//! into place by anything that cannot write the cache directory's files with this user's
//! rights. It is an unkeyed digest, so it does not protect against someone who *can* write
//! there: they could write a matching seal too. That is why the gateway refuses, at start,
//! a cache directory (or its engine subdirectory) that another user owns or that group or
//! others may write ([`CacheError::Unsafe`]): then only this user can place native code
//! where it will be loaded.
//!
//! Writes go to a temporary file with a random name, created exclusively (never through a
//! symlink planted at its name) by `tempfile`, then renamed into place, in a directory
//! created with owner-only permissions. The cache has a size cap: when a write takes it
//! past the cap, the least recently used artifacts are removed (a hit refreshes an
//! artifact's mtime).

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::digest::Digest;

/// The first line of every seal; a seal of another format is discarded.
const SEAL_HEADER: &str = "wasmgate-artifact-seal v1";
const ARTIFACT_EXT: &str = "cwasm";
const SEAL_EXT: &str = "seal";
/// Hex characters of the engine fingerprint used as the directory name.
const FINGERPRINT_HEX_LEN: usize = 16;
/// Owner-only: artifacts are executable code.
const DIR_MODE: u32 = 0o700;
#[cfg(test)]
const FILE_MODE: u32 = 0o600;
/// Mode bits that let someone other than the owner create or replace files.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Why the cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache_dir cannot be created or read: {0}")]
    Io(#[from] io::Error),
    #[error(
        "cache_dir is not safe to load native code from: {which} {why}; \
         make it owned by this user and writable by no one else (chmod 700)"
    )]
    Unsafe {
        which: &'static str,
        why: &'static str,
    },
}

/// Counts of what the cache did, for the log and the metrics.
#[derive(Debug, Default)]
pub(crate) struct CacheStats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) discarded: AtomicU64,
    pub(crate) evicted: AtomicU64,
}

/// Compiled code the cache can keep: a core module or a component.
pub(crate) trait Artifact: Sized {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// As for [`Module::deserialize`]: `bytes` must be an artifact wasmtime wrote.
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

impl Artifact for Module {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }

    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Module::deserialize(engine, bytes) }
    }
}

impl Artifact for Component {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }

    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Component::deserialize(engine, bytes) }
    }
}

/// The artifact cache of one engine.
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    max_bytes: u64,
    pub(crate) stats: CacheStats,
}

/// Why an artifact was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Discard {
    #[error("its seal is missing or unreadable")]
    NoSeal,
    #[error("its seal is malformed")]
    BadSeal,
    #[error("it was compiled from another module")]
    WrongModule,
    #[error("its bytes do not match its seal (corrupt or tampered)")]
    Tampered,
    #[error("wasmtime refused it: {0}")]
    Incompatible(String),
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache for `engine` under `root`, after checking that
    /// only this user can write either directory.
    pub(crate) fn open(
        root: &Path,
        engine: &Engine,
        max_bytes: u64,
    ) -> Result<ArtifactCache, CacheError> {
        let dir = root.join(fingerprint(engine));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)?;
        check_private(root, "the directory")?;
        check_private(&dir, "its engine subdirectory")?;
        Ok(ArtifactCache {
            dir,
            max_bytes,
            stats: CacheStats::default(),
        })
    }

    /// The compiled module or component for `digest`, if a sound artifact is cached.
    /// Blocking.
    pub(crate) fn get<A: Artifact>(&self, engine: &Engine, digest: &Digest) -> Option<A> {
        let artifact = self.artifact_path(digest);
        let bytes = match read_no_follow(&artifact) {
            Ok(bytes) => bytes,
            Err(_) => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        match self.verify_and_load(engine, digest, &bytes) {
            Ok(module) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                touch(&artifact);
                Some(module)
            }
            Err(why) => {
                self.stats.discarded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(module_digest = %digest, reason = %why, "cached artifact discarded; recompiling");
                let _ = fs::remove_file(&artifact);
                let _ = fs::remove_file(self.seal_path(digest));
                None
            }
        }
    }

    fn verify_and_load<A: Artifact>(
        &self,
        engine: &Engine,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<A, Discard> {
        let seal = read_no_follow(&self.seal_path(digest)).map_err(|_| Discard::NoSeal)?;
        let seal = String::from_utf8(seal).map_err(|_| Discard::BadSeal)?;
        let (module, artifact) = parse_seal(&seal).ok_or(Discard::BadSeal)?;
        if module != digest.to_string() {
            return Err(Discard::WrongModule);
        }
        if artifact != Digest::of(bytes).to_string() {
            return Err(Discard::Tampered);
        }
        // SAFETY: `bytes` are exactly what this cache wrote for this module digest and this
        // engine fingerprint (checked against the seal just above), in a directory only this
        // user can write; wasmtime checks its own header and engine compatibility on top.
        unsafe { A::deserialize(engine, bytes) }
            .map_err(|e| Discard::Incompatible(format!("{e:#}")))
    }

    /// Stores the compiled `artifact` for `digest`, then trims the cache to its cap.
    /// Blocking.
    pub(crate) fn put(&self, digest: &Digest, artifact: &impl Artifact) -> io::Result<()> {
        let bytes = artifact.serialize().map_err(io::Error::other)?;
        let seal = format!(
            "{SEAL_HEADER}\nmodule {digest}\nartifact {}\n",
            Digest::of(&bytes)
        );
        write_atomically(&self.artifact_path(digest), &bytes)?;
        write_atomically(&self.seal_path(digest), seal.as_bytes())?;
        self.evict_to_cap()
    }

    fn artifact_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.{ARTIFACT_EXT}", digest.hex()))
    }

    fn seal_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.{SEAL_EXT}", digest.hex()))
    }

    /// Removes the least recently used artifacts until the cache fits its cap.
    fn evict_to_cap(&self) -> io::Result<()> {
        let mut artifacts = Vec::new();
        let mut total = 0u64;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == ARTIFACT_EXT) {
                let meta = entry.metadata()?;
                total += meta.len();
                artifacts.push((
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                    path,
                ));
            }
        }
        artifacts.sort();
        for (_, len, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            fs::remove_file(&path)?;
            let _ = fs::remove_file(path.with_extension(SEAL_EXT));
            total -= len;
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(artifact = %display_file(&path), "cache over its cap: least recently used artifact evicted");
        }
        Ok(())
    }
}

/// Reads a file of the cache, refusing to follow a symlink planted at its name.
fn read_no_follow(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Refuses a directory that another user owns, or that group or others may write.
fn check_private(dir: &Path, which: &'static str) -> Result<(), CacheError> {
    let meta = fs::metadata(dir)?;
    let unsafe_because = |why| Err(CacheError::Unsafe { which, why });
    if meta.uid() != effective_uid() {
        return unsafe_because("is owned by another user");
    }
    if meta.permissions().mode() & WRITABLE_BY_OTHERS != 0 {
        return unsafe_because("is writable by group or others");
    }
    Ok(())
}

/// The user this process acts as.
fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn parse_seal(seal: &str) -> Option<(&str, &str)> {
    let mut lines = seal.lines();
    (lines.next()? == SEAL_HEADER).then_some(())?;
    let module = lines.next()?.strip_prefix("module ")?;
    let artifact = lines.next()?.strip_prefix("artifact ")?;
    Some((module, artifact))
}

/// A stable name for everything that makes compiled code compatible with `engine`.
fn fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut hex = hex::encode(hasher.0.finalize());
    hex.truncate(FINGERPRINT_HEX_LEN);
    hex
}

/// Feeds `Hash` into sha256, whose output (unlike `DefaultHasher`'s) is stable.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
}

/// Writes `bytes` to a new temporary file beside `path` (random name, created exclusively,
/// owner-only), then renames it into place; the temporary file is removed on failure.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Marks an artifact as just used, for the LRU eviction.
fn touch(path: &Path) {
    if let Ok(file) = fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn display_file(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    fn module(engine: &Engine, text: &str) -> (Module, Digest) {
        let wasm = wat::parse_str(text).unwrap();
        (Module::new(engine, &wasm).unwrap(), Digest::of(&wasm))
    }

    #[test]
    fn a_stored_artifact_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::open(dir.path(), &engine, u64::MAX).unwrap();
        let (m, digest) = module(&engine, "(module (func (export \"f\")))");
        assert!(cache.get::<Module>(&engine, &digest).is_none());
        cache.put(&digest, &m).unwrap();
        let loaded = cache.get::<Module>(&engine, &digest).expect("hit");
        assert!(loaded.get_export("f").is_some());
        assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_cache_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::open(dir.path(), &engine, u64::MAX).unwrap();
        let (m, digest) = module(&engine, "(module)");
        cache.put(&digest, &m).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache.dir), DIR_MODE);
        assert_eq!(mode(&cache.artifact_path(&digest)), FILE_MODE);
        assert_eq!(mode(&cache.seal_path(&digest)), FILE_MODE);
    }

    #[test]
    fn tampered_truncated_and_swapped_artifacts_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::open(dir.path(), &engine, u64::MAX).unwrap();
        let (a, da) = module(&engine, "(module (func (export \"a\")))");
        let (b, db) = module(&engine, "(module (func (export \"b\")))");
        cache.put(&da, &a).unwrap();
        cache.put(&db, &b).unwrap();

        // Another module's artifact and seal copied into place.
        fs::copy(cache.artifact_path(&db), cache.artifact_path(&da)).unwrap();
        fs::copy(cache.seal_path(&db), cache.seal_path(&da)).unwrap();
        assert!(cache.get::<Module>(&engine, &da).is_none());
        assert!(
            !cache.artifact_path(&da).exists(),
            "a discarded artifact is removed"
        );

        // A flipped byte.
        let mut bytes = fs::read(cache.artifact_path(&db)).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(cache.artifact_path(&db), &bytes).unwrap();
        assert!(cache.get::<Module>(&engine, &db).is_none());

        // A truncated artifact with a fresh seal is still refused (by the seal).
        cache.put(&db, &b).unwrap();
        let bytes = fs::read(cache.artifact_path(&db)).unwrap();
        fs::write(cache.artifact_path(&db), &bytes[..bytes.len() / 2]).unwrap();
        assert!(cache.get::<Module>(&engine, &db).is_none());
        assert_eq!(cache.stats.discarded.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn least_recently_used_artifacts_are_evicted_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let probe = ArtifactCache::open(dir.path(), &engine, u64::MAX).unwrap();
        let (m0, d0) = module(&engine, "(module (func (export \"x0\")))");
        probe.put(&d0, &m0).unwrap();
        let one = fs::metadata(probe.artifact_path(&d0)).unwrap().len();
        // Room for about two artifacts.
        let cache = ArtifactCache::open(dir.path(), &engine, one * 2 + one / 2).unwrap();
        let (m1, d1) = module(&engine, "(module (func (export \"x1\")))");
        let (m2, d2) = module(&engine, "(module (func (export \"x2\")))");
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::options()
            .append(true)
            .open(cache.artifact_path(&d0))
            .unwrap()
            .set_modified(old)
            .unwrap();
        cache.put(&d1, &m1).unwrap();
        cache.put(&d2, &m2).unwrap();
        assert!(
            !cache.artifact_path(&d0).exists(),
            "the oldest artifact is evicted"
        );
        assert!(cache.artifact_path(&d1).exists() && cache.artifact_path(&d2).exists());
        assert_eq!(cache.stats.evicted.load(Ordering::Relaxed), 1);
    }
}
