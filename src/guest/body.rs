//! A request body as a guest receives it, for either ABI and for `serve` and `run` alike:
//! streamed as it arrives, never buffered whole, and cut at the module's
//! `max_body_bytes` and at the gateway's body timeout ([`LimitedBody`]), leaving a
//! [`BodyFault`] that names the request's answer once the guest has run.
//!
//! A declared `Content-Length` over the limit is refused (413) before the guest runs. But
//! a server that answers and closes while the client is still sending makes the client's
//! kernel see a reset, and most clients then report a broken pipe instead of the 413. So,
//! like nginx's lingering close, the rest of a refused body is read and thrown away — up
//! to [`MAX_DRAIN_BYTES`] and [`DRAIN_TIMEOUT`] — before the answer goes out. A client
//! that sent `Expect: 100-continue` has not sent its body yet: it gets the 413 at once,
//! and never sends it.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, EXPECT};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use super::lazy_sleep::LazySleep;

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

/// What a request body must be: the client's (hyper's `Incoming`), `run`'s stdin, or a
/// test's.
pub trait RequestBody:
    Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Sync
    + Unpin
    + 'static
{
}

impl<B> RequestBody for B where
    B: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Sync
        + Unpin
        + 'static
{
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
            drain(body).await;
        }
        return Err(BodyError::TooLarge);
    }
    Ok(())
}

/// Reads and discards the rest of a refused body, within the drain bounds.
async fn drain<B: Body + Unpin>(body: &mut B) {
    let discard = async {
        let mut seen = 0;
        while seen <= MAX_DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.remaining() as u64),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

/// Tells, once the guest has run, whether its body failed, and how: the first failure
/// stays.
#[derive(Clone, Default)]
pub(crate) struct BodyFault(Arc<OnceLock<BodyError>>);

impl BodyFault {
    pub(crate) fn get(&self) -> Option<BodyError> {
        self.0.get().copied()
    }

    fn set(&self, error: BodyError) -> BodyError {
        let _first_stays = self.0.set(error);
        error
    }
}

/// A request body that fails once more than its limit has arrived, or when it has not
/// ended by its deadline, or when it cannot be read; each failure is left in its
/// [`BodyFault`] as well.
pub(crate) struct LimitedBody<B> {
    inner: B,
    limit: u64,
    received: u64,
    /// Made only once the body has had to wait: most bodies are whole at once.
    deadline: Option<LazySleep>,
    fault: BodyFault,
}

impl<B> LimitedBody<B> {
    /// `inner`, allowed `limit` bytes and, when there is one, until `deadline`.
    pub(crate) fn new(inner: B, limit: u64, deadline: Option<Instant>) -> (Self, BodyFault) {
        let fault = BodyFault::default();
        let body = LimitedBody {
            inner,
            limit,
            received: 0,
            deadline: deadline.map(LazySleep::until),
            fault: fault.clone(),
        };
        (body, fault)
    }

    /// The most the body may carry.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

impl<B: RequestBody> Body for LimitedBody<B> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(_))) => {
                return Poll::Ready(Some(Err(this.fault.set(BodyError::Unreadable))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                let Some(deadline) = this.deadline.as_mut() else {
                    return Poll::Pending;
                };
                if deadline.poll_elapsed(cx).is_pending() {
                    return Poll::Pending;
                }
                return Poll::Ready(Some(Err(this.fault.set(BodyError::TimedOut))));
            }
        };
        if let Some(data) = frame.data_ref() {
            this.received = this.received.saturating_add(data.len() as u64);
            if this.received > this.limit {
                return Poll::Ready(Some(Err(this.fault.set(BodyError::TooLarge))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn a_body_within_its_limit_reads_whole() {
        let (body, fault) = LimitedBody::new(Full::new(Bytes::from("twelve bytes")), 12, None);
        let read = body.collect().await.unwrap().to_bytes();
        assert_eq!(read, "twelve bytes");
        assert_eq!(fault.get(), None);
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_refused_and_flagged() {
        let (body, fault) = LimitedBody::new(Full::new(Bytes::from("thirteen byte")), 12, None);
        assert_eq!(body.collect().await.err(), Some(BodyError::TooLarge));
        assert_eq!(fault.get(), Some(BodyError::TooLarge));
    }

    /// A body whose client never sends a byte.
    struct Silent;

    impl Body for Silent {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_its_deadline_times_out() {
        let deadline = Instant::now() + Duration::from_millis(20);
        let (body, fault) = LimitedBody::new(Silent, 12, Some(deadline));
        assert_eq!(body.collect().await.err(), Some(BodyError::TimedOut));
        assert_eq!(fault.get(), Some(BodyError::TimedOut));
    }
}
