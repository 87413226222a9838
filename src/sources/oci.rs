//! Talking to an OCI registry: resolving a tag to its manifest digest (one `HEAD`),
//! pulling a module in the CNCF Wasm OCI artifact layout, and pushing one (through the
//! ORAS project's `oci-client`).
//!
//! Resolving and pulling are plain distribution-spec requests, so that every response is
//! read under a cap and checked against its digest before anything uses it ([`wire`]),
//! and authentication answers a challenge with the registry's own credentials only
//! ([`auth`]). An unchanged tag costs one `HEAD` (with the grant held for the registry).
//!
//! The layout is checked, not assumed: an OCI image manifest whose config is
//! [`WASM_CONFIG_MEDIA_TYPE`] and whose one layer is [`WASM_LAYER_MEDIA_TYPE`]. A layer is
//! refused before it is downloaded when the manifest says it is larger than
//! `max_module_bytes`, and while it downloads when the registry sends more. Redirects
//! (which the distribution spec allows, for layers above all) are followed up to
//! [`MAX_REDIRECTS`] times, never from HTTPS to plain HTTP, with credentials dropped on a
//! change of host; what they lead to is checked against the digest all the same. Every
//! request has a connect timeout, a read timeout and a total deadline, so a registry that
//! hangs or trickles costs a poll, never a stuck task.

use std::sync::{Arc, Once};
use std::time::Duration;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use reqwest::redirect::{Attempt, Policy};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::auth::{Authorizer, Grant, authority};
use super::credentials::Credentials;
use super::error::SourceError;
use super::wire::{
    self, LAYER_TIMEOUT, MAX_MANIFEST_BYTES, MAX_REDIRECTS, ReadError, SMALL_RESPONSE_TIMEOUT,
    read_capped,
};
use crate::catalogue::digest::Digest;
use crate::config::reference::OciReference;

/// The config media type of the CNCF Wasm OCI artifact layout.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer: the module itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// How long a connection to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a registry may stay silent in the middle of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A module pulled from a registry.
#[derive(Debug, Clone)]
pub(crate) struct Pulled {
    /// The layer's bytes, checked against `layer_digest`.
    pub bytes: Vec<u8>,
    pub layer_digest: Digest,
}

/// The manifest media types a resolve accepts.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// What a request is for, as a token's scope names it.
#[derive(Clone, Copy)]
enum Operation {
    Pull,
    Push,
}

/// A registry client for every source of one gateway.
#[derive(Clone)]
pub(crate) struct OciClient {
    http: reqwest::Client,
    auth: Arc<Authorizer>,
    plain_http: Arc<[String]>,
    max_bytes: u64,
}

impl OciClient {
    /// A client that speaks plain HTTP to the hosts in `plain_http` (and HTTPS elsewhere),
    /// offers each registry its own `credentials`, and pulls layers of at most `max_bytes`.
    pub(crate) fn new(
        plain_http: Vec<String>,
        credentials: Credentials,
        max_bytes: u64,
    ) -> OciClient {
        install_crypto_provider();
        let plain_http: Arc<[String]> = plain_http.into();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(redirect_policy(plain_http.clone()))
            .build()
            .unwrap_or_default();
        OciClient {
            auth: Arc::new(Authorizer::new(
                http.clone(),
                credentials,
                plain_http.clone(),
            )),
            http,
            plain_http,
            max_bytes,
        }
    }

    /// The manifest digest `source` names now: one `HEAD` request for a tag (the digest
    /// itself for a pinned reference, without asking).
    pub(crate) async fn resolve(&self, source: &OciReference) -> Result<String, SourceError> {
        let host = source.host();
        if let Some(pinned) = source.as_oci().digest() {
            let digest = Digest::parse(pinned).ok_or_else(|| invalid_digest(host))?;
            return Ok(digest.to_string());
        }
        let tag = source.as_oci().tag().unwrap_or("latest");
        let url = self.url(source, &format!("manifests/{tag}"));
        let head = |http: &reqwest::Client| {
            http.head(&url)
                .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
                .timeout(SMALL_RESPONSE_TIMEOUT)
        };
        let response = self.send(source, Operation::Pull, head).await?;
        if let Some(digest) = wire::content_digest(&response).map_err(|()| invalid_digest(host))? {
            return Ok(digest.to_string());
        }
        // No digest in the head: the digest of the manifest itself.
        let manifest = self.manifest(source, tag).await?;
        Ok(Digest::of(&manifest).to_string())
    }

    /// Pulls the module at manifest `digest` of `source`'s repository.
    pub(crate) async fn pull(
        &self,
        source: &OciReference,
        digest: &str,
    ) -> Result<Pulled, SourceError> {
        let host = source.host();
        let digest = Digest::parse(digest).ok_or_else(|| invalid_digest(host))?;
        let body = self.manifest(source, &digest.to_string()).await?;
        if !wire::matches(&body, &digest) {
            return Err(SourceError::ModuleTable(format!(
                "{host}: the manifest does not match its digest"
            )));
        }
        let manifest: OciImageManifest = serde_json::from_slice(&body)
            .map_err(|_| SourceError::Layout("the manifest is not an OCI image manifest".into()))?;
        let layer = wasm_layer(&manifest)?;
        let layer_digest = Digest::parse(&layer.digest)
            .ok_or_else(|| SourceError::Layout("a layer digest that is not sha256".into()))?;
        if u64::try_from(layer.size).unwrap_or(u64::MAX) > self.max_bytes {
            return Err(SourceError::TooLarge(self.max_bytes));
        }
        let bytes = self.layer(source, &layer_digest).await?;
        if !wire::matches(&bytes, &layer_digest) {
            return Err(SourceError::ModuleTable(format!(
                "{host}: the layer does not match its digest"
            )));
        }
        Ok(Pulled {
            bytes,
            layer_digest,
        })
    }

    /// The manifest `reference` (a tag or a digest) names, read under its cap.
    async fn manifest(
        &self,
        source: &OciReference,
        reference: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let host = source.host();
        let url = self.url(source, &format!("manifests/{reference}"));
        let get = |http: &reqwest::Client| {
            http.get(&url)
                .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
                .timeout(SMALL_RESPONSE_TIMEOUT)
        };
        let response = self.send(source, Operation::Pull, get).await?;
        read_capped(response, MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => SourceError::ModuleTable(format!(
                    "{host}: a manifest larger than {MAX_MANIFEST_BYTES} bytes"
                )),
                ReadError::Broken(e) => SourceError::from_request(host, &e),
            })
    }

    /// The layer `digest`, read under `max_module_bytes`.
    async fn layer(&self, source: &OciReference, digest: &Digest) -> Result<Vec<u8>, SourceError> {
        let url = self.url(source, &format!("blobs/{digest}"));
        let get = |http: &reqwest::Client| http.get(&url).timeout(LAYER_TIMEOUT);
        let response = self.send(source, Operation::Pull, get).await?;
        read_capped(response, self.max_bytes)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => SourceError::TooLarge(self.max_bytes),
                ReadError::Broken(e) => SourceError::from_request(source.host(), &e),
            })
    }

    /// Sends the request `build` makes, with the grant held for the registry; on a
    /// challenge, once more with the grant that answers it. A response that is not a
    /// success is the error it means.
    async fn send(
        &self,
        source: &OciReference,
        operation: Operation,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, SourceError> {
        let host = source.host();
        let scope = scope(source, operation);
        let build = &build;
        let sent = |grant: Grant| async move {
            grant
                .apply(build(&self.http))
                .send()
                .await
                .map_err(|e| SourceError::from_request(host, &e))
        };
        let mut response = sent(self.auth.held(host, &scope)).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| SourceError::Unauthorized(host.to_string()))?;
            let grant = self.auth.answer(host, &scope, challenge).await?;
            response = sent(grant).await?;
        }
        match response.status() {
            s if s.is_success() => Ok(response),
            StatusCode::NOT_FOUND => Err(SourceError::NotFound(host.to_string())),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(SourceError::Unauthorized(host.to_string()))
            }
            s => Err(SourceError::ModuleTable(format!("{host}: {s}"))),
        }
    }

    /// `/v2/<repository>/<rest>` on `source`'s registry.
    fn url(&self, source: &OciReference, rest: &str) -> String {
        let repository = source.as_oci().repository();
        format!("{}/v2/{repository}/{rest}", self.origin(source.host()))
    }

    /// `SCHEME://HOST[:PORT]` of registry `host`: plain HTTP only where it is allowed.
    fn origin(&self, host: &str) -> String {
        let scheme = match self.plain_http.iter().any(|h| h == host) {
            true => "http",
            false => "https",
        };
        format!("{scheme}://{host}")
    }

    /// The grant for pushing to `target`: asks `/v2/` for its challenge and answers it.
    async fn push_grant(&self, target: &OciReference) -> Result<Grant, SourceError> {
        let host = target.host();
        let url = format!("{}/v2/", self.origin(host));
        let response = self
            .http
            .get(&url)
            .timeout(SMALL_RESPONSE_TIMEOUT)
            .send()
            .await
            .map_err(|e| SourceError::from_request(host, &e))?;
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok());
        match (response.status(), challenge) {
            (StatusCode::UNAUTHORIZED, Some(challenge)) => {
                let scope = scope(target, Operation::Push);
                self.auth.answer(host, &scope, challenge).await
            }
            _ => Ok(Grant::Anonymous),
        }
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
        let auth = self.push_grant(target).await?.registry_auth();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.plain_http.to_vec()),
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        });
        client
            .push(target.as_oci(), &[layer], config, &auth, Some(manifest))
            .await
            .map_err(err)?;
        self.resolve(target).await
    }
}

/// The one `application/wasm` layer of a manifest in the CNCF layout.
fn wasm_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor, SourceError> {
    if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(SourceError::Layout(format!(
            "config media type {:?} (expected {WASM_CONFIG_MEDIA_TYPE})",
            manifest.config.media_type
        )));
    }
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => Ok(layer),
        [layer] => Err(SourceError::Layout(format!(
            "layer media type {:?} (expected {WASM_LAYER_MEDIA_TYPE})",
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

/// A token scope: `repository:NAME:pull` (or `pull,push`).
fn scope(source: &OciReference, operation: Operation) -> String {
    let actions = match operation {
        Operation::Pull => "pull",
        Operation::Push => "pull,push",
    };
    format!("repository:{}:{actions}", source.as_oci().repository())
}

fn invalid_digest(host: &str) -> SourceError {
    SourceError::ModuleTable(format!(
        "{host}: a digest that is not sha256:<64 hex digits>"
    ))
}

/// Follows at most [`MAX_REDIRECTS`] redirects, never from HTTPS to plain HTTP (unless to
/// a host allowed plain HTTP).
fn redirect_policy(plain_http: Arc<[String]>) -> Policy {
    Policy::custom(move |attempt: Attempt| {
        let url = attempt.url();
        let authority = authority(url);
        let from_plain = attempt
            .previous()
            .last()
            .is_some_and(|u| u.scheme() == "http");
        let allowed = match url.scheme() {
            "https" => true,
            "http" => from_plain || plain_http.contains(&authority),
            _ => false,
        };
        if attempt.previous().len() > MAX_REDIRECTS || !allowed {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}
