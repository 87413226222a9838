//! Reads a request body within its limit, and refuses an oversized one so that the client
//! can actually read the refusal.
//!
//! A body over the limit is refused (413) without being buffered: a declared
//! `Content-Length` is checked before anything is read, and a chunked body is counted as
//! it streams. But a server that answers and closes while the client is still sending
//! makes the client's kernel see a reset, and most clients then report a broken pipe
//! instead of the 413. So, like nginx's lingering close, the rest of a refused body is
//! read and thrown away — up to [`MAX_DRAIN_BYTES`] and [`DRAIN_TIMEOUT`] — before the
//! answer goes out. A client that sent `Expect: 100-continue` has not sent its body yet:
//! it gets the 413 at once, and never sends it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, EXPECT};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The most of a refused body that is read and discarded before the 413 goes out.
pub(crate) const MAX_DRAIN_BYTES: u64 = 32 << 20;
/// The longest a refused body is drained before the 413 goes out.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit (declared or counted).
    TooLarge,
    /// The connection failed or the framing was broken.
    Unreadable,
    /// The whole body did not arrive within the timeout.
    TimedOut,
}

/// Reads the whole body, at most `limit` bytes of it, within `timeout`.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    refuse_declared_oversize(headers, &mut body, limit).await?;
    match tokio::time::timeout(timeout, collect(&mut body, limit)).await {
        Ok(Err(BodyError::TooLarge)) => Err(BodyError::TooLarge),
        Ok(result) => result,
        Err(_) => Err(BodyError::TimedOut),
    }
}

/// The `Content-Length` a message's headers declare, if they declare one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Refuses a body whose declared `Content-Length` is over `limit`, draining it first (see
/// the module's comment); a body that declares no length, or one within the limit, passes.
pub(crate) async fn refuse_declared_oversize(
    headers: &HeaderMap,
    body: &mut Incoming,
    limit: u64,
) -> Result<(), BodyError> {
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > limit) {
        let waits_for_continue = headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits_for_continue && declared.is_some_and(|len| len <= MAX_DRAIN_BYTES) {
            drain(body, 0).await;
        }
        return Err(BodyError::TooLarge);
    }
    Ok(())
}

/// Collects the body, stopping (and draining) once it passes `limit`.
async fn collect(body: &mut Incoming, limit: u64) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let seen = buf.len() as u64 + data.len() as u64;
        if seen > limit {
            drain(body, seen).await;
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// Reads and discards the rest of a refused body, within the drain bounds.
async fn drain(body: &mut Incoming, already: u64) {
    let discard = async {
        let mut seen = already;
        while seen <= MAX_DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len() as u64),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}
