//! A request body as the guest reads it, and the refusal of an oversized one, made so that
//! the client can actually read the refusal.
//!
//! A body is never buffered whole: [`BodyReader`] hands it to a CGI guest's stdin as it
//! arrives, within the body timeout, and a component reads it as a stream. A declared
//! `Content-Length` over the limit is refused (413) before the guest runs; a chunked body
//! is counted as it streams. But a server that answers and closes while the client is still sending
//! makes the client's kernel see a reset, and most clients then report a broken pipe
//! instead of the 413. So, like nginx's lingering close, the rest of a refused body is
//! read and thrown away — up to [`MAX_DRAIN_BYTES`] and [`DRAIN_TIMEOUT`] — before the
//! answer goes out. A client that sent `Expect: 100-continue` has not sent its body yet:
//! it gets the 413 at once, and never sends it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, EXPECT};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

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

/// The `Content-Length` a message's headers declare, if they declare one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Refuses a body whose declared `Content-Length` is over `limit`, draining it first (see
/// the module's comment); a body that declares no length, or one within the limit, passes.
pub(crate) async fn refuse_declared_oversize<B: Body + Unpin>(
    headers: &HeaderMap,
    body: &mut B,
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

/// Reads and discards the rest of a refused body, within the drain bounds.
async fn drain<B: Body + Unpin>(body: &mut B, already: u64) {
    let discard = async {
        let mut seen = already;
        while seen <= MAX_DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.remaining() as u64),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

/// A request body as an `AsyncRead`, which must have arrived whole by a deadline: past it,
/// a read fails with `TimedOut`.
pub(crate) struct BodyReader<B> {
    body: B,
    /// What is left of the last data frame.
    current: Bytes,
    deadline: Pin<Box<Sleep>>,
}

impl<B> BodyReader<B> {
    pub(crate) fn new(body: B, deadline: Instant) -> BodyReader<B> {
        BodyReader {
            body,
            current: Bytes::new(),
            deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
        }
    }
}

impl<B> AsyncRead for BodyReader<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.current.is_empty() {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.current = data;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match this.deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
        let n = this.current.len().min(buf.remaining());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}
