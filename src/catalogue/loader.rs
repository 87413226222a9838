//! Keeps the table in step with the modules directory: the first scan at start-up, then
//! one module at a time whenever the watcher reports a change.
//!
//! [`Loader::sync`] is the single way a module's state changes: it looks at the file as it
//! is now — gone (stop serving), unchanged (nothing to do), or new bytes (compile, then
//! serve or record the failure) — so it is safe to call for any event, any number of times.
//! Syncs of one module are serialised by a per-name lock; syncs of different modules run in
//! parallel. Compilation is CPU-bound and blocking, so it never runs on a worker that serves
//! requests. At start-up, when nothing is served yet, it runs on tokio's blocking pool, one
//! module per core, and Cranelift spreads each module over every core (wasmtime's parallel
//! compilation uses rayon's global pool). While serving, it runs on a rayon pool of its own
//! with one core fewer than the machine and at a lower scheduling priority (nice
//! [`RELOAD_NICENESS`]); wasmtime's parallel compilation then stays inside that pool. A
//! storm of reloads so leaves a core, and the scheduler's preference, to the requests:
//! measured in BENCHMARKS.md, the p99 of a steady load while a module is recompiled every
//! 100 ms. When modules compile in worker processes (`serve`), a reload waits for its
//! worker on tokio's blocking pool instead, so a long compile holds up no other module's.
//!
//! A version on its way shows in the table as pending: from the watcher's first sight of
//! a write (digest unknown), then with its digest while it compiles. A file that fails to
//! compile is read once more after [`REREAD_PAUSE`]: if it changed meanwhile, it was read
//! while still being written, and the new bytes are compiled instead of a failure being
//! recorded (a half-written file is never reported, let alone served).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::task::TaskTracker;

use super::compile::{Compiler, Needs, Provenance};
use super::digest::Digest;
use super::failure::{LoadError, LoadFailure};
use super::file::{FileFacts, ReadLimits, module_path, read_module_file};
use super::served::ServedModule;
use super::table::ModuleTable;
use crate::config::Config;
use crate::config::name;
use crate::guest::module::ModuleShared;
use crate::kv::KvStores;
use crate::metrics::{LoadResult, Metrics};

/// When a sync happens: it decides how many compiles may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The first scan, before the public listener accepts.
    Startup,
    /// A change while serving.
    Reload,
}

/// Loads the module files of one directory into a table.
#[derive(Clone)]
pub(crate) struct Loader {
    compiler: Compiler,
    config: Arc<Config>,
    table: Arc<ModuleTable>,
    dir: PathBuf,
    startup_compiles: Arc<Semaphore>,
    reload_pool: Arc<rayon::ThreadPool>,
    locks: Arc<DashMap<String, Arc<Mutex<()>>>>,
    metrics: Metrics,
    /// Where its syncs run, so that a stopping gateway can wait for them.
    tasks: TaskTracker,
    /// The key-value stores, when the config uses them.
    kv: Option<Arc<KvStores>>,
}

impl Loader {
    /// Fails only if the reload compile threads cannot be started.
    pub(crate) fn new(
        compiler: Compiler,
        config: Arc<Config>,
        table: Arc<ModuleTable>,
        metrics: Metrics,
        tasks: TaskTracker,
        kv: Option<Arc<KvStores>>,
    ) -> Result<Self, rayon::ThreadPoolBuildError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Loader {
            compiler,
            dir: config.modules_dir.clone(),
            config,
            table,
            startup_compiles: Arc::new(Semaphore::new(cores)),
            reload_pool: Arc::new(reload_pool(cores.saturating_sub(1).max(1))?),
            locks: Arc::new(DashMap::new()),
            metrics,
            tasks,
            kv,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Syncs every module file in the directory, in parallel, and waits for all of them.
    pub(crate) async fn load_all(&self) -> io::Result<()> {
        self.sync_all(module_files(&self.dir)?, Phase::Startup)
            .await;
        Ok(())
    }

    /// Syncs every module file in the directory and every module in the table: what a
    /// watcher does when it may have missed events.
    pub(crate) async fn rescan(&self) {
        let mut names = module_files(&self.dir).unwrap_or_default();
        names.extend(self.table.names());
        names.sort();
        names.dedup();
        self.sync_all(names, Phase::Reload).await;
    }

    /// Shows module `name` as pending: the watcher saw its file being written.
    pub(crate) fn noticed_write(&self, name: &str) {
        if !self.config.sources.contains_key(name) {
            self.table
                .mark_pending(name, None, || self.new_shared(name));
        }
    }

    /// Syncs module `name` in a task of its own, as a change while serving.
    pub(crate) fn spawn_sync(&self, name: String) {
        let loader = self.clone();
        self.tasks
            .spawn(async move { loader.sync(&name, Phase::Reload).await });
    }

    /// Rescans the directory in a task of its own.
    pub(crate) fn spawn_rescan(&self) {
        let loader = self.clone();
        self.tasks.spawn(async move { loader.rescan().await });
    }

    async fn sync_all(&self, names: Vec<String>, phase: Phase) {
        let tasks: Vec<_> = names
            .into_iter()
            .map(|name| {
                let loader = self.clone();
                self.tasks
                    .spawn(async move { loader.sync(&name, phase).await })
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a module sync task failed");
            }
        }
    }

    /// Brings module `name` in line with its file. A module whose config names a
    /// `source` is not read from the directory: its source's poller loads it.
    pub(crate) async fn sync(&self, name: &str, phase: Phase) {
        if self.config.sources.contains_key(name) {
            return;
        }
        let path = self.path_of(name);
        let (dir, max_bytes) = (self.dir.clone(), self.config.max_module_bytes);
        let origin = Origin::file(name);
        let announce = self.announcer(name);
        // The outcome is in the table; a file has nobody else to tell.
        let _ = self
            .load(name, phase, origin, move |compiler, current, needs| {
                let limits = ReadLimits {
                    within: Some(&dir),
                    max_bytes,
                };
                match read_module_file(&path, limits) {
                    Ok(bytes) => {
                        let reread = || read_module_file(&path, limits).ok();
                        compile_unless_rewritten(compiler, bytes, current, needs, &announce, reread)
                    }
                    Err(_) if !path.exists() => Step::Gone,
                    Err(error) => Step::Failed(LoadFailure::new(None, error.into())),
                }
            })
            .await;
    }

    /// What shows a version of `name` as compiling, digest and all.
    fn announcer(&self, name: &str) -> impl Fn(Digest) + Send + 'static {
        let (loader, name) = (self.clone(), name.to_string());
        move |digest| {
            loader
                .table
                .mark_pending(&name, Some(digest), || loader.new_shared(&name))
        }
    }

    /// Loads `bytes` as module `name`, from `origin` (a source other than the directory).
    /// Returns the load error, if the bytes did not become (or stay) the served version.
    pub(crate) async fn load_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        origin: Origin,
        phase: Phase,
    ) -> Result<(), LoadError> {
        let announce = self.announcer(name);
        self.load(name, phase, origin, move |compiler, current, needs| {
            compile_if_changed(compiler, &bytes, current, needs, &announce)
        })
        .await
    }

    /// Records that module `name`'s source failed; a version already serving stays.
    pub(crate) fn source_failed(&self, name: &str, error: LoadError, origin: Origin) {
        self.apply(name, Step::Failed(LoadFailure::new(None, error)), origin);
    }

    /// Shows module `name` as waiting for its source, unless it has loaded or failed
    /// already (whichever comes first, the real outcome wins).
    pub(crate) fn source_pending(&self, name: &str, error: LoadError, origin: Origin) {
        let mut failure = LoadFailure::new(None, error);
        failure.origin = Some(origin.0);
        self.table
            .record_failure_if_unknown(name, failure, || self.new_shared(name));
    }

    /// Forgets module `name`'s recorded failure: its source answers again, and the version
    /// serving is the one it names.
    pub(crate) fn source_recovered(&self, name: &str) {
        self.table.clear_failure(name);
    }

    /// Runs `job` (which reads and compiles) off the request workers, under module
    /// `name`'s lock, and applies what it found.
    async fn load<F>(
        &self,
        name: &str,
        phase: Phase,
        origin: Origin,
        job: F,
    ) -> Result<(), LoadError>
    where
        F: FnOnce(&Compiler, Option<Digest>, Needs) -> Step + Send + 'static,
    {
        let lock = self.locks.entry(name.to_string()).or_default().clone();
        let _guard = lock.lock().await;
        let current = self.table.current_digest(name);
        let compiler = self.compiler.clone();
        let needs = Needs::of(&self.config.module_settings(name));
        let job = move || job(&compiler, current, needs);
        let outcome = match phase {
            Phase::Startup => {
                let Ok(_permit) = self.startup_compiles.acquire().await else {
                    return Err(stopped());
                };
                tokio::task::spawn_blocking(job).await.ok()
            }
            // The compile itself runs in a worker process, at the lowest priority: waiting
            // for it must not hold up the reload of another module.
            Phase::Reload if self.compiler.compiles_in_workers() => {
                tokio::task::spawn_blocking(job).await.ok()
            }
            Phase::Reload => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.reload_pool.spawn(move || {
                    let _ = tx.send(job());
                });
                rx.await.ok()
            }
        };
        let step = outcome.unwrap_or_else(|| Step::Failed(LoadFailure::new(None, stopped())));
        let result = match &step {
            Step::Failed(failure) => Err(failure.error.clone()),
            _ => Ok(()),
        };
        self.apply(name, step, origin);
        self.metrics.set_modules_loaded(self.table.serving_count());
        result
    }

    fn apply(&self, name: &str, step: Step, origin: Origin) {
        match step {
            Step::Gone => {
                if self.table.remove(name) {
                    tracing::info!(module = %name, "module removed");
                    self.metrics.module_load(name, LoadResult::Removed, None);
                }
            }
            Step::Unchanged => self.table.settle_unchanged(name),
            Step::Compiled(compiled) => {
                let (result, compile) = match compiled.provenance {
                    Provenance::Compiled => (LoadResult::Compiled, Some(compiled.took)),
                    Provenance::Cache => (LoadResult::CacheHit, None),
                };
                let settings = self.config.module_settings(name);
                let shared = self
                    .table
                    .shared_of(name)
                    .unwrap_or_else(|| self.new_shared(name));
                let module = ServedModule::new(name, *compiled, settings, shared);
                let module = Arc::new(module.with_origin(origin.0));
                self.metrics.module_load(name, result, compile);
                let old = self.table.install(module.clone());
                log_loaded(&module, old.as_deref());
            }
            Step::Failed(mut failure) => {
                failure.origin = Some(origin.0);
                tracing::warn!(
                    module = %name,
                    error = %failure.error,
                    digest = %failure.facts.as_ref().map(|f| f.digest.to_string()).unwrap_or_default(),
                    "module failed to load; the last good version, if any, keeps serving"
                );
                self.table
                    .record_failure(name, failure, || self.new_shared(name));
                self.metrics.module_load(name, LoadResult::Failed, None);
            }
        }
    }

    /// The series and permits of a module seen for the first time.
    fn new_shared(&self, name: &str) -> ModuleShared {
        let settings = self.config.module_settings(name);
        ModuleShared::new(name, self.metrics.module(name), &settings, self.kv.as_ref())
    }

    fn path_of(&self, name: &str) -> PathBuf {
        module_path(&self.dir, name)
    }
}

/// How much lower than the request workers reload compiles are scheduled.
pub(crate) const RELOAD_NICENESS: i32 = 19;

/// How long a sync waits before reading a file that failed to compile once more, to tell
/// a file still being written from a broken one.
pub(crate) const REREAD_PAUSE: Duration = Duration::from_millis(250);
/// How many times one sync reads a file again that keeps changing and failing; the
/// writes that change it start syncs of their own.
const MAX_REREADS: u32 = 4;

/// The pool reload compiles run on: `threads` threads at a lower priority.
fn reload_pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("wasmgate-reload-{i}"))
        .start_handler(|_| lower_priority())
        .build()
}

/// Lowers the calling thread's scheduling priority. On Linux a nice value belongs to one
/// thread, so this leaves the request workers as they are; elsewhere it would renice the
/// whole process, so it does nothing there.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if rustix::process::setpriority_process(None, RELOAD_NICENESS).is_err() {
        tracing::debug!("cannot lower the reload compile thread's priority");
    }
}

/// What the blocking half of a sync found.
enum Step {
    Gone,
    Unchanged,
    Compiled(Box<super::compile::Compiled>),
    Failed(LoadFailure),
}

/// Compiles `bytes` unless they are the version `current` already describes; tells
/// `announce` the digest it is about to compile.
fn compile_if_changed(
    compiler: &Compiler,
    bytes: &[u8],
    current: Option<Digest>,
    needs: Needs,
    announce: &impl Fn(Digest),
) -> Step {
    let facts = FileFacts::of(bytes);
    if current == Some(facts.digest) {
        return Step::Unchanged;
    }
    announce(facts.digest);
    match compiler.compile(bytes, facts.clone(), needs) {
        Ok(compiled) => Step::Compiled(Box::new(compiled)),
        Err(error) => Step::Failed(LoadFailure::new(Some(facts), error)),
    }
}

/// Compiles a file's `bytes`; when they fail, reads the file again after [`REREAD_PAUSE`]
/// (`reread`), and compiles what it holds now if that changed: bytes read while the file
/// was still being written fail, and must not be reported as the file's.
fn compile_unless_rewritten(
    compiler: &Compiler,
    mut bytes: Vec<u8>,
    current: Option<Digest>,
    needs: Needs,
    announce: &impl Fn(Digest),
    reread: impl Fn() -> Option<Vec<u8>>,
) -> Step {
    for _ in 0..MAX_REREADS {
        let step = compile_if_changed(compiler, &bytes, current, needs, announce);
        if !matches!(step, Step::Failed(_)) {
            return step;
        }
        std::thread::sleep(REREAD_PAUSE);
        match reread() {
            Some(again) if again != bytes => bytes = again,
            _ => return step,
        }
    }
    compile_if_changed(compiler, &bytes, current, needs, announce)
}

fn stopped() -> LoadError {
    LoadError::Compile("the compiler stopped unexpectedly".into())
}

/// Where a version of a module came from, as `/modules` shows it: the file's path
/// relative to the modules directory, or an OCI reference with its resolved digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin(pub Arc<str>);

impl Origin {
    pub(crate) fn file(name: &str) -> Origin {
        Origin(Arc::from(format!("{name}.wasm")))
    }
}

/// One log line per load: module, old → new digest, compile time, and where it came from.
fn log_loaded(module: &ServedModule, old: Option<&ServedModule>) {
    let new = module;
    let compile_ms = format_args!("{:.1}", new.took.as_secs_f64() * 1000.0);
    match old {
        Some(old) => tracing::info!(
            module = %module.name(),
            old = %old.facts.digest,
            new = %new.facts.digest,
            compile_ms = %compile_ms,
            source = %new.provenance,
            "module reloaded"
        ),
        None => tracing::info!(
            module = %module.name(),
            digest = %new.facts.digest,
            compile_ms = %compile_ms,
            source = %new.provenance,
            "module loaded"
        ),
    }
}

/// The module names of the `NAME.wasm` entries in `dir`, whatever kind of file each is:
/// one that is not a regular file (or a symlink to one) is reported failed when it is read.
pub(crate) fn module_files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str().and_then(name::from_file_name) {
            names.push(name.as_str().to_string());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::config::Overrides;
    use crate::runtime::{AllocatorChoice, GuestRuntime};

    const HELLO: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

    fn compiler() -> (Compiler, Needs) {
        let config = Config::load(None, Overrides::default()).unwrap();
        let runtime = GuestRuntime::new(&config, AllocatorChoice::OnDemand).unwrap();
        let needs = Needs::of(&config.module_settings("m"));
        (Compiler::new(&runtime, None), needs)
    }

    /// A file read while it was still being written fails to compile; read again, it is
    /// whole, and that is what is compiled, not reported.
    #[test]
    fn bytes_read_mid_write_are_read_again_not_reported() {
        let (compiler, needs) = compiler();
        let whole = wat::parse_str(HELLO).unwrap();
        let half = whole[..whole.len() / 2].to_vec();
        let rereads = Cell::new(0);
        let reread = || {
            rereads.set(rereads.get() + 1);
            Some(whole.clone())
        };
        let step = compile_unless_rewritten(&compiler, half.clone(), None, needs, &|_| {}, reread);
        assert!(matches!(step, Step::Compiled(_)));
        assert_eq!(rereads.get(), 1);

        // A file that is broken as it stands is reported after one look more.
        let step = compile_unless_rewritten(&compiler, half.clone(), None, needs, &|_| {}, || {
            Some(half.clone())
        });
        assert!(matches!(step, Step::Failed(_)));
    }
}
