//! The Redis (or Valkey) backend, for a fleet of gateways that share their stores.
//!
//! Each store is a hash tag of its own, `wasmgate:{STORE}`, so that all of a store's keys
//! live on one Redis Cluster slot and no two stores share a key: a value is at
//! `wasmgate:{STORE}:k:KEY`, the store's byte count (for its quota) at
//! `wasmgate:{STORE}:bytes`, and its key index (a sorted set, for listing with a
//! cursor) at `wasmgate:{STORE}:keys`. Writes are Lua scripts, so that a write, its
//! quota check and its bookkeeping are one atomic step for every replica; an increment is
//! Redis' own `INCRBY` inside one.
//!
//! The connection is redis-rs' `ConnectionManager`, made lazily (a gateway starts while
//! Redis is down) and reconnecting on its own; every call is bounded by
//! [`CALL_TIMEOUT`] and the request's deadline, so a server that is down or slow fails
//! calls with `unavailable` and never holds a worker thread.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionInfo, IntoConnectionInfo, Script, ScriptInvocation};

use super::error::KvError;
use super::write::{KeyPage, Write, Written, parse_counter};

/// The most a connection attempt or one command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// The first wait before reconnecting, and the longest: a refused connection (a server that
/// is down) fails a call in tens of milliseconds, not the second redis-rs' defaults take,
/// and the next call tries again, so a server that is back is used at once.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(10);
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Reconnection attempts one call waits for before it fails.
const RECONNECT_RETRIES: usize = 1;
/// What the read script returns when the values are over the bytes one call may read.
const TOO_LARGE_REPLY: i64 = -3;
/// What the scripts return when a write would take its store over its quota.
const QUOTA_REPLY: i64 = -6;
/// The error the increment script raises for a value that is not a counter.
const NOT_A_NUMBER_REPLY: &str = "NOTNUM";

/// The values at KEYS, unless together they are over ARGV[1] bytes.
static GET_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local total = 0
for i = 1, #KEYS do total = total + redis.call('STRLEN', KEYS[i]) end
if total > tonumber(ARGV[1]) then return -3 end
return redis.call('MGET', unpack(KEYS))
",
    )
});

/// Sets KEYS[3..] to ARGV[3+n..] (raw keys ARGV[3..3+n]), if the store's bytes stay
/// within ARGV[1]; keeps KEYS[1] (bytes) and KEYS[2] (index) in step.
static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local quota, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local delta = 0
for i = 1, n do
  local key, raw, value = KEYS[2 + i], ARGV[2 + i], ARGV[2 + n + i]
  if redis.call('EXISTS', key) == 1 then delta = delta - redis.call('STRLEN', key) - #raw end
  delta = delta + #raw + #value
end
if delta > 0 and before + delta > quota then return -6 end
for i = 1, n do
  redis.call('SET', KEYS[2 + i], ARGV[2 + n + i])
  redis.call('ZADD', KEYS[2], 0, ARGV[2 + i])
end
redis.call('INCRBY', KEYS[1], delta)
return 0
",
    )
});

/// Deletes KEYS[3..] (raw keys ARGV[1..]), keeping the bytes and the index in step.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local delta = 0
for i = 1, #ARGV do
  local key = KEYS[2 + i]
  if redis.call('EXISTS', key) == 1 then
    delta = delta - redis.call('STRLEN', key) - #ARGV[i]
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
end
redis.call('INCRBY', KEYS[1], delta)
return 0
",
    )
});

/// `INCRBY KEYS[3] ARGV[3]` (raw key ARGV[2]); a new key must fit the quota ARGV[1].
/// Returns the new value as text, which is exact where a Lua number would not be.
static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key, raw = KEYS[3], ARGV[2]
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local existed = redis.call('EXISTS', key) == 1
local old = existed and redis.call('STRLEN', key) or 0
if existed and not string.match(redis.call('GET', key), '^%-?%d+$') then
  return redis.error_reply('NOTNUM')
end
if not existed and before + #raw + 1 > tonumber(ARGV[1]) then return -6 end
redis.call('INCRBY', key, ARGV[3])
local grown = redis.call('STRLEN', key) - old
if not existed then grown = grown + #raw; redis.call('ZADD', KEYS[2], 0, raw) end
redis.call('INCRBY', KEYS[1], grown)
return redis.call('GET', key)
",
    )
});

/// The stores on one Redis server.
pub(crate) struct RedisStores {
    connection: ConnectionManager,
}

/// The credentials for a URL that carries none, from the environment, so that a config
/// file (a Kubernetes ConfigMap, say) need not hold a password.
const USERNAME_VAR: &str = "WASMGATE_KV_USERNAME";
const PASSWORD_VAR: &str = "WASMGATE_KV_PASSWORD";

/// Where and how to connect: `url`, with the environment's credentials when it has none.
fn connection_info(url: &str) -> Result<ConnectionInfo, BadUrl> {
    let info = url
        .into_connection_info()
        .map_err(|e| BadUrl(format!("{:?}", e.kind())))?;
    let mut settings = info.redis_settings().clone();
    if settings.password().is_none()
        && let Ok(password) = std::env::var(PASSWORD_VAR)
    {
        settings = settings.set_password(password);
        if settings.username().is_none()
            && let Ok(username) = std::env::var(USERNAME_VAR)
        {
            settings = settings.set_username(username);
        }
    }
    Ok(info.set_redis_settings(settings))
}

/// Why the Redis backend cannot be set up (a server that is down is not one of them).
#[derive(Debug, thiserror::Error)]
#[error("the [kv] backend is not a usable Redis URL: {0}")]
pub struct BadUrl(String);

impl RedisStores {
    /// The stores at `url`, connected on first use.
    pub(crate) fn new(url: &str) -> Result<RedisStores, BadUrl> {
        let client =
            Client::open(connection_info(url)?).map_err(|e| BadUrl(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_min_delay(MIN_RECONNECT_DELAY)
            .set_max_delay(MAX_RECONNECT_DELAY)
            .set_number_of_retries(RECONNECT_RETRIES);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| BadUrl(format!("{:?}", e.kind())))?;
        Ok(RedisStores { connection })
    }

    pub(crate) async fn get_many(
        &self,
        store: Arc<str>,
        keys: Vec<Vec<u8>>,
        max_bytes: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut call = GET_MANY.prepare_invoke();
        call.arg(max_bytes);
        for key in &keys {
            call.key(value_key(&store, key));
        }
        match invoke(&call, &mut self.connection.clone()).await? {
            redis::Value::Int(TOO_LARGE_REPLY) => Err(KvError::TooLarge),
            values => redis::from_redis_value(values).map_err(|e| failed(e.into())),
        }
    }

    pub(crate) async fn write(
        &self,
        store: Arc<str>,
        write: Write,
        quota: u64,
    ) -> Result<Written, KvError> {
        let mut connection = self.connection.clone();
        let (bytes, index) = (bytes_key(&store), index_key(&store));
        match write {
            Write::Set(pairs) => {
                let mut call = SET.prepare_invoke();
                call.key(bytes).key(index).arg(quota).arg(pairs.len());
                for (key, _) in &pairs {
                    call.key(value_key(&store, key)).arg(key.as_slice());
                }
                for (_, value) in &pairs {
                    call.arg(value.as_slice());
                }
                quota_checked(invoke::<i64>(&call, &mut connection).await?)
            }
            Write::Delete(keys) => {
                let mut call = DELETE.prepare_invoke();
                call.key(bytes).key(index);
                for key in &keys {
                    call.key(value_key(&store, key)).arg(key.as_slice());
                }
                invoke::<i64>(&call, &mut connection)
                    .await
                    .map(|_| Written::Done)
            }
            Write::Increment(key, delta) => {
                let mut call = INCREMENT.prepare_invoke();
                call.key(bytes)
                    .key(index)
                    .key(value_key(&store, &key))
                    .arg(quota)
                    .arg(key.as_slice())
                    .arg(delta);
                match invoke::<redis::Value>(&call, &mut connection).await? {
                    redis::Value::Int(QUOTA_REPLY) => Err(KvError::Quota),
                    redis::Value::BulkString(text) => parse_counter(&text).map(Written::Counter),
                    _ => Err(KvError::Unavailable),
                }
            }
        }
    }

    pub(crate) async fn list(
        &self,
        store: Arc<str>,
        cursor: u64,
        limit: usize,
    ) -> Result<KeyPage, KvError> {
        let last = cursor + limit as u64;
        let mut keys: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(index_key(&store))
            .arg(cursor)
            .arg(last)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        let next = (keys.len() > limit).then_some(last);
        keys.truncate(limit);
        Ok(KeyPage { keys, next })
    }
}

async fn invoke<T: redis::FromRedisValue>(
    call: &ScriptInvocation<'_>,
    connection: &mut ConnectionManager,
) -> Result<T, KvError> {
    call.invoke_async(connection).await.map_err(failed)
}

fn quota_checked(reply: i64) -> Result<Written, KvError> {
    match reply {
        QUOTA_REPLY => Err(KvError::Quota),
        _ => Ok(Written::Done),
    }
}

/// A Redis error as the guest sees it: a value that is not a counter, or `unavailable`.
fn failed(error: redis::RedisError) -> KvError {
    let text = error.to_string();
    if text.contains(NOT_A_NUMBER_REPLY)
        || text.contains("not an integer")
        || text.contains("overflow")
    {
        return KvError::NotANumber;
    }
    tracing::debug!(error = %text, "a Redis key-value call failed");
    KvError::Unavailable
}

fn prefix(store: &str) -> String {
    format!("wasmgate:{{{store}}}")
}

fn value_key(store: &str, key: &[u8]) -> Vec<u8> {
    let mut name = format!("{}:k:", prefix(store)).into_bytes();
    name.extend_from_slice(key);
    name
}

fn bytes_key(store: &str) -> String {
    format!("{}:bytes", prefix(store))
}

fn index_key(store: &str) -> String {
    format!("{}:keys", prefix(store))
}
