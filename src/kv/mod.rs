//! Key-value stores: state that outlives a request (../shared/DESIGN.md "Key-value
//! stores"). A gateway opens one backend at start, embedded or Redis; every module gets
//! a [`KvAccess`] to the names its section lists in `kv_stores`, and each request a
//! [`KvSession`] that the guest's calls (the `wasmgate` host functions of a CGI module,
//! `wasi:keyvalue` of a component) go through: the store's access rule, the limits, the
//! request's deadline and the metrics are all applied there, once, for both ABIs.
//!
//! - [`settings`]: the `[kv]` table; [`error`]: what a call fails with, and its codes;
//! - [`session`]: one request's handles and calls; [`write`]: what a write changes;
//! - [`embedded`] (redb, group-committed) and [`redis`]: the two backends.

pub(crate) mod embedded;
pub(crate) mod error;
pub(crate) mod redis;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod write;

use std::sync::Arc;
use std::time::Duration;

pub use error::KvError;
pub(crate) use session::{KvAccess, KvCall, KvSession, MAX_LIST_KEYS, Op, on};
pub use settings::{Backend, KvLimits, KvSettings};

use crate::metrics::Metrics;
use embedded::Embedded;
use redis::RedisStores;
use write::{KeyPage, Write, Written};

/// The most value bytes one read call answers with (a batch of 1000 keys of 1 MiB values
/// would otherwise be 1 GB in the gateway's heap).
pub(crate) const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;

/// Why the stores cannot be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum KvOpenError {
    #[error(transparent)]
    Embedded(#[from] embedded::OpenError),
    #[error(transparent)]
    Redis(#[from] redis::BadUrl),
}

/// The backend every store lives in.
enum Stores {
    Embedded(Embedded),
    Redis(RedisStores),
}

/// The gateway's stores: the backend, the limits, and where calls are counted.
pub struct KvStores {
    stores: Stores,
    limits: KvLimits,
    metrics: Metrics,
}

impl KvStores {
    /// Opens the backend `settings` names (must be called within a tokio runtime: the
    /// Redis connection is driven by it).
    pub fn open(settings: &KvSettings) -> Result<KvStores, KvOpenError> {
        Self::open_counted(settings, Metrics::disabled())
    }

    pub(crate) fn open_counted(
        settings: &KvSettings,
        metrics: Metrics,
    ) -> Result<KvStores, KvOpenError> {
        let stores = match &settings.backend {
            Backend::Embedded(path) => Stores::Embedded(Embedded::open(path)?),
            Backend::Redis(url) => Stores::Redis(RedisStores::new(url)?),
        };
        Ok(KvStores {
            stores,
            limits: settings.limits,
            metrics,
        })
    }

    pub(crate) fn limits(&self) -> &KvLimits {
        &self.limits
    }

    /// The values at `keys`; [`KvError::TooLarge`] when together they are over
    /// [`MAX_READ_BYTES`] (or one `max_value_bytes`, if that is more), so that no call
    /// makes the gateway hold more.
    pub(crate) async fn get_many(
        &self,
        store: Arc<str>,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let max_bytes = MAX_READ_BYTES.max(self.limits.max_value_bytes);
        match &self.stores {
            Stores::Embedded(s) => s.get_many(store, keys, max_bytes).await,
            Stores::Redis(s) => s.get_many(store, keys, max_bytes).await,
        }
    }

    pub(crate) async fn write(&self, store: Arc<str>, write: Write) -> Result<Written, KvError> {
        let quota = self.limits.max_store_bytes;
        match &self.stores {
            Stores::Embedded(s) => s.write(store, write, quota).await,
            Stores::Redis(s) => s.write(store, write, quota).await,
        }
    }

    pub(crate) async fn list(
        &self,
        store: Arc<str>,
        cursor: u64,
        limit: usize,
    ) -> Result<KeyPage, KvError> {
        match &self.stores {
            Stores::Embedded(s) => s.list(store, cursor, limit).await,
            Stores::Redis(s) => s.list(store, cursor, limit).await,
        }
    }

    /// Counts one call (`op`) of `module` on `store`, and how long it took.
    pub(crate) fn record(
        &self,
        module: &str,
        store: &str,
        op: Op,
        result: &'static str,
        took: Duration,
    ) {
        self.metrics
            .kv_operation(module, store, op.label(), result, took);
    }
}
