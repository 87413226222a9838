//! Talking to an OCI registry, through the ORAS project's `oci-client`: resolving a tag to
//! its manifest digest (one `HEAD`), pulling a module in the CNCF Wasm OCI artifact layout,
//! and pushing one.
//!
//! An unchanged tag must cost one small request. `oci-client` asks `/v2/` for an
//! authentication challenge before every request for which it has no token cached, and
//! an anonymous registry gives it none to cache, so a tag is first resolved with one
//! plain conditional `HEAD` of its manifest; only a registry that answers it 401 (or
//! without a digest), or one that credentials are configured for, goes through the
//! client's authentication flows, whose tokens it then caches.
//!
//! The layout is checked, not assumed: an OCI image manifest whose config is
//! [`WASM_CONFIG_MEDIA_TYPE`] and whose one layer is [`WASM_LAYER_MEDIA_TYPE`]. A layer is
//! refused before it is downloaded when the manifest says it is larger than
//! `max_module_bytes`, and while it downloads when the registry sends more; the client
//! checks the bytes against the layer's digest. Every request has a connect and a read
//! timeout, so a registry that hangs costs a poll, never a stuck task.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll};
use std::time::Duration;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use tokio::io::AsyncWrite;

use super::credentials;
use super::reference::OciReference;
use crate::catalogue::digest::Digest;

/// The config media type of the CNCF Wasm OCI artifact layout.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer: the module itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// How long a connection to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a registry may stay silent in the middle of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a registry operation failed. Messages name the reference and the reason, never
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("registry {0}: no such tag or digest")]
    NotFound(String),
    #[error("registry {0}: the credentials were refused (401/403)")]
    Unauthorized(String),
    /// Any other failure: the registry's host, then what the client said.
    #[error("registry {0}")]
    Registry(String),
    #[error("registry {0}: no answer in time")]
    Timeout(String),
    #[error("not a Wasm OCI artifact: {0}")]
    Layout(String),
    #[error("the layer is larger than max_module_bytes ({0} bytes)")]
    TooLarge(u64),
}

impl SourceError {
    fn from_client(host: &str, e: OciDistributionError) -> SourceError {
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
                        oci_client::errors::OciErrorCode::ManifestUnknown
                            | oci_client::errors::OciErrorCode::NameUnknown
                            | oci_client::errors::OciErrorCode::NotFound
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
            E::IncompatibleLayerMediaTypeError(t) => {
                SourceError::Layout(format!("a layer of media type {t}"))
            }
            other => SourceError::Registry(format!("{host}: {other}")),
        }
    }
}

/// A module pulled from a registry.
#[derive(Debug, Clone)]
pub(crate) struct Pulled {
    /// The layer's bytes, checked against `layer_digest`.
    pub bytes: Vec<u8>,
    pub layer_digest: Digest,
}

/// The manifest media types a resolve accepts (what `oci-client` sends too).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A registry client for every source of one gateway.
#[derive(Clone)]
pub(crate) struct OciClient {
    client: Client,
    /// For the one-request resolve of an anonymous registry.
    head: reqwest::Client,
    plain_http: Arc<[String]>,
    /// Registries that asked for authentication: resolved through `client` from then on.
    authenticating: Arc<Mutex<HashSet<String>>>,
    max_bytes: u64,
}

impl OciClient {
    /// A client that speaks plain HTTP to the hosts in `plain_http` (and HTTPS elsewhere),
    /// and pulls layers of at most `max_bytes`.
    pub(crate) fn new(plain_http: Vec<String>, max_bytes: u64) -> OciClient {
        install_crypto_provider();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http.clone()),
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        };
        let head = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .unwrap_or_default();
        OciClient {
            client: Client::new(config),
            head,
            plain_http: plain_http.into(),
            authenticating: Arc::default(),
            max_bytes,
        }
    }

    /// The manifest digest `source` names now: one `HEAD` request for a tag (the digest
    /// itself for a pinned reference, without asking).
    pub(crate) async fn resolve(&self, source: &OciReference) -> Result<String, SourceError> {
        if let Some(digest) = source.as_oci().digest() {
            return Ok(digest.to_string());
        }
        let auth = auth(source);
        if matches!(auth, RegistryAuth::Anonymous) && !self.authenticates(source.host()) {
            match self.head_digest(source).await? {
                Some(digest) => return Ok(digest),
                None => self.set_authenticates(source.host()),
            }
        }
        self.client
            .fetch_manifest_digest(source.as_oci(), &auth)
            .await
            .map_err(|e| SourceError::from_client(source.host(), e))
    }

    /// One `HEAD` of the tag's manifest: its digest, or `None` when the registry wants
    /// authentication (or sends no digest) and the client's flows must take over.
    async fn head_digest(&self, source: &OciReference) -> Result<Option<String>, SourceError> {
        let host = source.host();
        let scheme = match self.plain_http.iter().any(|h| h == host) {
            true => "http",
            false => "https",
        };
        let r = source.as_oci();
        let tag = r.tag().unwrap_or("latest");
        let url = format!("{scheme}://{host}/v2/{}/manifests/{tag}", r.repository());
        let response = self
            .head
            .head(&url)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
            .send()
            .await
            .map_err(|e| match e.is_timeout() {
                true => SourceError::Timeout(host.to_string()),
                false => SourceError::Registry(format!("{host}: {e}")),
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(SourceError::NotFound(host.to_string()));
        }
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|_| status.is_success())
            .map(str::to_string);
        if digest.is_none() && !status.is_success() && status != reqwest::StatusCode::UNAUTHORIZED {
            return Err(SourceError::Registry(format!("{host}: {status}")));
        }
        Ok(digest)
    }

    fn authenticates(&self, host: &str) -> bool {
        self.authenticating
            .lock()
            .is_ok_and(|hosts| hosts.contains(host))
    }

    fn set_authenticates(&self, host: &str) {
        if let Ok(mut hosts) = self.authenticating.lock() {
            hosts.insert(host.to_string());
        }
    }

    /// Pulls the module at manifest `digest` of `source`'s repository.
    pub(crate) async fn pull(
        &self,
        source: &OciReference,
        digest: &str,
    ) -> Result<Pulled, SourceError> {
        let at = source.at_digest(digest);
        let err = |e| SourceError::from_client(source.host(), e);
        let (manifest, _) = self
            .client
            .pull_image_manifest(&at, &auth(source))
            .await
            .map_err(err)?;
        let layer = wasm_layer(&manifest)?;
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > self.max_bytes {
            return Err(SourceError::TooLarge(self.max_bytes));
        }
        let mut out = CappedBuffer::new(self.max_bytes);
        let pulled = self.client.pull_blob(&at, layer, &mut out).await;
        pulled.map_err(|e| match e {
            OciDistributionError::IoError(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
                SourceError::TooLarge(self.max_bytes)
            }
            e => err(e),
        })?;
        let layer_digest = Digest::parse(&layer.digest)
            .ok_or_else(|| SourceError::Layout(format!("layer digest {}", layer.digest)))?;
        Ok(Pulled {
            bytes: out.bytes,
            layer_digest,
        })
    }

    /// Pushes `wasm` to `target` in the CNCF Wasm OCI layout; returns the manifest digest.
    pub(crate) async fn push(
        &self,
        target: &OciReference,
        wasm: Vec<u8>,
        os: &str,
    ) -> Result<String, SourceError> {
        let err = |e| SourceError::from_client(target.host(), e);
        let layer = ImageLayer::new(wasm, WASM_LAYER_MEDIA_TYPE.to_string(), None);
        let config = serde_json::json!({
            "architecture": "wasm",
            "os": os,
            "layerDigests": [layer.sha256_digest()],
        });
        let config = Config::new(
            config.to_string().into_bytes(),
            WASM_CONFIG_MEDIA_TYPE.to_string(),
            None,
        );
        let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
        let auth = auth(target);
        self.client
            .push(target.as_oci(), &[layer], config, &auth, Some(manifest))
            .await
            .map_err(err)?;
        self.client
            .fetch_manifest_digest(target.as_oci(), &auth)
            .await
            .map_err(err)
    }
}

fn auth(source: &OciReference) -> RegistryAuth {
    credentials::for_host(source.host())
}

/// The one `application/wasm` layer of a manifest in the CNCF layout.
fn wasm_layer(
    manifest: &OciImageManifest,
) -> Result<&oci_client::manifest::OciDescriptor, SourceError> {
    if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(SourceError::Layout(format!(
            "config media type {} (expected {WASM_CONFIG_MEDIA_TYPE})",
            manifest.config.media_type
        )));
    }
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => Ok(layer),
        [layer] => Err(SourceError::Layout(format!(
            "layer media type {} (expected {WASM_LAYER_MEDIA_TYPE})",
            layer.media_type
        ))),
        layers => Err(SourceError::Layout(format!(
            "{} layers (expected one {WASM_LAYER_MEDIA_TYPE} layer)",
            layers.len()
        ))),
    }
}

/// rustls needs one process-wide crypto provider; wasmgate uses ring, which the rest of
/// the build already links.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Already installed (by a test harness, say) is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A download buffer that fails once more than `cap` bytes arrive.
struct CappedBuffer {
    bytes: Vec<u8>,
    cap: u64,
}

impl CappedBuffer {
    fn new(cap: u64) -> CappedBuffer {
        CappedBuffer {
            bytes: Vec::new(),
            cap,
        }
    }
}

impl AsyncWrite for CappedBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if (this.bytes.len() + buf.len()) as u64 > this.cap {
            return Poll::Ready(Err(std::io::ErrorKind::FileTooLarge.into()));
        }
        this.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
