//! A guest's response body on its way to the client, after its head was sent, for either
//! ABI: capped at the module's `max_output_bytes`, cut off when the guest fails, and
//! counted in the metrics when it ends.
//!
//! The body a guest writes ends cleanly whether the guest finished it or was stopped
//! mid-write (wasmtime-wasi-http ends it when the store is dropped; a CGI guest's stdout
//! ends when the guest returns, however it returns), so a chunked response could look
//! complete when it is not. [`StreamedBody`] does not trust the end: it waits for the
//! guest's own end, and if the guest failed it ends in an error instead, which makes hyper
//! close the connection without the final chunk, so the client sees a cut-off response.
//! The request's outcome (ok, why the guest or its output failed, or `client_gone` when
//! the body is dropped unfinished) is recorded when the body is dropped, that is, once the
//! response is over.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use crate::guest::bounds::GuestError;
use crate::metrics::ModuleMetrics;
use crate::outcome::Outcome;

/// A guest's run, from instantiation to its return, movable into a task of its own.
pub(crate) type GuestRun = Pin<Box<dyn Future<Output = Result<(), GuestError>> + Send>>;

/// How the guest's run ended, or how it will be known once it has.
pub(crate) enum GuestEnd {
    /// It returned before its head went out (a guest that answers at once).
    Ended(Result<(), GuestError>),
    /// It runs on in a task of its own, which sends how it ended.
    Running(
        oneshot::Receiver<Result<(), GuestError>>,
        tokio::task::AbortHandle,
    ),
}

impl GuestEnd {
    /// Runs the rest of `guest` in a task of its own.
    pub(crate) fn spawn(
        guest: impl Future<Output = Result<(), GuestError>> + Send + 'static,
    ) -> GuestEnd {
        let (sent, ended) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = sent.send(guest.await);
        });
        GuestEnd::Running(ended, task.abort_handle())
    }

    /// Stops the guest if it still runs: its store, with its slot, is dropped.
    fn stop(&self) {
        if let GuestEnd::Running(_, task) = self {
            task.abort();
        }
    }

    /// How the guest ended, once it has.
    fn poll_ended(
        &mut self,
        cx: &mut Context<'_>,
        module: &Arc<str>,
    ) -> Poll<Result<(), GuestError>> {
        match self {
            GuestEnd::Ended(ended) => Poll::Ready(std::mem::replace(ended, Ok(()))),
            GuestEnd::Running(end, _) => Pin::new(end).poll(cx).map(|ended| {
                ended.unwrap_or_else(|_| {
                    Err(GuestError::Trap {
                        module: module.clone(),
                        reason: "the guest's task ended without a result".into(),
                    })
                })
            }),
        }
    }

    /// How the guest ended, once it has.
    async fn wait(mut self, module: Arc<str>) -> Result<(), GuestError> {
        std::future::poll_fn(|cx| self.poll_ended(cx, &module)).await
    }

    /// How the guest ended, if it has.
    fn ended(&mut self) -> Option<Result<(), GuestError>> {
        match self {
            GuestEnd::Ended(ended) => Some(std::mem::replace(ended, Ok(()))),
            GuestEnd::Running(end, _) => end.try_recv().ok(),
        }
    }
}

/// Why a response was cut off: how the guest or its output failed.
#[derive(Debug, thiserror::Error)]
#[error("the response was cut off: {0}")]
pub struct CutOff(pub GuestError);

/// Counts one request exactly once, with its outcome and duration: when told, or when
/// dropped, as a request whose client went away before it was answered.
pub(crate) struct Count {
    metrics: Arc<ModuleMetrics>,
    started: Instant,
    outcome: Outcome,
    /// Whether this count still counts the request (not handed over).
    armed: bool,
}

impl Count {
    /// The count of a request that arrived at `started`, in `metrics`' series.
    pub(crate) fn new(metrics: Arc<ModuleMetrics>, started: Instant) -> Count {
        Count {
            metrics,
            started,
            outcome: Outcome::ClientGone,
            armed: true,
        }
    }

    /// When the request arrived.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The series the request is counted in.
    pub(crate) fn metrics(&self) -> &Arc<ModuleMetrics> {
        &self.metrics
    }

    /// A count that counts the request in this one's place.
    fn hand_over(&mut self) -> Count {
        self.armed = false;
        Count::new(self.metrics.clone(), self.started)
    }

    /// Counts the request now, as `outcome`.
    pub(crate) fn count(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        if self.armed {
            self.metrics.request(self.outcome, self.started.elapsed());
        }
    }
}

/// A guest's response body, `inner` as the guest writes it.
pub struct StreamedBody<B> {
    inner: B,
    /// The length the guest's head declared (a component's `content-length`), if any.
    declared: Option<u64>,
    /// Bytes the body may still carry.
    remaining: u64,
    limit: u64,
    end: GuestEnd,
    /// Set once the guest's body has ended (cleanly, as far as it tells).
    inner_done: bool,
    /// Set once this body has ended, well or not.
    done: bool,
    record: Count,
}

impl<B> StreamedBody<B>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Display,
{
    /// `declared` is the `Content-Length` the guest's head gives, if any.
    pub(crate) fn new(
        inner: B,
        declared: Option<u64>,
        end: GuestEnd,
        max_output_bytes: u64,
        mut record: Count,
    ) -> StreamedBody<B> {
        // Until it is cut off or dropped unfinished, the request was answered.
        record.outcome = Outcome::Ok;
        StreamedBody {
            declared,
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
    fn cut_off(&mut self, failure: GuestError) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
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

    /// Ends a response that carries no body (HEAD, 204, 304) with its head: the guest is
    /// stopped as for a client that hung up, which frees its slot at once, and the
    /// request is counted as answered.
    pub(crate) fn end_bodiless(mut self) {
        self.end.stop();
        self.done = true;
    }

    fn output_too_large(&self) -> GuestError {
        GuestError::OutputTooLarge {
            module: self.record.metrics.name.clone(),
            limit: self.limit,
        }
    }
}

impl<B> Body for StreamedBody<B>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Display,
{
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
            // A component aborted its body or wrote other than its Content-Length; its
            // own end, if it failed, says more.
            Some(Err(e)) => match this.end.ended() {
                Some(Err(failure)) => this.cut_off(failure),
                _ => this.cut_off(GuestError::ErrorResponse {
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

impl<B> Drop for StreamedBody<B> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let sent = self.limit - self.remaining;
        if self.declared.is_some_and(|len| sent >= len) {
            // hyper stops reading a body once its Content-Length is out: the response is
            // complete, and is counted as the guest ends.
            let record = self.record.hand_over();
            let mut end = std::mem::replace(&mut self.end, GuestEnd::Ended(Ok(())));
            let module = record.metrics.name.clone();
            match (end.ended(), tokio::runtime::Handle::try_current()) {
                (Some(ended), _) => record.count(outcome_of(&ended)),
                (None, Ok(runtime)) => {
                    runtime.spawn(async move { record.count(outcome_of(&end.wait(module).await)) });
                }
                // No runtime to wait in (the process is ending): the client has it all.
                (None, Err(_)) => {}
            }
        } else {
            self.end.stop();
            self.record.outcome = Outcome::ClientGone;
            tracing::info!(
                target: "wasmgate::request",
                module = %self.record.metrics.name,
                outcome = Outcome::ClientGone.label(),
                "the client went away before the response was complete"
            );
        }
    }
}

fn outcome_of(ended: &Result<(), GuestError>) -> Outcome {
    ended
        .as_ref()
        .map_or_else(GuestError::outcome, |()| Outcome::Ok)
}
