//! The `[kv]` table, checked: which backend the stores live in and their limits. The
//! stores are opened only when the config has a `[kv]` table or a module lists
//! `kv_stores`; a gateway that uses none touches no disk and no Redis for them.

use std::path::PathBuf;

use super::ConfigError;
use super::defaults::MAX_BUFFER_BYTES;
use super::schema::FileKv;
use crate::kv::settings::{
    Backend, DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_STORE_BYTES, DEFAULT_MAX_VALUE_BYTES, DEFAULT_PATH,
    KvLimits, KvSettings, is_store_name,
};

/// The `backend` value of the embedded store.
const EMBEDDED: &str = "embedded";
/// The scheme of a Redis or Valkey backend.
const REDIS_SCHEME: &str = "redis://";
/// The longest key a store accepts, whatever the config says.
const MAX_KEY_BYTES_CAP: u64 = 64 * 1024;

/// The stores' settings, when anything uses them.
pub(super) fn kv_settings(
    file: Option<&FileKv>,
    any_module_lists_stores: bool,
) -> Result<Option<KvSettings>, ConfigError> {
    if file.is_none() && !any_module_lists_stores {
        return Ok(None);
    }
    let file = file.cloned().unwrap_or_default();
    let backend = match file.backend.as_deref().unwrap_or(EMBEDDED) {
        EMBEDDED => Backend::Embedded(file.path.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))),
        url if url.starts_with(REDIS_SCHEME) => {
            if file.path.is_some() {
                return Err(ConfigError::value(
                    "kv.path",
                    "(set)",
                    "is for the embedded backend only; a Redis backend keeps no local files",
                ));
            }
            Backend::Redis(url.to_string())
        }
        other => {
            return Err(ConfigError::value(
                "kv.backend",
                Backend::Redis(other.to_string()).redacted(),
                "is neither \"embedded\" nor a redis://[USER:PASSWORD@]HOST:PORT[/DB] URL",
            ));
        }
    };
    let limits = KvLimits {
        max_key_bytes: file.max_key_bytes.unwrap_or(DEFAULT_MAX_KEY_BYTES),
        max_value_bytes: file.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES),
        max_store_bytes: file.max_store_bytes.unwrap_or(DEFAULT_MAX_STORE_BYTES),
    };
    for (key, value, cap, reason) in [
        (
            "kv.max_key_bytes",
            limits.max_key_bytes,
            MAX_KEY_BYTES_CAP,
            "must be between 1 and 65536",
        ),
        (
            "kv.max_value_bytes",
            limits.max_value_bytes,
            MAX_BUFFER_BYTES,
            "must be between 1 and 1 GiB",
        ),
        (
            "kv.max_store_bytes",
            limits.max_store_bytes,
            u64::MAX,
            "must be at least 1",
        ),
    ] {
        if value == 0 || value > cap {
            return Err(ConfigError::value(key, value, reason));
        }
    }
    Ok(Some(KvSettings { backend, limits }))
}

/// Module `section`'s `kv_stores`, each checked to be a store name.
pub(super) fn module_stores(section: &str, stores: &[String]) -> Result<Vec<String>, ConfigError> {
    if let Some(bad) = stores.iter().find(|s| !is_store_name(s)) {
        return Err(ConfigError::value(
            &format!("{section}.kv_stores"),
            format!("{bad:?}"),
            "is not a store name ([A-Za-z0-9_-], 1 to 64 characters)",
        ));
    }
    let mut stores = stores.to_vec();
    stores.sort();
    stores.dedup();
    Ok(stores)
}
