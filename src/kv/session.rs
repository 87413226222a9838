//! One request's view of the stores: which it may open (its module's `kv_stores`), the
//! handles it has opened, and its deadline. Every call of either ABI goes through a
//! [`KvCall`], which checks the limits before the backend is asked, bounds the wait by
//! the request's deadline (and [`CALL_TIMEOUT`]), and counts the call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::KvStores;
use super::error::{KvError, OK_LABEL};
use super::settings::is_store_name;
use super::write::{KeyPage, Write, Written};

/// The longest one call may wait for its backend, within the request's deadline.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The most keys one list call returns.
pub(crate) const MAX_LIST_KEYS: usize = 1000;
/// The most keys one batch call names.
pub(crate) const MAX_BATCH_KEYS: usize = 1000;
/// The `store` label of an open refused for a name the module does not list: names a
/// guest makes up never become series of their own.
const UNLISTED_STORE: &str = "_unlisted";
/// The `store` label of a call that names no store at all: a bad store name or handle.
const INVALID_STORE: &str = "_invalid";

/// What a call does, as the `op` label of the operations counter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Open,
    Get,
    Set,
    Delete,
    Increment,
    List,
}

impl Op {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Increment => "increment",
            Op::List => "list",
        }
    }
}

/// A module's access to the stores, made when it is loaded: the stores, the module (the
/// `module` label of its calls), and the names its section lists.
pub(crate) struct KvAccess {
    stores: Arc<KvStores>,
    module: Arc<str>,
    allowed: Box<[Arc<str>]>,
}

impl KvAccess {
    pub(crate) fn new(
        stores: Arc<KvStores>,
        module: Arc<str>,
        allowed: impl IntoIterator<Item = String>,
    ) -> KvAccess {
        KvAccess {
            stores,
            module,
            allowed: allowed.into_iter().map(Arc::from).collect(),
        }
    }
}

/// One request's open stores; handle `i` is the `i`-th store it opened.
pub(crate) struct KvSession {
    access: Option<Arc<KvAccess>>,
    open: Vec<Arc<str>>,
    deadline: Instant,
}

impl KvSession {
    /// The session of a request (with `access`, when the gateway has stores) that must end
    /// by `deadline`.
    pub(crate) fn new(access: Option<Arc<KvAccess>>, deadline: Instant) -> Self {
        KvSession {
            access,
            open: Vec::new(),
            deadline,
        }
    }

    /// Opens store `name`: its handle (the same one each time it is opened), or
    /// [`KvError::Invalid`] for a name that cannot be a store's, or [`KvError::Denied`].
    pub(crate) fn open(&mut self, name: &str) -> Result<u32, KvError> {
        if !is_store_name(name) {
            return Err(self.refused(INVALID_STORE, Op::Open, KvError::Invalid));
        }
        if let Some(handle) = self.open.iter().position(|open| &**open == name) {
            return Ok(handle as u32);
        }
        let allowed = self
            .access
            .as_ref()
            .and_then(|access| access.allowed.iter().find(|a| &***a == name).cloned());
        let Some(allowed) = allowed else {
            return Err(self.refused(UNLISTED_STORE, Op::Open, KvError::Denied));
        };
        self.open.push(allowed);
        Ok(self.open.len() as u32 - 1)
    }

    /// A call (`op`) on the store opened as `handle`, or [`KvError::Invalid`] for a bad
    /// handle.
    pub(crate) fn call(&self, handle: u32, op: Op) -> Result<KvCall, KvError> {
        let bad = || self.refused(INVALID_STORE, op, KvError::Invalid);
        let store = self.open.get(handle as usize).ok_or_else(bad)?;
        let access = self.access.as_ref().ok_or_else(bad)?;
        Ok(KvCall {
            stores: access.stores.clone(),
            store: store.clone(),
            module: access.module.clone(),
            deadline: self.deadline,
        })
    }

    /// `error`, counted as a refused `op` on `store` (when there are stores to count in).
    fn refused(&self, store: &str, op: Op, error: KvError) -> KvError {
        if let Some(access) = &self.access {
            access
                .stores
                .record(&access.module, store, op, error.label(), Duration::ZERO);
        }
        error
    }
}

/// One call on one store, owning what it needs, so that a host function can hold it
/// across its wait without borrowing the guest's store.
pub(crate) struct KvCall {
    stores: Arc<KvStores>,
    store: Arc<str>,
    module: Arc<str>,
    deadline: Instant,
}

impl KvCall {
    /// This call with a deadline `timeout` from now instead of its request's.
    pub(crate) fn within(self, timeout: Duration) -> KvCall {
        KvCall {
            deadline: Instant::now() + timeout,
            ..self
        }
    }

    /// The value at `key`; a miss is counted as `not_found`, so that a cache's hit ratio
    /// shows in the metrics.
    pub(crate) async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, KvError> {
        let read = async {
            let mut values = self.read(vec![key]).await?;
            values.pop().flatten().ok_or(KvError::NotFound)
        };
        match self.timed(Op::Get, read).await {
            Ok(value) => Ok(Some(value)),
            Err(KvError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.timed(Op::Get, self.read(keys)).await
    }

    async fn read(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.check_keys(&keys)?;
        self.stores.get_many(self.store.clone(), keys).await
    }

    /// Sets every pair; a key named twice keeps its last value.
    pub(crate) async fn set_many(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), KvError> {
        self.timed(Op::Set, async {
            let limits = self.stores.limits();
            if pairs.len() > MAX_BATCH_KEYS
                || pairs
                    .iter()
                    .any(|(_, v)| v.len() as u64 > limits.max_value_bytes)
            {
                return Err(KvError::TooLarge);
            }
            let keys: Vec<&Vec<u8>> = pairs.iter().map(|(k, _)| k).collect();
            if keys.iter().any(|k| k.len() as u64 > limits.max_key_bytes) {
                return Err(KvError::TooLarge);
            }
            let last: BTreeMap<Vec<u8>, Vec<u8>> = pairs.into_iter().collect();
            self.write(Write::Set(last.into_iter().collect()))
                .await
                .map(|_| ())
        })
        .await
    }

    pub(crate) async fn delete_many(&self, keys: Vec<Vec<u8>>) -> Result<(), KvError> {
        self.timed(Op::Delete, async {
            self.check_keys(&keys)?;
            let mut keys = keys;
            keys.sort();
            keys.dedup();
            self.write(Write::Delete(keys)).await.map(|_| ())
        })
        .await
    }

    /// Adds `delta` to the counter at `key`; its new value.
    pub(crate) async fn increment(&self, key: Vec<u8>, delta: i64) -> Result<i64, KvError> {
        self.timed(Op::Increment, async {
            self.check_keys(std::slice::from_ref(&key))?;
            match self.write(Write::Increment(key, delta)).await? {
                Written::Counter(value) => Ok(value),
                Written::Done => Err(KvError::Unavailable),
            }
        })
        .await
    }

    /// Up to `limit` (at most [`MAX_LIST_KEYS`]) keys from the `cursor`-th, in the
    /// store's order.
    pub(crate) async fn list(&self, cursor: u64, limit: usize) -> Result<KeyPage, KvError> {
        self.timed(Op::List, async {
            let limit = limit.clamp(1, MAX_LIST_KEYS);
            self.stores.list(self.store.clone(), cursor, limit).await
        })
        .await
    }

    /// `error` for an `op` whose arguments were malformed, counted as any other result.
    pub(crate) fn refuse(&self, op: Op, error: KvError) -> KvError {
        self.stores
            .record(&self.module, &self.store, op, error.label(), Duration::ZERO);
        error
    }

    async fn write(&self, write: Write) -> Result<Written, KvError> {
        self.stores.write(self.store.clone(), write).await
    }

    fn check_keys(&self, keys: &[Vec<u8>]) -> Result<(), KvError> {
        let max = self.stores.limits().max_key_bytes;
        if keys.len() > MAX_BATCH_KEYS || keys.iter().any(|k| k.len() as u64 > max) {
            return Err(KvError::TooLarge);
        }
        Ok(())
    }

    /// Runs `call` within the request's deadline and [`CALL_TIMEOUT`], and counts it.
    async fn timed<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        let started = Instant::now();
        let until = self.deadline.min(started + CALL_TIMEOUT);
        let result = tokio::time::timeout_at(until.into(), call)
            .await
            .unwrap_or(Err(KvError::Unavailable));
        let label = match &result {
            Ok(_) => OK_LABEL,
            Err(e) => e.label(),
        };
        self.stores
            .record(&self.module, &self.store, op, label, started.elapsed());
        result
    }
}

/// Runs `op` on `call`, or fails as its handle did. The call owns all it needs, so the
/// guest's store is not borrowed while it waits.
pub(crate) async fn on<T, F, Fut>(call: Result<KvCall, KvError>, op: F) -> Result<T, KvError>
where
    F: FnOnce(KvCall) -> Fut,
    Fut: Future<Output = Result<T, KvError>>,
{
    op(call?).await
}
