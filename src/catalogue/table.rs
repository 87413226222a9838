//! The module table: which modules exist and which version of each is being served.
//!
//! A `DashMap` keyed by module name, read on every request and written only when a module
//! file is loaded, replaced or removed. A request takes an `Arc` of the version it found, so
//! a reload swaps the entry atomically while requests in flight finish on the version they
//! started with. A failed load never replaces a good version: it is recorded beside it.
//! Each entry keeps its module's metric series, so that a request for a module that failed
//! to load is counted without registering anything.
//!
//! Names are hashed with foldhash rather than SipHash: the table is looked up on every
//! request, and HashDoS does not apply, since requests only read it and its keys are the
//! operator's module names.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::Notify;

use super::compile::Provenance;
use super::digest::Digest;
use super::failure::LoadFailure;
use super::served::ServedModule;
use crate::guest::abi::Abi;
use crate::guest::cgi::preview1::Preview1;
use crate::guest::module::ModuleShared;
use crate::metrics::ModuleMetrics;

/// One module file's state.
#[derive(Clone)]
struct Entry {
    /// The version requests run, if any version ever loaded.
    serving: Option<Arc<ServedModule>>,
    /// The latest load failure, when the file on disk is not the version being served.
    failure: Option<Arc<LoadFailure>>,
    /// The module's metric series and permits, the same across its versions and failures.
    shared: ModuleShared,
    /// A version being written or compiled, not serving yet.
    pending: Option<Pending>,
}

/// A version on its way: being written (its digest not known yet) or being compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) digest: Option<Digest>,
    pub(crate) since: SystemTime,
}

/// A pending version as `/modules` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PendingStatus {
    /// `null` while the file is still being written.
    pub(crate) digest: Option<String>,
    /// Unix seconds.
    pub(crate) since: u64,
}

/// What a request finds under a name.
pub(crate) enum Lookup {
    Ready(Arc<ServedModule>),
    /// The file exists but no version of it could be loaded.
    Unavailable(Arc<LoadFailure>, Arc<ModuleMetrics>),
    /// No version serves yet, and one is being written or compiled: for how long so far.
    Loading(Duration, Arc<ModuleMetrics>),
    NotFound,
}

/// When a module's source was last asked, and last answered (Unix seconds), as
/// `/modules` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct SourceChecks {
    pub(crate) checked_at: Option<u64>,
    pub(crate) last_success_at: Option<u64>,
}

/// A map keyed by module name.
type ByName<V> = DashMap<String, V, foldhash::fast::RandomState>;

/// All modules, by name.
#[derive(Default)]
pub(crate) struct ModuleTable {
    modules: ByName<Entry>,
    /// When each module with a source of its own was last checked.
    checks: ByName<SourceChecks>,
    ready: AtomicBool,
    /// Woken whenever a load ends (installed, failed or removed), for requests waiting
    /// on a module that is loading.
    settled: Notify,
}

/// A module as `/modules` reports it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModuleStatus {
    pub(crate) name: String,
    pub(crate) digest: Option<String>,
    pub(crate) size_bytes: Option<u64>,
    /// `ready`, `failed`, or `loading` (a new module's first version on its way).
    pub(crate) state: &'static str,
    pub(crate) error: Option<String>,
    /// The version being written or compiled, beside the one serving.
    pub(crate) pending: Option<PendingStatus>,
    pub(crate) source: Option<Provenance>,
    pub(crate) compile_ms: Option<f64>,
    pub(crate) loaded_at: Option<u64>,
    /// Which WASI implementation serves it: `cgi` (the gateway's own stdio functions) or
    /// `wasi` (wasmtime-wasi's complete preview1).
    pub(crate) wasi: Option<&'static str>,
    /// How the module is served: `cgi`, `wasi-http` or `wasi-http@0.3` (a failed file's
    /// from its header alone: `cgi` or `wasi-http`).
    pub(crate) abi: Option<Abi>,
    /// Where the version described came from: the file relative to the modules
    /// directory, or the OCI reference with its resolved digest.
    pub(crate) origin: Option<String>,
    /// For a module with an OCI source: when its source was last asked, and last answered.
    #[serde(flatten)]
    pub(crate) checks: Option<SourceChecks>,
}

impl ModuleTable {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Finds the module a request should run.
    pub(crate) fn lookup(&self, name: &str) -> Lookup {
        match self.modules.get(name) {
            None => Lookup::NotFound,
            Some(entry) => match (&entry.serving, &entry.pending, &entry.failure) {
                (Some(module), _, _) => Lookup::Ready(module.clone()),
                (None, Some(pending), _) => Lookup::Loading(
                    pending.since.elapsed().unwrap_or_default(),
                    entry.shared.metrics.clone(),
                ),
                (None, None, Some(failure)) => {
                    Lookup::Unavailable(failure.clone(), entry.shared.metrics.clone())
                }
                (None, None, None) => Lookup::NotFound,
            },
        }
    }

    /// Looks `name` up, waiting while it is loading (at most `wait`): what a request
    /// for a module that is being deployed gets once it is ready, has failed or the wait
    /// is over.
    pub(crate) async fn lookup_settled(&self, name: &str, wait: Duration) -> Lookup {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            // Registered before looking, so that a load ending in between is not missed.
            settled.as_mut().enable();
            let found = self.lookup(name);
            if !matches!(found, Lookup::Loading(..))
                || tokio::time::timeout_at(deadline, settled).await.is_err()
            {
                return found;
            }
        }
    }

    /// Shows a version of `name` on its way (being written when `digest` is `None`,
    /// compiling otherwise). A module seen for the first time gets what `shared` makes.
    pub(crate) fn mark_pending(
        &self,
        name: &str,
        digest: Option<Digest>,
        shared: impl FnOnce() -> ModuleShared,
    ) {
        let mut entry = self
            .modules
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(shared()));
        let since = match entry.pending {
            Some(pending) => pending.since,
            None => SystemTime::now(),
        };
        entry.pending = Some(Pending { digest, since });
    }

    /// The load of `name` ended with nothing new to serve (the file was unchanged): it
    /// is no longer pending, and a module that never served is forgotten.
    pub(crate) fn settle_unchanged(&self, name: &str) {
        self.modules.remove_if_mut(name, |_, entry| {
            entry.pending = None;
            entry.serving.is_none() && entry.failure.is_none()
        });
        self.settled.notify_waiters();
    }

    /// Serves `module` from now on, in place of any earlier version or failure.
    pub(crate) fn install(&self, module: Arc<ServedModule>) -> Option<Arc<ServedModule>> {
        let name = module.name().to_string();
        let shared = module.guest.shared.clone();
        let mut entry = self
            .modules
            .entry(name)
            .or_insert_with(|| Entry::new(shared.clone()));
        entry.failure = None;
        entry.pending = None;
        entry.shared = shared;
        let old = entry.serving.replace(module);
        drop(entry);
        self.settled.notify_waiters();
        old
    }

    /// Records that the file `name` failed to load; a version already serving stays. A
    /// module seen for the first time gets what `shared` makes for it.
    pub(crate) fn record_failure(
        &self,
        name: &str,
        failure: LoadFailure,
        shared: impl FnOnce() -> ModuleShared,
    ) {
        let mut entry = self
            .modules
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(shared()));
        entry.failure = Some(Arc::new(failure));
        entry.pending = None;
        drop(entry);
        self.settled.notify_waiters();
    }

    /// Records `failure` for module `name` only if nothing at all is known of it yet: a
    /// placeholder that any real outcome, earlier or later, takes precedence over.
    pub(crate) fn record_failure_if_unknown(
        &self,
        name: &str,
        failure: LoadFailure,
        shared: impl FnOnce() -> ModuleShared,
    ) {
        self.modules
            .entry(name.to_string())
            .or_insert_with(|| Entry {
                failure: Some(Arc::new(failure)),
                ..Entry::new(shared())
            });
    }

    /// Records a check of module `name`'s source.
    pub(crate) fn record_check(&self, name: &str, checks: SourceChecks) {
        self.checks.insert(name.to_string(), checks);
    }

    /// Forgets module `name`'s recorded failure, keeping the version serving.
    pub(crate) fn clear_failure(&self, name: &str) {
        if let Some(mut entry) = self.modules.get_mut(name) {
            entry.failure = None;
        }
    }

    /// What a known module's versions share, so that a new version counts into the same
    /// series and permits.
    pub(crate) fn shared_of(&self, name: &str) -> Option<ModuleShared> {
        self.modules.get(name).map(|entry| entry.shared.clone())
    }

    /// Stops serving `name`; returns whether it was known.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let known = self.modules.remove(name).is_some();
        self.settled.notify_waiters();
        known
    }

    /// The digest of the file the table last saw for `name` (served or failed), so that
    /// an unchanged file is not compiled again.
    pub(crate) fn current_digest(&self, name: &str) -> Option<Digest> {
        let entry = self.modules.get(name)?;
        match (&entry.failure, &entry.serving) {
            (Some(failure), _) => failure.facts.as_ref().map(|f| f.digest),
            (None, Some(module)) => Some(module.facts.digest),
            (None, None) => None,
        }
    }

    /// The names of every known module file.
    pub(crate) fn names(&self) -> Vec<String> {
        self.modules.iter().map(|e| e.key().clone()).collect()
    }

    /// How many modules are serving.
    pub(crate) fn serving_count(&self) -> usize {
        self.modules.iter().filter(|e| e.serving.is_some()).count()
    }

    /// Marks the first scan of the modules directory as done.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Every module's status, sorted by name.
    pub(crate) fn statuses(&self) -> Vec<ModuleStatus> {
        let mut all: Vec<ModuleStatus> = self
            .modules
            .iter()
            .map(|e| ModuleStatus {
                checks: self.checks.get(e.key()).map(|c| *c),
                ..status(e.key(), e.value())
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

impl Entry {
    fn new(shared: ModuleShared) -> Entry {
        Entry {
            serving: None,
            failure: None,
            shared,
            pending: None,
        }
    }
}

fn status(name: &str, entry: &Entry) -> ModuleStatus {
    let serving = entry.serving.as_deref();
    let failure = entry.failure.as_deref();
    // The digest and size describe the file on disk: the failed one when the latest load
    // failed, otherwise the version being served.
    let facts = failure
        .and_then(|f| f.facts.as_ref())
        .or(serving.map(|m| &m.facts));
    ModuleStatus {
        name: name.to_string(),
        digest: facts.map(|f| f.digest.to_string()),
        size_bytes: facts.map(|f| f.size_bytes),
        state: match (serving, &entry.pending) {
            (Some(_), _) => "ready",
            (None, Some(_)) => "loading",
            (None, None) => "failed",
        },
        error: failure.map(|f| f.error.to_string()),
        pending: entry.pending.map(|p| PendingStatus {
            digest: p.digest.map(|d| d.to_string()),
            since: unix_seconds(p.since),
        }),
        source: serving.map(|m| m.provenance),
        compile_ms: serving.map(|m| m.took.as_secs_f64() * 1000.0),
        loaded_at: serving.map(|m| unix_seconds(m.loaded_at)),
        wasi: serving
            .and_then(|m| m.guest.preview1())
            .map(Preview1::label),
        // A served module's link tells a 0.3 component from a 0.2 one; the header alone
        // tells a failed file's kind.
        abi: match (failure, serving) {
            (None, Some(module)) => Some(module.guest.abi()),
            _ => facts.and_then(|f| f.abi),
        },
        origin: failure
            .and_then(|f| f.origin.as_deref())
            .or(serving.map(|m| &*m.origin))
            .map(str::to_string),
        checks: None,
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
