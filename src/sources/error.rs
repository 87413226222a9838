//! Why a registry operation failed. Messages name the registry and the reason, never
//! credentials, and never quote what a registry sent.

use oci_client::errors::{OciDistributionError, OciErrorCode};

use crate::catalogue::failure::LoadError;

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("registry {0}: no such tag or digest")]
    NotFound(String),
    #[error("registry {0}: the credentials were refused (401/403)")]
    Unauthorized(String),
    /// Any other failure: the registry's host, then what went wrong.
    #[error("registry {0}")]
    ModuleTable(String),
    #[error("registry {0}: no answer in time")]
    Timeout(String),
    #[error("registry {0}: no answer yet (still asking; the gateway did not wait to serve)")]
    Pending(String),
    #[error("not a Wasm OCI artifact: {0}")]
    Layout(String),
    #[error("the layer is larger than max_module_bytes ({0} bytes)")]
    TooLarge(u64),
}

/// A source's failure, as the catalogue records it for the module.
impl From<SourceError> for LoadError {
    fn from(error: SourceError) -> LoadError {
        LoadError::Source(error.to_string().into())
    }
}

impl SourceError {
    /// What a failed request to registry `host` means.
    pub(crate) fn from_request(host: &str, e: &reqwest::Error) -> SourceError {
        match e.is_timeout() {
            true => SourceError::Timeout(host.to_string()),
            false => SourceError::ModuleTable(format!("{host}: {}", without_url(e))),
        }
    }

    /// What `oci-client` (which pushes) said, for registry `host`.
    pub(crate) fn from_client(host: &str, e: OciDistributionError) -> SourceError {
        use OciDistributionError as E;
        let host = host.to_string();
        match e {
            E::ImageManifestNotFoundError(_) => SourceError::NotFound(host),
            E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
                SourceError::Unauthorized(host)
            }
            E::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                }) =>
            {
                SourceError::NotFound(host)
            }
            E::ServerError { code: 404, .. } => SourceError::NotFound(host),
            E::ServerError { code, .. } if code == 401 || code == 403 => {
                SourceError::Unauthorized(host)
            }
            E::RequestError(e) if e.is_timeout() => SourceError::Timeout(host),
            other => SourceError::ModuleTable(format!("{host}: {other}")),
        }
    }
}

/// A request error's kind, without the URL it was for (which a redirect may have chosen).
fn without_url(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "a redirect that is not followed (to plain HTTP, or too many)"
    } else if e.is_body() || e.is_decode() {
        "the response broke off"
    } else {
        "the request failed"
    }
}
