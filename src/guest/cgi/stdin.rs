//! A CGI guest's stdin: the request body, either whole in memory or read as the guest asks.
//!
//! The gateway reads a request's body within its limit before the guest starts, so its
//! guests get [`Stdin::Buffered`]. `wasmgate run` hands the guest the process's own stdin as
//! a [`BodyStream`] instead: nothing is read until the guest reads, so a guest that never
//! reads stdin does not wait for its end, and the body limit is counted as the bytes
//! arrive. Both preview1 implementations read either kind.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::cli::AsyncStdinStream;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

/// A request body as the guest's stdin.
pub enum Stdin {
    /// The whole body.
    Buffered(Bytes),
    /// A body read only as the guest reads it.
    Streamed(BodyStream),
}

impl Stdin {
    /// Makes these bytes the stdin of a wasmtime-wasi context.
    pub(crate) fn give_to(self, wasi: &mut WasiCtxBuilder) {
        match self {
            Stdin::Buffered(bytes) => wasi.stdin(MemoryInputPipe::new(bytes)),
            Stdin::Streamed(stream) => wasi.stdin(AsyncStdinStream::new(stream)),
        };
    }
}

/// A body that is read as the guest asks for it, refused once it passes its limit.
pub struct BodyStream {
    reader: Pin<Box<dyn AsyncRead + Send + Sync>>,
    limit: u64,
    seen: u64,
    overflowed: Arc<AtomicBool>,
}

/// Tells, after the guest ran, whether its streamed body went past the limit.
#[derive(Clone)]
pub struct BodyOverflow(Arc<AtomicBool>);

impl BodyOverflow {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl BodyStream {
    /// Streams `reader`, allowing at most `limit` bytes of it.
    pub fn new(
        reader: impl AsyncRead + Send + Sync + 'static,
        limit: u64,
    ) -> (BodyStream, BodyOverflow) {
        let overflowed = Arc::new(AtomicBool::new(false));
        let stream = BodyStream {
            reader: Box::pin(reader),
            limit,
            seen: 0,
            overflowed: overflowed.clone(),
        };
        (stream, BodyOverflow(overflowed))
    }
}

impl AsyncRead for BodyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = this.reader.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.seen += (buf.filled().len() - before) as u64;
            if this.seen > this.limit {
                this.overflowed.store(true, Ordering::Relaxed);
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::other(format!(
                    "the request body is larger than {} bytes",
                    this.limit
                ))));
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_body_within_its_limit_reads_whole() {
        let (mut stream, overflow) = BodyStream::new(&b"twelve bytes"[..], 12);
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"twelve bytes");
        assert!(!overflow.happened());
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_refused_and_flagged() {
        let (mut stream, overflow) = BodyStream::new(&b"thirteen byte"[..], 12);
        let mut out = Vec::new();
        let err = stream.read_to_end(&mut out).await.unwrap_err();
        assert!(err.to_string().contains("larger than 12 bytes"), "{err}");
        assert!(out.is_empty(), "no byte past the limit reaches the guest");
        assert!(overflow.happened());
    }
}
