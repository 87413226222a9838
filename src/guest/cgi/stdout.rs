//! A CGI guest's stdout on its way to the client: a buffer at first, then a bounded pipe.
//!
//! Until the exchange commits the response head ([`Stdout::commit`]), everything the guest
//! writes is kept, so a guest that exits early is answered whole, exactly as it always
//! was (status from the outcome, `Content-Length`). The buffer takes writes up to
//! `stream_after_bytes`; a write past that waits, which hands control back to the
//! exchange so it can decide (../shared/DESIGN.md "Streaming"). Once committed, the buffer is a pipe
//! of [`PIPE_BYTES`] that the client's [`StdoutBody`] drains: a guest whose client reads
//! slowly waits in its writes (asynchronously, within its deadline), and the gateway never
//! holds more than `stream_after_bytes` plus [`PIPE_BYTES`] for it.
//!
//! Every write counts against `max_output_bytes`: the write that would pass it is refused,
//! and the guest trapped, as before streaming. A client that goes away closes the pipe:
//! the guest's next write is refused, and its task, watching [`Stdout::poll_client_gone`],
//! drops it even if it never writes again.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::response::MAX_HEADER_BLOCK;

/// What a committed response keeps in flight for a slow client, beyond what was buffered.
pub(crate) const PIPE_BYTES: usize = 64 * 1024;

/// The guest's end of its stdout; clones share one buffer.
#[derive(Clone)]
pub(crate) struct Stdout {
    shared: Arc<Mutex<State>>,
}

/// The client's end of a committed stdout: the response body.
pub(crate) struct StdoutBody {
    shared: Arc<Mutex<State>>,
}

struct State {
    buf: BytesMut,
    /// Bytes accepted in all, against `cap`.
    written: u64,
    cap: u64,
    /// Writes wait once `buf` holds this much.
    room_limit: usize,
    phase: Phase,
    /// The guest tried to write past `cap`.
    overflowed: bool,
    /// The guest, waiting for room.
    writer: Option<Waker>,
    /// The client, waiting for bytes.
    reader: Option<Waker>,
    /// The guest's task, waiting to hear that the client went away.
    watcher: Option<Waker>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Kept for the exchange to decide on.
    Buffering,
    /// Committed: drained by the client.
    Streaming,
    /// The guest has returned: nothing more comes.
    Finished,
    /// The client went away.
    ClientGone,
}

/// Why a write was refused; either stops the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteRefused {
    #[error("the module wrote more than its output limit")]
    OutputTooLarge,
    #[error("the client went away")]
    ClientGone,
}

/// How a guest's stdout ended, for naming its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFate {
    Kept,
    /// The guest wrote past its cap.
    Overflowed,
    /// Its client went away mid-response.
    ClientGone,
}

impl Stdout {
    /// A stdout that buffers up to `stream_after_bytes` before it waits for a decision,
    /// and accepts `cap` bytes in all.
    pub(crate) fn new(stream_after_bytes: u64, cap: u64) -> Stdout {
        let room_limit = usize::try_from(stream_after_bytes).unwrap_or(usize::MAX);
        Stdout {
            shared: Arc::new(Mutex::new(State {
                buf: BytesMut::new(),
                written: 0,
                cap,
                room_limit,
                phase: Phase::Buffering,
                overflowed: false,
                writer: None,
                reader: None,
                watcher: None,
            })),
        }
    }

    /// A stdout that keeps everything up to `cap` and never streams (`run_cgi`'s).
    pub(crate) fn collecting(cap: u64) -> Stdout {
        Stdout::new(cap, cap)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Takes as much of `data` as there is room for now: the count, `0` when full.
    pub(crate) fn write_now(&self, data: &[u8]) -> Result<usize, WriteRefused> {
        let mut state = self.state();
        state.check(data.len())?;
        let n = data.len().min(state.room());
        if n > 0 {
            state.written += n as u64;
            state.buf.extend_from_slice(&data[..n]);
            if state.phase == Phase::Streaming {
                wake(&mut state.reader);
            }
        }
        Ok(n)
    }

    /// Waits until a write of `len` bytes can take at least one, or is refused.
    pub(crate) fn poll_writable(
        &self,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<Result<(), WriteRefused>> {
        let mut state = self.state();
        state.check(len)?;
        if state.room() > 0 {
            return Poll::Ready(Ok(()));
        }
        state.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits as [`Stdout::poll_writable`] does.
    pub(crate) async fn writable(&self, len: usize) -> Result<(), WriteRefused> {
        std::future::poll_fn(|cx| self.poll_writable(cx, len)).await
    }

    /// Bytes buffered and not yet committed.
    pub(crate) fn buffered(&self) -> usize {
        self.state().buf.len()
    }

    /// Calls `f` with the bytes buffered so far, for the exchange to decide on.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.state().buf)
    }

    /// Lets the buffer grow until a header block can be told from a body; says whether
    /// that gave the guest more room.
    pub(crate) fn allow_header_block(&self) -> bool {
        let mut state = self.state();
        let raise = state.room_limit <= MAX_HEADER_BLOCK;
        if raise {
            state.room_limit = MAX_HEADER_BLOCK + 1;
            wake(&mut state.writer);
        }
        raise
    }

    /// Everything written, for a guest that finished before its head was committed.
    pub(crate) fn take(&self) -> Bytes {
        self.state().buf.split().freeze()
    }

    /// Commits the head, whose block is the first `head_len` buffered bytes: the rest
    /// becomes the start of the body, and from now on the client drains the pipe.
    pub(crate) fn commit(&self, head_len: usize) -> StdoutBody {
        let mut state = self.state();
        let head_len = head_len.min(state.buf.len());
        let _head = state.buf.split_to(head_len);
        state.phase = Phase::Streaming;
        state.room_limit = PIPE_BYTES;
        wake(&mut state.writer);
        StdoutBody {
            shared: self.shared.clone(),
        }
    }

    /// The guest has returned: the body ends once drained.
    pub(crate) fn finish(&self) {
        let mut state = self.state();
        if state.phase != Phase::ClientGone {
            state.phase = Phase::Finished;
        }
        wake(&mut state.reader);
    }

    /// Ready once the client has gone away.
    pub(crate) fn poll_client_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state();
        if state.phase == Phase::ClientGone {
            return Poll::Ready(());
        }
        state.watcher = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn fate(&self) -> OutputFate {
        let state = self.state();
        match (state.overflowed, state.phase) {
            (true, _) => OutputFate::Overflowed,
            (false, Phase::ClientGone) => OutputFate::ClientGone,
            (false, _) => OutputFate::Kept,
        }
    }
}

impl State {
    /// Refuses a write of `len` bytes that the stream cannot take at all.
    fn check(&mut self, len: usize) -> Result<(), WriteRefused> {
        if self.phase == Phase::ClientGone {
            return Err(WriteRefused::ClientGone);
        }
        if len as u64 > self.cap - self.written {
            self.overflowed = true;
            return Err(WriteRefused::OutputTooLarge);
        }
        Ok(())
    }

    fn room(&self) -> usize {
        self.room_limit.saturating_sub(self.buf.len())
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

/// A poisoned lock only means a writer panicked mid-append; the bytes are still ours.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Body for StdoutBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut state = lock(&self.shared);
        if !state.buf.is_empty() {
            let chunk = state.buf.split().freeze();
            wake(&mut state.writer);
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if state.phase == Phase::Finished {
            return Poll::Ready(None);
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for StdoutBody {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        if state.phase != Phase::Finished {
            state.phase = Phase::ClientGone;
            state.buf = BytesMut::new();
            wake(&mut state.writer);
            wake(&mut state.watcher);
        }
    }
}

/// stdout for a guest on wasmtime-wasi: the same buffer, through its stream traits.
impl IsTerminal for Stdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Stdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Stdout {
    async fn ready(&mut self) {
        // A refusal shows in the `check_write` that follows.
        let _ = self.writable(0).await;
    }
}

impl OutputStream for Stdout {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        // `check_write` granted this much room, so all of it is taken.
        self.write_now(&bytes)
            .map(drop)
            .map_err(|e| StreamError::Trap(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let mut state = self.state();
        state.check(0).map_err(|e| StreamError::Trap(e.into()))?;
        // Past the cap, grant a permit anyway: the write that follows trips it, so an
        // overflow is a trap the gateway can name rather than a closed stream.
        Ok(state.room())
    }
}

impl tokio::io::AsyncWrite for Stdout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            match self.write_now(data) {
                Ok(0) if !data.is_empty() => {}
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
            if let Err(e) = std::task::ready!(self.poll_writable(cx, data.len())) {
                return Poll::Ready(Err(std::io::Error::other(e)));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn output_is_kept_up_to_the_cap() {
        let out = Stdout::collecting(10);
        assert_eq!(out.write_now(b"0123456789"), Ok(10));
        assert_eq!(out.write_now(b"x"), Err(WriteRefused::OutputTooLarge));
        assert_eq!(out.fate(), OutputFate::Overflowed);
        assert_eq!(&out.take()[..], b"0123456789");
    }

    #[test]
    fn buffering_stops_at_the_threshold_until_the_exchange_decides() {
        let out = Stdout::new(4, 1 << 20);
        assert_eq!(out.write_now(b"abcdef"), Ok(4), "a write is taken in part");
        assert_eq!(out.write_now(b"ef"), Ok(0));
        assert!(out.allow_header_block());
        assert!(!out.allow_header_block(), "only once");
        assert_eq!(out.write_now(b"ef"), Ok(2));
        assert_eq!(out.buffered(), 6);
    }

    #[tokio::test]
    async fn a_committed_stdout_streams_what_follows_the_head() {
        let out = Stdout::new(0, 1 << 20);
        assert!(out.allow_header_block());
        out.write_now(b"A: b\n\nbody").unwrap();
        let mut body = out.commit(6);
        out.write_now(b" more").unwrap();
        out.finish();
        let got = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&got[..], b"body more");
        assert!(body.frame().await.is_none());
    }

    #[test]
    fn a_full_pipe_waits_for_the_client_and_refuses_once_it_is_gone() {
        let out = Stdout::new(0, 1 << 30);
        let body = out.commit(0);
        let big = vec![b'x'; PIPE_BYTES + 1];
        assert_eq!(out.write_now(&big), Ok(PIPE_BYTES));
        assert_eq!(out.write_now(b"x"), Ok(0), "no more than the pipe is held");
        drop(body);
        assert_eq!(out.write_now(b"x"), Err(WriteRefused::ClientGone));
        assert_eq!(out.fate(), OutputFate::ClientGone);
    }
}
