//! `wasmgate kv`: an operator reads, seeds and cleans a store from the shell. Each call is
//! a guest's call (the same limits, errors and metrics path), made as the pseudo-module
//! [`OPERATOR`], each under [`OPERATOR_TIMEOUT`] instead of a request's deadline. The stores are
//! the config's `[kv]` (the default embedded store without one); an embedded store that a
//! running gateway holds is refused with its lock, as a second gateway would be.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::kv::{KvAccess, KvCall, KvError, KvOpenError, KvSession, KvStores, MAX_LIST_KEYS, Op};

/// How long one call of a `wasmgate kv` command may take.
const OPERATOR_TIMEOUT: Duration = Duration::from_secs(10);
/// The module label of the operator's calls.
const OPERATOR: &str = "_operator";

/// Why a `wasmgate kv` command failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreAdminError {
    #[error(transparent)]
    Open(#[from] KvOpenError),
    #[error("store '{store}': {error}")]
    Call { store: String, error: KvError },
}

/// One store, as the operator sees it.
pub struct StoreAdmin {
    name: String,
    session: KvSession,
}

impl StoreAdmin {
    /// Store `name` of the stores `config` describes (must be called within a tokio
    /// runtime).
    pub fn open(config: &Config, name: &str) -> Result<StoreAdmin, StoreAdminError> {
        let settings = config.kv.clone().unwrap_or_default();
        let stores = Arc::new(KvStores::open(&settings)?);
        let access = KvAccess::new(stores, Arc::from(OPERATOR), [name.to_string()]);
        // Each call gets its own deadline (`call`); this one bounds only the open.
        let mut session = KvSession::new(Some(Arc::new(access)), Instant::now() + OPERATOR_TIMEOUT);
        let admin = |session| StoreAdmin {
            name: name.to_string(),
            session,
        };
        match session.open(name) {
            Ok(_) => Ok(admin(session)),
            Err(e) => Err(admin(session).failed(e)),
        }
    }

    /// The value at `key`, if there is one.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreAdminError> {
        let call = self.call(Op::Get)?;
        call.get(key.to_vec()).await.map_err(|e| self.failed(e))
    }

    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<(), StoreAdminError> {
        let call = self.call(Op::Set)?;
        let pair = vec![(key.to_vec(), value.to_vec())];
        call.set_many(pair).await.map_err(|e| self.failed(e))
    }

    /// Deletes `key`, whether or not it exists.
    pub async fn delete(&self, key: &[u8]) -> Result<(), StoreAdminError> {
        let call = self.call(Op::Delete)?;
        call.delete_many(vec![key.to_vec()])
            .await
            .map_err(|e| self.failed(e))
    }

    /// Every key, page by page, in the store's order.
    pub async fn keys(&self) -> Result<Vec<Vec<u8>>, StoreAdminError> {
        let mut all = Vec::new();
        let mut cursor = Some(0);
        while let Some(from) = cursor {
            let call = self.call(Op::List)?;
            let page = call
                .list(from, MAX_LIST_KEYS)
                .await
                .map_err(|e| self.failed(e))?;
            all.extend(page.keys);
            cursor = page.next;
        }
        Ok(all)
    }

    /// A call (`op`) on the store.
    fn call(&self, op: Op) -> Result<KvCall, StoreAdminError> {
        self.session
            .call(0, op)
            .map(|call| call.within(OPERATOR_TIMEOUT))
            .map_err(|e| self.failed(e))
    }

    fn failed(&self, error: KvError) -> StoreAdminError {
        StoreAdminError::Call {
            store: self.name.clone(),
            error,
        }
    }
}
