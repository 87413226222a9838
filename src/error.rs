//! The library's error types. Messages name the module or config key and the reason, and
//! never a host path: they can end up in HTTP responses and in `/modules`.

use std::fmt::Display;

/// A configuration that cannot be used; the message names the key (and the value).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file '{file}': {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config: `{key}` = {value} {reason}")]
    Value {
        key: String,
        value: String,
        reason: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn value(key: &str, value: impl Display, reason: &'static str) -> Self {
        ConfigError::Value {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        }
    }
}

/// Why a module could not be made ready to serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the module file: {0}")]
    Read(String),
    #[error("cannot compile the module: {0}")]
    Compile(String),
    #[error("cannot link: {0}")]
    Link(String),
    #[error("no `_start` function exported: a WASI command module is expected")]
    NoStart,
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the WebAssembly engine: {0}")]
pub struct EngineError(pub String);
