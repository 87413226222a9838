//! `wasi:keyvalue@0.2.0-draft` (`store`, `atomics`, `batch`) for components, over the same
//! [`KvSession`] as a CGI module's `wasmgate` functions: the same access rule, limits,
//! deadline and metrics. The WIT is wasmtime-wasi-keyvalue's (`wit/keyvalue/`); that
//! crate's host keeps an in-memory map per bucket, so the gateway binds the interfaces
//! itself, async, to its own stores.
//!
//! How the draft's types meet the stores:
//! - `open(identifier)` opens the store of that name: `access-denied` when the module does
//!   not list it, `no-such-store` when it cannot be a store's name;
//! - every other failure is `other("CODE: reason")`, CODE being the `result` label the
//!   metrics count (`too_large`, `quota`, `unavailable`, `not_a_number`, `invalid`);
//! - keys are strings: a key written by a CGI module that is not UTF-8 is listed lossily;
//! - `increment` takes a `u64` delta and returns a `u64`: a delta over `i64::MAX`, or a
//!   counter that a CGI module has made negative, is `not_a_number`;
//! - `list-keys`' cursor is the offset of the next key in the store's order.

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::kv::{KvCall, KvError, KvSession, MAX_LIST_KEYS, Op, on};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        require_store_data_send: true,
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// An open store, as the guest holds it: its handle in the request's [`KvSession`].
pub struct Bucket {
    handle: u32,
}

/// What the functions reach: the request's session and the component's resource table.
pub(crate) struct KeyValue<'a> {
    pub kv: &'a mut KvSession,
    pub table: &'a mut ResourceTable,
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValue<'a>;
}

/// Adds the three interfaces to `linker`, reaching them through `view`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValue<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

/// A call's answer to the guest: its value, or the draft's error.
type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

/// `error` as the draft's error type (see the module's doc).
fn to_guest(error: KvError) -> store::Error {
    match error {
        KvError::Denied => store::Error::AccessDenied,
        other => store::Error::Other(format!("{}: {other}", other.label())),
    }
}

/// A call's result as the guest's answer.
fn answer<T>(result: Result<T, KvError>) -> Answer<T> {
    Ok(result.map_err(to_guest))
}

impl KeyValue<'_> {
    /// The call (`op`) on the store `bucket` stands for (a trap for a bucket that is not
    /// in the table, as for any resource).
    fn call(&self, bucket: &Resource<Bucket>, op: Op) -> wasmtime::Result<Result<KvCall, KvError>> {
        let handle = self.table.get(bucket)?.handle;
        Ok(self.kv.call(handle, op))
    }
}

impl store::Host for KeyValue<'_> {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        match self.kv.open(&identifier) {
            Ok(handle) => Ok(Ok(self.table.push(Bucket { handle })?)),
            Err(KvError::Invalid) => Ok(Err(store::Error::NoSuchStore)),
            Err(e) => Ok(Err(to_guest(e))),
        }
    }
}

impl store::HostBucket for KeyValue<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        answer(
            on(self.call(&bucket, Op::Get)?, |c| async move {
                c.get(key.into_bytes()).await
            })
            .await,
        )
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        answer(
            on(self.call(&bucket, Op::Set)?, |c| async move {
                c.set_many(vec![(key.into_bytes(), value)]).await
            })
            .await,
        )
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<()> {
        answer(
            on(self.call(&bucket, Op::Delete)?, |c| async move {
                c.delete_many(vec![key.into_bytes()]).await
            })
            .await,
        )
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        let found: Answer<Option<Vec<u8>>> = answer(
            on(self.call(&bucket, Op::Get)?, |c| async move {
                c.get(key.into_bytes()).await
            })
            .await,
        );
        found.map(|r| r.map(|value| value.is_some()))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Answer<store::KeyResponse> {
        let page = answer(
            on(self.call(&bucket, Op::List)?, |c| async move {
                c.list(cursor.unwrap_or(0), MAX_LIST_KEYS).await
            })
            .await,
        );
        page.map(|r| {
            r.map(|page| store::KeyResponse {
                keys: page
                    .keys
                    .into_iter()
                    .map(|k| String::from_utf8_lossy(&k).into_owned())
                    .collect(),
                cursor: page.next,
            })
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValue<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Answer<u64> {
        let call = self.call(&bucket, Op::Increment)?;
        let Ok(delta) = i64::try_from(delta) else {
            return Ok(Err(to_guest(match call {
                Ok(call) => call.refuse(Op::Increment, KvError::NotANumber),
                Err(e) => e,
            })));
        };
        let value = answer(
            on(call, |c| async move {
                c.increment(key.into_bytes(), delta).await
            })
            .await,
        );
        value.map(|r| r.and_then(|v| u64::try_from(v).map_err(|_| to_guest(KvError::NotANumber))))
    }
}

impl batch::Host for KeyValue<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let raw = keys.iter().map(|k| k.clone().into_bytes()).collect();
        let values: Answer<Vec<Option<Vec<u8>>>> = answer(
            on(self.call(&bucket, Op::Get)?, |c| async move {
                c.get_many(raw).await
            })
            .await,
        );
        values.map(|r| {
            r.map(|values| {
                keys.into_iter()
                    .zip(values)
                    .map(|(key, value)| value.map(|v| (key, v)))
                    .collect()
            })
        })
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Answer<()> {
        let pairs = key_values
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect();
        answer(
            on(self.call(&bucket, Op::Set)?, |c| async move {
                c.set_many(pairs).await
            })
            .await,
        )
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        let keys = keys.into_iter().map(String::into_bytes).collect();
        answer(
            on(self.call(&bucket, Op::Delete)?, |c| async move {
                c.delete_many(keys).await
            })
            .await,
        )
    }
}
