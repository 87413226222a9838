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
//! there: they could write a matching seal too. That is why the cache lives in a
//! [`PrivateDir`]: refused at start if another user owns or may write it or could swap any
//! part of its path, then used only through the handle opened at start, so only this user
//! can place native code where it will be loaded.
//!
//! Writes go to a temporary file with a random name, created exclusively, then renamed
//! into place. The cache has a size cap: when a write takes it past the cap, the least
//! recently used artifacts are removed (a hit refreshes an artifact's mtime).

use std::hash::{Hash, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::digest::Digest;
use super::private_dir::{CacheError, PrivateDir};

/// The first line of every seal; a seal of another format is discarded.
const SEAL_HEADER: &str = "wasmgate-artifact-seal v1";
const ARTIFACT_EXT: &str = "cwasm";
const SEAL_EXT: &str = "seal";
/// Hex characters of the engine fingerprint used as the directory name.
const FINGERPRINT_HEX_LEN: usize = 16;
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
    dir: PrivateDir,
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
    /// Opens (creating if needed) the cache for `engine` in its subdirectory of `root`.
    pub(crate) fn open(
        root: &PrivateDir,
        engine: &Engine,
        max_bytes: u64,
    ) -> Result<ArtifactCache, CacheError> {
        Ok(ArtifactCache::within(
            root.child(&fingerprint(engine))?,
            max_bytes,
        ))
    }

    /// The cache for `engine` under the directory `root` names, as `serve` and `run`
    /// open it: `None`, with a warning, when it cannot be created or read (everything is
    /// then compiled); an error when it is not safe to load native code from.
    pub(crate) fn open_at(
        root: &std::path::Path,
        engine: &Engine,
        max_bytes: u64,
    ) -> Result<Option<(PrivateDir, ArtifactCache)>, CacheError> {
        let Some(root) = usable(PrivateDir::open(root))? else {
            return Ok(None);
        };
        let cache = usable(ArtifactCache::open(&root, engine, max_bytes))?;
        Ok(cache.map(|cache| (root, cache)))
    }

    /// The cache kept in `dir`, the engine's own subdirectory (as a compile worker is
    /// handed it).
    pub(crate) fn within(dir: PrivateDir, max_bytes: u64) -> ArtifactCache {
        ArtifactCache {
            dir,
            max_bytes,
            stats: CacheStats::default(),
        }
    }

    /// The directory artifacts are kept in, for a compile worker to inherit.
    pub(crate) fn dir(&self) -> &PrivateDir {
        &self.dir
    }

    /// The compiled module or component for `digest`, if a sound artifact is cached.
    /// Blocking.
    pub(crate) fn get<A: Artifact>(&self, engine: &Engine, digest: &Digest) -> Option<A> {
        let artifact = artifact_name(digest);
        let bytes = match self.dir.read(&artifact) {
            Ok(bytes) => bytes,
            Err(_) => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        match self.verify_and_load(engine, digest, &bytes) {
            Ok(module) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                let _ = self.dir.touch(&artifact);
                Some(module)
            }
            Err(why) => {
                self.stats.discarded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(module_digest = %digest, reason = %why, "cached artifact discarded; recompiling");
                let _ = self.dir.remove(&artifact);
                let _ = self.dir.remove(&seal_name(digest));
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
        let seal = self
            .dir
            .read(&seal_name(digest))
            .map_err(|_| Discard::NoSeal)?;
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
        self.dir.write_atomically(&artifact_name(digest), &bytes)?;
        self.dir
            .write_atomically(&seal_name(digest), seal.as_bytes())?;
        self.evict_to_cap()
    }

    /// Removes the least recently used artifacts until the cache fits its cap.
    fn evict_to_cap(&self) -> io::Result<()> {
        let mut artifacts = self.dir.files_with(ARTIFACT_EXT)?;
        let mut total: u64 = artifacts.iter().map(|a| a.len).sum();
        artifacts.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        for artifact in artifacts {
            if total <= self.max_bytes {
                break;
            }
            self.dir.remove(&artifact.name)?;
            if let Some(stem) = artifact.name.strip_suffix(ARTIFACT_EXT) {
                let _ = self.dir.remove(&format!("{stem}{SEAL_EXT}"));
            }
            total -= artifact.len;
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(artifact = %artifact.name, "cache over its cap: least recently used artifact evicted");
        }
        Ok(())
    }
}

/// What was opened, or `None` (with a warning) when the trouble is only I/O.
fn usable<T>(opened: Result<T, CacheError>) -> Result<Option<T>, CacheError> {
    match opened {
        Ok(opened) => Ok(Some(opened)),
        Err(e @ CacheError::Io(_)) => {
            tracing::warn!(error = %e, "the compiled-module cache cannot be used; modules are compiled every time");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn artifact_name(digest: &Digest) -> String {
    format!("{}.{ARTIFACT_EXT}", digest.hex())
}

fn seal_name(digest: &Digest) -> String {
    format!("{}.{SEAL_EXT}", digest.hex())
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::time::SystemTime;

    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    fn module(engine: &Engine, text: &str) -> (Module, Digest) {
        let wasm = wat::parse_str(text).unwrap();
        (Module::new(engine, &wasm).unwrap(), Digest::of(&wasm))
    }

    /// A cache in a fresh directory, with the path of its engine subdirectory.
    struct Fixture {
        _root: tempfile::TempDir,
        dir: PathBuf,
        engine: Engine,
    }

    impl Fixture {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            let engine = engine();
            let dir = root.path().join(fingerprint(&engine));
            Fixture {
                _root: root,
                dir,
                engine,
            }
        }

        fn cache(&self, max_bytes: u64) -> ArtifactCache {
            let root = PrivateDir::open(self.dir.parent().unwrap()).unwrap();
            ArtifactCache::open(&root, &self.engine, max_bytes).unwrap()
        }

        fn artifact(&self, digest: &Digest) -> PathBuf {
            self.dir.join(artifact_name(digest))
        }

        fn seal(&self, digest: &Digest) -> PathBuf {
            self.dir.join(seal_name(digest))
        }
    }

    #[test]
    fn a_stored_artifact_loads_back() {
        let f = Fixture::new();
        let cache = f.cache(u64::MAX);
        let (m, digest) = module(&f.engine, "(module (func (export \"f\")))");
        assert!(cache.get::<Module>(&f.engine, &digest).is_none());
        cache.put(&digest, &m).unwrap();
        let loaded = cache.get::<Module>(&f.engine, &digest).expect("hit");
        assert!(loaded.get_export("f").is_some());
        assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_cache_directory_is_private() {
        let f = Fixture::new();
        let cache = f.cache(u64::MAX);
        let (m, digest) = module(&f.engine, "(module)");
        cache.put(&digest, &m).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.dir), 0o700);
        assert_eq!(mode(&f.artifact(&digest)), 0o600);
        assert_eq!(mode(&f.seal(&digest)), 0o600);
        let names: Vec<_> = fs::read_dir(&f.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
    }

    #[test]
    fn tampered_truncated_and_swapped_artifacts_are_discarded() {
        let f = Fixture::new();
        let cache = f.cache(u64::MAX);
        let (a, da) = module(&f.engine, "(module (func (export \"a\")))");
        let (b, db) = module(&f.engine, "(module (func (export \"b\")))");
        cache.put(&da, &a).unwrap();
        cache.put(&db, &b).unwrap();

        // Another module's artifact and seal copied into place.
        fs::copy(f.artifact(&db), f.artifact(&da)).unwrap();
        fs::copy(f.seal(&db), f.seal(&da)).unwrap();
        assert!(cache.get::<Module>(&f.engine, &da).is_none());
        assert!(!f.artifact(&da).exists(), "a discarded artifact is removed");

        // A flipped byte.
        let mut bytes = fs::read(f.artifact(&db)).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(f.artifact(&db), &bytes).unwrap();
        assert!(cache.get::<Module>(&f.engine, &db).is_none());

        // A truncated artifact with a fresh seal is still refused (by the seal).
        cache.put(&db, &b).unwrap();
        let bytes = fs::read(f.artifact(&db)).unwrap();
        fs::write(f.artifact(&db), &bytes[..bytes.len() / 2]).unwrap();
        assert!(cache.get::<Module>(&f.engine, &db).is_none());
        assert_eq!(cache.stats.discarded.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_symlink_planted_at_an_artifact_name_is_not_followed() {
        let f = Fixture::new();
        let cache = f.cache(u64::MAX);
        let (a, da) = module(&f.engine, "(module (func (export \"a\")))");
        let (_, db) = module(&f.engine, "(module (func (export \"b\")))");
        cache.put(&da, &a).unwrap();
        std::os::unix::fs::symlink(f.artifact(&da), f.artifact(&db)).unwrap();
        std::os::unix::fs::symlink(f.seal(&da), f.seal(&db)).unwrap();
        assert!(cache.get::<Module>(&f.engine, &db).is_none());
    }

    #[test]
    fn least_recently_used_artifacts_are_evicted_past_the_cap() {
        let f = Fixture::new();
        let probe = f.cache(u64::MAX);
        let (m0, d0) = module(&f.engine, "(module (func (export \"x0\")))");
        probe.put(&d0, &m0).unwrap();
        let one = fs::metadata(f.artifact(&d0)).unwrap().len();
        // Room for about two artifacts.
        let cache = f.cache(one * 2 + one / 2);
        let (m1, d1) = module(&f.engine, "(module (func (export \"x1\")))");
        let (m2, d2) = module(&f.engine, "(module (func (export \"x2\")))");
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::options()
            .append(true)
            .open(f.artifact(&d0))
            .unwrap()
            .set_modified(old)
            .unwrap();
        cache.put(&d1, &m1).unwrap();
        cache.put(&d2, &m2).unwrap();
        assert!(!f.artifact(&d0).exists(), "the oldest artifact is evicted");
        assert!(!f.seal(&d0).exists(), "with its seal");
        assert!(f.artifact(&d1).exists() && f.artifact(&d2).exists());
        assert_eq!(cache.stats.evicted.load(Ordering::Relaxed), 1);
    }
}
