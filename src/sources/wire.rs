//! What comes back from a registry, before anything trusts it: bodies read under a cap
//! (issue 30: an endless manifest grew the gateway to 2.8 GB), digests checked.
//!
//! Every response but a layer is small: manifests, token answers. They are read up to
//! [`MAX_MANIFEST_BYTES`] at most, within [`SMALL_RESPONSE_TIMEOUT`] in all; a layer up to
//! `max_module_bytes`, within [`LAYER_TIMEOUT`]. A `Docker-Content-Digest` is parsed
//! before it is used in a URL or shown, and a body is checked against the digest it was
//! asked for, wherever a redirect fetched it from.

use std::time::Duration;

use crate::catalogue::digest::Digest;

/// The largest manifest read (a Wasm artifact's is under 1 KiB).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The most a small response (a manifest's head or body, a token) may take in all.
pub(crate) const SMALL_RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
/// The most a layer's download may take in all.
pub(crate) const LAYER_TIMEOUT: Duration = Duration::from_secs(300);
/// Redirects followed for one request.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Why a body was not read whole.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// It is longer than the cap.
    TooLarge,
    /// The connection failed or timed out while it was read.
    Broken(reqwest::Error),
}

/// The body of `response`, if it is at most `cap` bytes; reading stops at the first byte
/// past the cap.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Broken)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `Docker-Content-Digest` of `response`: `None` when there is none, an error when
/// it is not a sha256 digest.
pub(crate) fn content_digest(response: &reqwest::Response) -> Result<Option<Digest>, ()> {
    match response.headers().get("docker-content-digest") {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| ())?;
            Digest::parse(text).map(Some).ok_or(())
        }
    }
}

/// Whether `bytes` are what `digest` names.
pub(crate) fn matches(bytes: &[u8], digest: &Digest) -> bool {
    Digest::of(bytes) == *digest
}
