//! The embedded backend: every store in one redb file on local disk, for a gateway that
//! needs nothing else.
//!
//! Why redb: it is pure Rust (no C library to build), its commits are crash-safe (a commit
//! that returned is on disk, copy-on-write pages and a checksummed header: a `kill -9` at
//! any point leaves the last commit whole), and its reads are MVCC snapshots that never
//! wait for the writer.
//!
//! Durability costs an fsync per commit, so writes are group-committed: one writer thread
//! takes every write waiting for it (up to [`MAX_BATCH`]), applies each in turn in one
//! transaction, commits once, and only then answers each caller. Under load one fsync
//! acknowledges many requests' writes; alone, a write waits for its own. A write that
//! fails its checks (quota, not a number) changes nothing and does not stop the others.
//! Reads run on tokio's blocking pool, so no worker thread waits for the disk.
//!
//! One gateway at a time: the directory's `lock` file is locked (`flock`) while the store
//! is open, and a second gateway refuses to start, naming it. Closing the store stops the
//! writer thread (after the commit it holds) before the lock is let go.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use super::error::KvError;
use super::write::{KeyPage, Write, Written, add, entry_bytes, parse_counter, within_quota};

/// Every entry of every store, keyed by (store, key): stores never see each other's keys.
const ENTRIES: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("entries");
/// The bytes each store holds (keys and values), for its quota.
const STORE_BYTES: TableDefinition<&str, u64> = TableDefinition::new("store_bytes");
/// The data file, inside the store's directory.
const DATA_FILE: &str = "data.redb";
/// The file whose lock says a gateway has the store open.
const LOCK_FILE: &str = "lock";
/// The most writes one commit takes.
const MAX_BATCH: usize = 1024;

/// Why the embedded store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the key-value store at {0} is in use by another gateway (its lock file is locked); \
         point [kv] path elsewhere or stop the other gateway"
    )]
    Locked(PathBuf),
    #[error("cannot open the key-value store at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
}

/// One write waiting for the writer thread.
struct Pending {
    store: Arc<str>,
    write: Write,
    quota: u64,
    reply: oneshot::Sender<Result<Written, KvError>>,
}

/// The open store. Its fields drop in order: the writer is stopped (and has let go of the
/// database) before the lock is released.
pub(crate) struct Embedded {
    db: Arc<Database>,
    writer: Writer,
    /// Locked while the store is open; unlocked when it is dropped.
    _lock: File,
}

/// The writer thread and the queue to it. Dropping it closes the queue and waits for the
/// thread to commit what it holds and end.
struct Writer {
    queue: Option<mpsc::Sender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(db: Arc<Database>) -> std::io::Result<Writer> {
        let (queue, writes) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wasmgate-kv-writer".into())
            .spawn(move || write_loop(&db, &writes))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `pending`; false once the writer has stopped.
    fn send(&self, pending: Pending) -> bool {
        self.queue.as_ref().is_some_and(|q| q.send(pending).is_ok())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Embedded {
    /// Opens (or creates, owner-only) the store in directory `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Embedded, OpenError> {
        let failed = |reason: String| OpenError::Open {
            path: dir.to_path_buf(),
            reason,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| failed(e.to_string()))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| failed(e.to_string()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(OpenError::Locked(lock_path)),
            Err(TryLockError::Error(e)) => return Err(failed(e.to_string())),
        }
        let db = Database::create(dir.join(DATA_FILE)).map_err(|e| failed(e.to_string()))?;
        create_tables(&db).map_err(|e| failed(e.to_string()))?;
        let db = Arc::new(db);
        let writer = Writer::start(db.clone()).map_err(|e| failed(e.to_string()))?;
        Ok(Embedded {
            db,
            writer,
            _lock: lock,
        })
    }

    /// The values of `keys` in `store`, in order (`None` for an absent key).
    pub(crate) async fn get_many(
        &self,
        store: Arc<str>,
        keys: Vec<Vec<u8>>,
        max_bytes: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            let mut total = 0u64;
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                let value = table.get((&*store, key.as_slice()))?;
                if let Some(value) = &value {
                    total += value.value().len() as u64;
                    if total > max_bytes {
                        return Ok(Err(KvError::TooLarge));
                    }
                }
                values.push(value.map(|v| v.value().to_vec()));
            }
            Ok(Ok(values))
        })
        .await?
    }

    /// Applies `write` to `store`, once it is on disk.
    pub(crate) async fn write(
        &self,
        store: Arc<str>,
        write: Write,
        quota: u64,
    ) -> Result<Written, KvError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            store,
            write,
            quota,
            reply,
        };
        if !self.writer.send(pending) {
            return Err(KvError::Unavailable);
        }
        answer.await.unwrap_or(Err(KvError::Unavailable))
    }

    /// Up to `limit` of `store`'s keys in byte order, from the `cursor`-th.
    pub(crate) async fn list(
        &self,
        store: Arc<str>,
        cursor: u64,
        limit: usize,
    ) -> Result<KeyPage, KvError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            let mut keys = Vec::new();
            let start: (&str, &[u8]) = (&store, &[]);
            for entry in table.range(start..)?.skip(cursor as usize) {
                let (key, _) = entry?;
                let (in_store, key) = key.value();
                if in_store != &*store {
                    break;
                }
                if keys.len() == limit {
                    let next = Some(cursor + limit as u64);
                    return Ok(KeyPage { keys, next });
                }
                keys.push(key.to_vec());
            }
            Ok(KeyPage { keys, next: None })
        })
        .await
    }
}

/// Runs a read on the blocking pool; a storage error is logged and is `unavailable`.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, redb::Error> + Send + 'static,
) -> Result<T, KvError> {
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(storage_failed(&e)),
        Err(_) => Err(KvError::Unavailable),
    }
}

fn storage_failed(error: &redb::Error) -> KvError {
    tracing::warn!(error = %error, "the embedded key-value store failed");
    KvError::Unavailable
}

fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(ENTRIES)?;
    txn.open_table(STORE_BYTES)?;
    txn.commit()?;
    Ok(())
}

/// The writer thread: until every sender is gone, commits what is waiting, as one.
fn write_loop(db: &Database, queue: &mpsc::Receiver<Pending>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let results = commit(db, &batch).unwrap_or_else(|e| {
            let failed = storage_failed(&e);
            vec![Err(failed); batch.len()]
        });
        for (pending, result) in batch.into_iter().zip(results) {
            let _ = pending.reply.send(result);
        }
    }
}

/// Applies every write of `batch` in one transaction and commits it (to disk: redb's
/// default durability is immediate).
fn commit(db: &Database, batch: &[Pending]) -> Result<Vec<Result<Written, KvError>>, redb::Error> {
    let txn = db.begin_write()?;
    let results = {
        let mut tables = Tables {
            entries: txn.open_table(ENTRIES)?,
            bytes: txn.open_table(STORE_BYTES)?,
        };
        batch
            .iter()
            .map(|p| tables.apply(&p.store, &p.write, p.quota))
            .collect::<Result<Vec<_>, _>>()?
    };
    txn.commit()?;
    Ok(results)
}

/// The tables of one write transaction.
struct Tables<'t> {
    entries: Table<'t, (&'static str, &'static [u8]), &'static [u8]>,
    bytes: Table<'t, &'static str, u64>,
}

/// The outer error is the storage's (the whole batch fails); the inner one is the write's
/// own, which changed nothing.
type Applied = Result<Result<Written, KvError>, redb::Error>;

impl Tables<'_> {
    fn apply(&mut self, store: &str, write: &Write, quota: u64) -> Applied {
        let before = self.bytes.get(store)?.map_or(0, |v| v.value());
        let mut after = before;
        // What each key held, so that a write counts only what it changes.
        let mut old = BTreeMap::new();
        let keys: Vec<&[u8]> = match write {
            Write::Set(pairs) => pairs.iter().map(|(k, _)| k.as_slice()).collect(),
            Write::Delete(keys) => keys.iter().map(Vec::as_slice).collect(),
            Write::Increment(key, _) => vec![key.as_slice()],
        };
        for key in keys {
            let value = self.entries.get((store, key))?.map(|v| v.value().to_vec());
            if let Some(value) = &value {
                after -= entry_bytes(key, value.len()).min(after);
            }
            old.insert(key, value);
        }
        let result = match write {
            Write::Set(pairs) => {
                after += pairs
                    .iter()
                    .map(|(k, v)| entry_bytes(k, v.len()))
                    .sum::<u64>();
                if let Err(e) = within_quota(before, after, quota) {
                    return Ok(Err(e));
                }
                for (key, value) in pairs {
                    self.entries
                        .insert((store, key.as_slice()), value.as_slice())?;
                }
                Written::Done
            }
            Write::Delete(keys) => {
                for key in keys {
                    self.entries.remove((store, key.as_slice()))?;
                }
                Written::Done
            }
            Write::Increment(key, delta) => {
                let current = match old.get(key.as_slice()).and_then(Option::as_ref) {
                    Some(value) => parse_counter(value),
                    None => Ok(0),
                };
                let next = match current.and_then(|c| add(c, *delta)) {
                    Ok(next) => next,
                    Err(e) => return Ok(Err(e)),
                };
                let text = next.to_string();
                after += entry_bytes(key, text.len());
                if let Err(e) = within_quota(before, after, quota) {
                    return Ok(Err(e));
                }
                self.entries
                    .insert((store, key.as_slice()), text.as_bytes())?;
                Written::Counter(next)
            }
        };
        self.bytes.insert(store, after)?;
        Ok(Ok(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store dropped right after a write can be opened again at once: the writer thread
    /// has finished and let go of the file before the lock is released.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_store_reopens_as_soon_as_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..50i64 {
            let store = Embedded::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let written = store
                .write(Arc::from("s"), Write::Increment(b"n".to_vec(), 1), u64::MAX)
                .await;
            assert!(
                matches!(written, Ok(Written::Counter(n)) if n == round + 1),
                "{round}"
            );
            drop(store);
        }
    }
}
