//! The `[kv]` table as the stores use it: which backend, where, and the limits every call
//! is held to. `config/` reads and checks the file; the stores only read these.

use std::fmt;
use std::path::PathBuf;

/// The default directory of the embedded store, relative to the working directory.
pub const DEFAULT_PATH: &str = ".wasmgate-kv";
/// Default longest key, in bytes.
pub const DEFAULT_MAX_KEY_BYTES: u64 = 1024;
/// Default longest value, in bytes.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 1024 * 1024;
/// Default bytes (keys and values) one store may hold.
pub const DEFAULT_MAX_STORE_BYTES: u64 = 1024 * 1024 * 1024;
/// The longest store name, as for module names.
pub const MAX_STORE_NAME_LEN: usize = 64;

/// The limits every key-value call is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    pub max_key_bytes: u64,
    pub max_value_bytes: u64,
    pub max_store_bytes: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_store_bytes: DEFAULT_MAX_STORE_BYTES,
        }
    }
}

/// Where the stores live.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// A crash-safe file on local disk, in this directory; one gateway at a time.
    Embedded(PathBuf),
    /// A Redis or Valkey server, shared by a fleet: its `redis://` URL.
    Redis(String),
}

impl Backend {
    /// The URL or path as it may be shown: a Redis URL without its user and password.
    pub fn redacted(&self) -> String {
        match self {
            Backend::Embedded(path) => format!("embedded ({})", path.display()),
            Backend::Redis(url) => redact_url(url),
        }
    }
}

/// The backend's `Debug` is its redacted form, so that no log of a config ever shows a
/// Redis password.
impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with anything between `://` and the last `@` of its authority replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{path}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

/// The `[kv]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSettings {
    pub backend: Backend,
    pub limits: KvLimits,
}

impl Default for KvSettings {
    fn default() -> Self {
        KvSettings {
            backend: Backend::Embedded(PathBuf::from(DEFAULT_PATH)),
            limits: KvLimits::default(),
        }
    }
}

/// Whether `name` is a store name: `[A-Za-z0-9_-]{1,64}`.
pub fn is_store_name(name: &str) -> bool {
    (1..=MAX_STORE_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_password_is_never_shown() {
        let backend = Backend::Redis("redis://user:s3cret@cache.internal:6379/2".into());
        assert_eq!(backend.redacted(), "redis://***@cache.internal:6379/2");
        assert!(!format!("{backend:?}").contains("s3cret"));
        let bare = Backend::Redis("redis://127.0.0.1:6379".into());
        assert_eq!(bare.redacted(), "redis://127.0.0.1:6379");
        let at_in_path = Backend::Redis("redis://:pw@h:1/0".into());
        assert_eq!(at_in_path.redacted(), "redis://***@h:1/0");
    }

    #[test]
    fn store_names_follow_the_module_name_rule() {
        assert!(is_store_name("sessions"));
        assert!(is_store_name("a-b_C9"));
        assert!(!is_store_name(""));
        assert!(!is_store_name("a/b"));
        assert!(!is_store_name("a.b"));
        assert!(!is_store_name(&"x".repeat(65)));
    }
}
