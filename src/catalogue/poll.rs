//! `watch = "poll"`: notices changes in the modules directory by looking at it every
//! `poll_interval_ms`, for NFS and other shared volumes, where the change events of
//! writes made on another host never arrive.
//!
//! Each look lists the `NAME.wasm` entries and stats each (through a symlink, so a
//! Kubernetes `..data` swap changes what it sees). An entry whose device, inode, size or
//! times moved, a new one and a vanished one are synced, exactly as an event would have
//! them synced. An entry modified less than [`RECENT_WRITE`] ago may be a copy still in
//! progress: it shows as pending and is looked at again on the next poll rather than
//! synced now.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::loader::{Loader, module_files};
use crate::metrics::{Metrics, PollResult};
use crate::shutdown::Shutdown;

/// How recently a file may have been written and still be taken as finished.
const RECENT_WRITE: Duration = Duration::from_millis(150);

/// The `source` label of the directory's polls.
pub(crate) const DIRECTORY_SOURCE: &str = "modules_dir";

/// What a module entry looked like: enough to tell that its file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// The directory as last seen: each entry's stamp (`None`: it cannot be stat'ed).
type Snapshot = HashMap<String, Option<Stamp>>;

/// Polls a modules directory.
pub(crate) struct DirectoryPoller {
    seen: Snapshot,
    interval: Duration,
    metrics: Metrics,
}

impl DirectoryPoller {
    /// Takes the first look now, before the first scan loads, so that a change made while
    /// the scan compiles is seen by the first poll.
    pub(crate) fn start(loader: &Loader, interval: Duration, metrics: Metrics) -> DirectoryPoller {
        DirectoryPoller {
            seen: look(loader.dir()).unwrap_or_default(),
            interval,
            metrics,
        }
    }

    /// Polls until shutdown.
    pub(crate) async fn serve(mut self, loader: Loader, shutdown: Shutdown) {
        let mut every = tokio::time::interval(self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.poll(&loader).await,
                () = shutdown.triggered() => return,
            }
        }
    }

    async fn poll(&mut self, loader: &Loader) {
        let now = match look(loader.dir()) {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e.kind(), "cannot list the modules directory; polling on");
                self.metrics
                    .source_poll(DIRECTORY_SOURCE, PollResult::Error);
                return;
            }
        };
        let changed = changes(&self.seen, &now);
        let mut synced = 0;
        for name in changed {
            match now.get(&name) {
                Some(Some(stamp)) if is_recent(stamp) => {
                    loader.noticed_write(&name);
                    continue;
                }
                Some(stamp) => self.seen.insert(name.clone(), *stamp),
                None => self.seen.remove(&name),
            };
            synced += 1;
            loader.spawn_sync(name);
        }
        let result = match synced {
            0 => PollResult::Unchanged,
            _ => PollResult::Changed,
        };
        self.metrics.source_poll(DIRECTORY_SOURCE, result);
    }
}

/// The names whose entries differ between two looks, including new and vanished ones.
fn changes(before: &Snapshot, now: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = now
        .iter()
        .filter(|(name, stamp)| before.get(*name) != Some(stamp))
        .map(|(name, _)| name.clone())
        .chain(before.keys().filter(|n| !now.contains_key(*n)).cloned())
        .collect();
    names.sort();
    names
}

/// Whether a file was modified so recently that its writer may not be done.
fn is_recent(stamp: &Stamp) -> bool {
    let modified = SystemTime::UNIX_EPOCH + Duration::from_nanos(stamp.mtime_ns.max(0) as u64);
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age < RECENT_WRITE)
}

fn look(dir: &Path) -> std::io::Result<Snapshot> {
    Ok(module_files(dir)?
        .into_iter()
        .map(|name| {
            let stamp = std::fs::metadata(dir.join(format!("{name}.wasm")))
                .ok()
                .map(|m| Stamp {
                    dev: m.dev(),
                    ino: m.ino(),
                    len: m.len(),
                    mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                    ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
                });
            (name, stamp)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len: u64) -> Option<Stamp> {
        Some(Stamp {
            dev: 1,
            ino: 2,
            len,
            mtime_ns: 0,
            ctime_ns: 0,
        })
    }

    #[test]
    fn new_changed_and_vanished_entries_are_changes() {
        let before: Snapshot = [("same", stamp(1)), ("grown", stamp(1)), ("gone", stamp(1))]
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        let now: Snapshot = [("same", stamp(1)), ("grown", stamp(2)), ("new", None)]
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        assert_eq!(changes(&before, &now), ["gone", "grown", "new"]);
    }
}
