//! A component's response body on its way to the client: capped at the module's
//! `max_output_bytes`, cut off when the guest fails after its head was sent, and counted
//! in the metrics when it ends.
//!
//! wasmtime-wasi-http ends a body cleanly whether the guest finished it or its store was
//! dropped mid-write (a trap, the deadline), so a chunked response could look complete
//! when it is not. This body does not trust the end: it waits for the guest's own end, and
//! if the guest failed it ends in an error instead, which makes hyper close the connection
//! without the final chunk, so the client sees a cut-off response. The request's outcome
//! (ok, or why the guest or its output failed) is recorded when the body is dropped, that
//! is, once the response is over.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::guest::bounds::InvokeError;
use crate::metrics::ModuleMetrics;
use crate::outcome::Outcome;

/// How the guest's run ended, or how it will be known once it has.
pub(crate) enum GuestEnd {
    /// It returned before its head went out (a guest that answers at once).
    Ended(Result<(), InvokeError>),
    /// It runs on in a task of its own, which sends how it ended.
    Running(oneshot::Receiver<Result<(), InvokeError>>),
}

impl GuestEnd {
    /// Runs the rest of `guest` in a task of its own.
    pub(crate) fn spawn(
        guest: impl Future<Output = Result<(), InvokeError>> + Send + 'static,
    ) -> GuestEnd {
        let (sent, ended) = oneshot::channel();
        tokio::spawn(async move {
            let _ = sent.send(guest.await);
        });
        GuestEnd::Running(ended)
    }

    /// How the guest ended, once it has.
    fn poll_ended(
        &mut self,
        cx: &mut Context<'_>,
        module: &Arc<str>,
    ) -> Poll<Result<(), InvokeError>> {
        match self {
            GuestEnd::Ended(ended) => Poll::Ready(std::mem::replace(ended, Ok(()))),
            GuestEnd::Running(end) => Pin::new(end).poll(cx).map(|ended| {
                ended.unwrap_or_else(|_| {
                    Err(InvokeError::Trap {
                        module: module.clone(),
                        reason: "the guest's task ended without a result".into(),
                    })
                })
            }),
        }
    }

    /// How the guest ended, if it has.
    fn ended(&mut self) -> Option<Result<(), InvokeError>> {
        match self {
            GuestEnd::Ended(ended) => Some(std::mem::replace(ended, Ok(()))),
            GuestEnd::Running(end) => end.try_recv().ok(),
        }
    }
}

/// Why a response was cut off: how the guest or its output failed.
#[derive(Debug, thiserror::Error)]
#[error("the response was cut off: {0}")]
pub struct CutOff(pub InvokeError);

/// Records one request's outcome and duration when dropped.
pub(crate) struct Record {
    metrics: Arc<ModuleMetrics>,
    started: Instant,
    outcome: Outcome,
}

impl Record {
    pub(crate) fn new(metrics: Arc<ModuleMetrics>, started: Instant) -> Record {
        Record {
            metrics,
            started,
            outcome: Outcome::Ok,
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.metrics.request(self.outcome, self.started.elapsed());
    }
}

/// A component's response body.
pub struct ComponentBody {
    inner: HyperOutgoingBody,
    /// Bytes the body may still carry.
    remaining: u64,
    limit: u64,
    end: GuestEnd,
    /// Set once the guest's body has ended (cleanly, as far as it tells).
    inner_done: bool,
    /// Set once this body has ended, well or not.
    done: bool,
    record: Record,
}

impl ComponentBody {
    pub(crate) fn new(
        inner: HyperOutgoingBody,
        end: GuestEnd,
        max_output_bytes: u64,
        record: Record,
    ) -> ComponentBody {
        ComponentBody {
            inner,
            remaining: max_output_bytes,
            limit: max_output_bytes,
            end,
            inner_done: false,
            done: false,
            record,
        }
    }

    /// Ends the body with `failure`: counted, logged, and sent to hyper as an error.
    fn cut_off(&mut self, failure: InvokeError) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
        self.done = true;
        self.record.outcome = failure.outcome();
        tracing::warn!(
            target: "wasmgate::request",
            module = %self.record.metrics.name,
            outcome = failure.outcome().label(),
            "{failure} (after the response head was sent)"
        );
        Poll::Ready(Some(Err(CutOff(failure))))
    }

    /// The inner body has ended: the response ends as the guest did.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
        match ready!(self.end.poll_ended(cx, &self.record.metrics.name)) {
            Ok(()) => {
                self.done = true;
                Poll::Ready(None)
            }
            Err(failure) => self.cut_off(failure),
        }
    }

    fn output_too_large(&self) -> InvokeError {
        InvokeError::OutputTooLarge {
            module: self.record.metrics.name.clone(),
            limit: self.limit,
        }
    }
}

impl Body for ComponentBody {
    type Data = Bytes;
    type Error = CutOff;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.inner_done {
            return this.poll_end(cx);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > this.remaining {
                    let failure = this.output_too_large();
                    return this.cut_off(failure);
                }
                this.remaining -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            // The guest aborted its body or wrote other than its Content-Length; its own
            // end, if it failed, says more.
            Some(Err(e)) => match this.end.ended() {
                Some(Err(failure)) => this.cut_off(failure),
                _ => this.cut_off(InvokeError::ErrorResponse {
                    module: this.record.metrics.name.clone(),
                    code: e.to_string(),
                }),
            },
            None => {
                this.inner_done = true;
                this.poll_end(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
