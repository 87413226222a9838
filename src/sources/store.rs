//! The last good version of every OCI-sourced module, kept in `cache_dir/oci/`, so that a
//! restart with the registry down still serves it.
//!
//! For each module, a small record (`NAME.json`: the reference, the manifest digest, the
//! layer digest) and the layer itself (`blobs/<sha256 hex>.wasm`). A record is written
//! only once its version has loaded, and both files are written to a temporary name and
//! renamed into place, so a crash leaves the previous version whole. Both directories are
//! [`PrivateDir`]s under the handle opened at start, like the artifact cache. A blob is checked
//! against its digest when it is read back; a mismatch is a miss, never a load. Blobs no
//! record names are removed when a record is saved.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::catalogue::digest::Digest;
use crate::catalogue::private_dir::{CacheError, PrivateDir};

/// The directory under `cache_dir` the pulled versions live in.
const STORE_DIR: &str = "oci";
const BLOBS_DIR: &str = "blobs";
const RECORD_EXT: &str = "json";
const BLOB_EXT: &str = "wasm";

/// A version of a module that loaded, as remembered across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pinned {
    /// The `source` it was pulled for (without the scheme).
    pub source: String,
    /// The manifest digest the source resolved to.
    pub manifest: String,
    /// The layer's digest: the module file's sha256.
    pub layer: String,
}

/// Pulled versions on disk.
#[derive(Debug, Clone)]
pub(crate) struct PulledStore {
    records: PrivateDir,
    blobs: PrivateDir,
    /// Held by one save at a time (clones share it): a save's sweep of unreferenced blobs
    /// must not run between another save's blob and its record, or it removes that blob.
    saving: Arc<Mutex<()>>,
}

impl PulledStore {
    /// The store under `cache_dir`, created if needed.
    pub(crate) fn open(cache_dir: &PrivateDir) -> Result<PulledStore, CacheError> {
        let records = cache_dir.child(STORE_DIR)?;
        let blobs = records.child(BLOBS_DIR)?;
        Ok(PulledStore {
            records,
            blobs,
            saving: Arc::default(),
        })
    }

    /// Module `name`'s last good version, if it was pulled for `source`, with its bytes.
    pub(crate) fn load(&self, name: &str, source: &str) -> Option<(Pinned, Vec<u8>)> {
        let text = self.records.read(&record_name(name)).ok()?;
        let pinned: Pinned = serde_json::from_slice(&text).ok()?;
        if pinned.source != source {
            return None;
        }
        let digest = Digest::parse(&pinned.layer)?;
        let bytes = self.blobs.read(&blob_name(&digest)).ok()?;
        if Digest::of(&bytes) != digest {
            tracing::warn!(module = %name, "a stored OCI layer does not match its digest; ignored");
            return None;
        }
        Some((pinned, bytes))
    }

    /// Remembers `pinned` (with its layer's `bytes`) as module `name`'s last good version.
    pub(crate) fn save(&self, name: &str, pinned: &Pinned, bytes: &[u8]) -> std::io::Result<()> {
        let digest = Digest::parse(&pinned.layer).ok_or(std::io::ErrorKind::InvalidInput)?;
        // A save that panicked left nothing half-held: the files are written atomically.
        let _saving = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let blob = blob_name(&digest);
        if !self.blobs.contains(&blob) {
            self.blobs.write_atomically(&blob, bytes)?;
        }
        let record = serde_json::to_vec(pinned).map_err(std::io::Error::other)?;
        self.records.write_atomically(&record_name(name), &record)?;
        self.remove_unreferenced_blobs();
        Ok(())
    }

    fn remove_unreferenced_blobs(&self) {
        let Ok(records) = self.records.files_with(RECORD_EXT) else {
            return;
        };
        let kept: HashSet<String> = records
            .iter()
            .filter_map(|r| self.records.read(&r.name).ok())
            .filter_map(|text| serde_json::from_slice::<Pinned>(&text).ok())
            .filter_map(|p| Digest::parse(&p.layer))
            .map(|d| blob_name(&d))
            .collect();
        let Ok(blobs) = self.blobs.files_with(BLOB_EXT) else {
            return;
        };
        for blob in blobs {
            if !kept.contains(&blob.name) {
                let _ = self.blobs.remove(&blob.name);
            }
        }
    }
}

fn record_name(name: &str) -> String {
    format!("{name}.{RECORD_EXT}")
}

fn blob_name(digest: &Digest) -> String {
    format!("{}.{BLOB_EXT}", digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(source: &str, bytes: &[u8]) -> Pinned {
        Pinned {
            source: source.into(),
            manifest: format!("sha256:{}", "b".repeat(64)),
            layer: Digest::of(bytes).to_string(),
        }
    }

    #[test]
    fn a_saved_version_loads_back_for_its_source_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = PulledStore::open(&PrivateDir::open(dir.path()).unwrap()).unwrap();
        let p = pinned("r:5000/fns/a:v1", b"\0asm one");
        store.save("a", &p, b"\0asm one").unwrap();
        assert_eq!(
            store.load("a", "r:5000/fns/a:v1"),
            Some((p, b"\0asm one".to_vec()))
        );
        assert_eq!(store.load("a", "r:5000/fns/a:v2"), None);
        assert_eq!(store.load("b", "r:5000/fns/a:v1"), None);
    }

    #[test]
    fn a_tampered_blob_is_a_miss_and_old_blobs_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = PulledStore::open(&PrivateDir::open(dir.path()).unwrap()).unwrap();
        let old = pinned("s", b"old");
        store.save("a", &old, b"old").unwrap();
        let new = pinned("s", b"new");
        store.save("a", &new, b"new").unwrap();
        let blobs = std::fs::read_dir(dir.path().join("oci/blobs"))
            .unwrap()
            .count();
        assert_eq!(blobs, 1, "the old layer is removed once no record names it");
        let blob = dir
            .path()
            .join("oci/blobs")
            .join(blob_name(&Digest::of(b"new")));
        std::fs::write(blob, b"evil").unwrap();
        assert_eq!(store.load("a", "s"), None);
    }

    /// Followers save at the same time: one's sweep of unreferenced blobs must never take
    /// another's blob between its write and its record.
    #[test]
    fn saves_at_the_same_time_keep_every_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = PulledStore::open(&PrivateDir::open(dir.path()).unwrap()).unwrap();
        std::thread::scope(|scope| {
            for module in 0..4 {
                let store = store.clone();
                scope.spawn(move || {
                    for version in 0..50 {
                        let bytes = format!("{module}.{version}").into_bytes();
                        let name = format!("m{module}");
                        store.save(&name, &pinned("s", &bytes), &bytes).unwrap();
                        assert!(store.load(&name, "s").is_some(), "{name} v{version}");
                    }
                });
            }
        });
        for module in 0..4 {
            assert!(store.load(&format!("m{module}"), "s").is_some());
        }
    }
}
