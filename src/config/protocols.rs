//! What the public listener speaks (`http2_max_streams`, `tls_cert`, `tls_key`), checked:
//! HTTP/1.1 and HTTP/2 always, in cleartext or, with a certificate and its key, over TLS
//! only. The files are only named here; `front/tls` reads them, at start-up and whenever
//! they change.

use std::path::PathBuf;

use super::ConfigError;
use super::schema::FileConfig;

/// HTTP/2 streams a connection may have open at once, unless the config says otherwise.
pub(crate) const DEFAULT_HTTP2_MAX_STREAMS: u32 = 100;
/// The most `http2_max_streams` may be: each open stream may hold a guest and its buffers.
const MAX_HTTP2_MAX_STREAMS: u32 = 10_000;

/// What the public listener speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols {
    /// HTTP/2 streams one connection may have open at once.
    pub http2_max_streams: u32,
    /// The certificate and key to speak TLS with; cleartext when `None`.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, each a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Protocols {
    fn default() -> Self {
        Protocols {
            http2_max_streams: DEFAULT_HTTP2_MAX_STREAMS,
            tls: None,
        }
    }
}

/// The protocols the file asks for: a stream bound within reason, and both TLS files or
/// neither.
pub(super) fn protocols(file: &FileConfig) -> Result<Protocols, ConfigError> {
    let http2_max_streams = file.http2_max_streams.unwrap_or(DEFAULT_HTTP2_MAX_STREAMS);
    if !(1..=MAX_HTTP2_MAX_STREAMS).contains(&http2_max_streams) {
        return Err(ConfigError::value(
            "http2_max_streams",
            http2_max_streams,
            "must be between 1 and 10000",
        ));
    }
    let tls = match (&file.tls_cert, &file.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::value(
                "tls_cert",
                "(set)",
                "needs `tls_key` beside it: the certificate's private key",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::value(
                "tls_key",
                "(set)",
                "needs `tls_cert` beside it: the certificate chain",
            ));
        }
    };
    Ok(Protocols {
        http2_max_streams,
        tls,
    })
}
