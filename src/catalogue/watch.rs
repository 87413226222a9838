//! Hot reload: watches the modules directory and syncs each module whose file changed.
//!
//! Events come from `notify` (inotify on Linux) and are debounced per module: a module is
//! synced once its file has been quiet for a moment. The moment depends on what the last
//! event said. A finished write (close after writing), a rename into place, a creation or a
//! deletion are final, so the sync follows within [`SETTLED_QUIET`]. A bare data write may
//! be one chunk of a `cp` still in progress, so it waits [`WRITING_QUIET`] for more. A
//! large `cp` therefore causes one compile, not one per chunk, and a sync never reads a file
//! mid-copy unless the copier stalls for longer than that; even then the truncated module
//! fails to compile and never replaces the version being served, and the write that
//! completes it triggers the next sync.
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

/// Quiet time after an event that ends a change (close-after-write, rename, create, delete).
pub(crate) const SETTLED_QUIET: Duration = Duration::from_millis(5);
/// Quiet time after a data write that may be followed by more.
pub(crate) const WRITING_QUIET: Duration = Duration::from_millis(150);

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
                    Some(Ok(event)) => note(&event, &mut due),
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

/// Records when each module named by `event` (or the directory) should be synced.
fn note(event: &Event, due: &mut HashMap<Due, Instant>) {
    let Some(quiet) = quiet_after(&event.kind) else {
        return;
    };
    for path in &event.paths {
        let what = match module_of(path) {
            Some(name) => Due::Module(name),
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

/// How long to wait after an event of `kind`; `None` for events that change nothing.
fn quiet_after(kind: &EventKind) -> Option<Duration> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(SETTLED_QUIET),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
            Some(WRITING_QUIET)
        }
        _ => Some(SETTLED_QUIET),
    }
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
