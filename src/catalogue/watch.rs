//! Hot reload: watches the modules directory and syncs each module whose file changed.
//!
//! Events come from `notify` (inotify on Linux) and are debounced per module: a module is
//! synced once its file has been quiet for a moment. The moment depends on what the last
//! event said. A finished write (close after writing), a rename into place or a deletion
//! are final, so the sync follows within [`SETTLED_QUIET`]. A data write is one chunk of a
//! `cp` still in progress, and so is the creation of an empty file: the sync waits for the
//! writer to close the file, or for [`WRITE_STALL`] without a further write (a writer that
//! never closes, or has died). A creation with content already (a link) waits only
//! [`CREATED_QUIET`]. A large `cp` therefore causes one compile, not one per chunk, however
//! slowly it writes; and if a file is read unfinished all the same, the loader reads it
//! again before reporting it broken. From the first write on, the module shows as pending
//! (`/modules`), and a new module's requests wait for it instead of finding nothing.
//!
//! Events are only hints: [`Loader::sync`] looks at the file itself. When the watcher says
//! it may have lost events (an inotify queue overflow), everything is rescanned. So is the
//! directory when an entry whose name starts with `..` changes: Kubernetes ConfigMap and
//! Secret volumes and git-sync publish a new version by swapping a `..data` symlink, and
//! the `NAME.wasm` symlinks through it never change themselves.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::loader::Loader;
use crate::config::name;
use crate::shutdown::Shutdown;

/// Quiet time after an event that ends a change (close-after-write, rename, delete).
pub(crate) const SETTLED_QUIET: Duration = Duration::from_millis(5);
/// Quiet time after the creation of a file that has content already (a hard or symbolic
/// link), in case a write follows.
pub(crate) const CREATED_QUIET: Duration = Duration::from_millis(150);
/// How long a file being written may go without a write before it is taken as finished
/// though its writer has not closed it.
pub(crate) const WRITE_STALL: Duration = Duration::from_secs(3);

/// Watches a modules directory until dropped.
pub(crate) struct ModuleWatcher {
    _watcher: RecommendedWatcher,
}

impl ModuleWatcher {
    /// Starts watching `loader`'s directory. Events are buffered from now on, and handled
    /// once `serve` runs (so none is lost while the first scan compiles).
    pub(crate) fn start(loader: &Loader) -> notify::Result<(ModuleWatcher, WatchEvents)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the gateway is stopping.
            let _ = tx.send(event);
        })?;
        watcher.watch(loader.dir(), RecursiveMode::NonRecursive)?;
        Ok((ModuleWatcher { _watcher: watcher }, WatchEvents { rx }))
    }
}

/// The stream of directory events, to be handled by [`WatchEvents::serve`].
pub(crate) struct WatchEvents {
    rx: mpsc::UnboundedReceiver<notify::Result<Event>>,
}

impl WatchEvents {
    /// Debounces events and syncs modules until shutdown.
    pub(crate) async fn serve(mut self, loader: Loader, shutdown: Shutdown) {
        let mut due: HashMap<Due, Instant> = HashMap::new();
        loop {
            let next = due.values().min().copied();
            tokio::select! {
                event = self.rx.recv() => match event {
                    Some(Ok(event)) if event.need_rescan() => loader.spawn_rescan(),
                    Some(Ok(event)) => note(&event, &loader, &mut due),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watcher error; rescanning the modules directory");
                        loader.spawn_rescan();
                    }
                    None => break,
                },
                () = sleep_until(next), if next.is_some() => start_due(&loader, &mut due),
                () = shutdown.triggered() => break,
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// What a quiet time ends in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Due {
    /// A sync of one module.
    Module(String),
    /// A rescan of the directory, after a `..data`-style swap.
    Rescan,
}

/// Records when each module named by `event` (or the directory) should be synced, and
/// shows a module whose file is being written as pending.
fn note(event: &Event, loader: &Loader, due: &mut HashMap<Due, Instant>) {
    for path in &event.paths {
        let Some(quiet) = quiet_after(&event.kind, path) else {
            continue;
        };
        let what = match module_of(path) {
            Some(name) => {
                if quiet == WRITE_STALL {
                    loader.noticed_write(&name);
                }
                Due::Module(name)
            }
            None if is_swap_entry(path) => Due::Rescan,
            None => continue,
        };
        due.insert(what, Instant::now() + quiet);
    }
}

/// `..data`, `..data_tmp`, `..2026_12_01_...`: the entries of an atomic symlink swap.
fn is_swap_entry(path: &Path) -> bool {
    path.file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f.starts_with(".."))
}

/// How long to wait after an event of `kind` on `path`; `None` for events that change
/// nothing. [`WRITE_STALL`] means the file is being written.
fn quiet_after(kind: &EventKind, path: &Path) -> Option<Duration> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(SETTLED_QUIET),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
            Some(WRITE_STALL)
        }
        EventKind::Create(_) if is_empty_file(path) => Some(WRITE_STALL),
        EventKind::Create(_) => Some(CREATED_QUIET),
        _ => Some(SETTLED_QUIET),
    }
}

/// Whether `path` is an empty regular file (not a link): one just created for writing.
fn is_empty_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

fn module_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    name::from_file_name(file).map(|n| n.as_str().to_string())
}

/// Starts a sync for every module (or the rescan) whose quiet time is over.
fn start_due(loader: &Loader, due: &mut HashMap<Due, Instant>) {
    let now = Instant::now();
    due.retain(|what, at| {
        if *at > now {
            return true;
        }
        match what {
            Due::Module(name) => loader.spawn_sync(name.clone()),
            Due::Rescan => loader.spawn_rescan(),
        }
        false
    });
}
