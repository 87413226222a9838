//! A CGI guest's stdin: the request body, either whole in memory or read as the guest asks.
//!
//! A request without a body gives its guest an empty [`Stdin::Buffered`]. Any other body
//! (the gateway's, as it arrives over the connection, or the process's own stdin under
//! `wasmgate run`) is a [`BodyStream`]: nothing is read until the guest reads, so a guest
//! that never reads stdin does not wait for its end, and the body limit is counted as the
//! bytes arrive. A body that breaks off, arrives too slowly or passes its limit gives the
//! guest an I/O error, and leaves a [`BodyFault`] that names the request's answer. Both
//! preview1 implementations read either kind.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::cli::AsyncStdinStream;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use crate::guest::body::BodyError;

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
    fault: BodyFault,
}

/// Tells, once the guest has run, whether its streamed body failed, and how.
#[derive(Clone, Default)]
pub(crate) struct BodyFault(Arc<OnceLock<BodyError>>);

impl BodyFault {
    pub(crate) fn get(&self) -> Option<BodyError> {
        self.0.get().copied()
    }

    fn set(&self, error: BodyError) {
        let _first_stays = self.0.set(error);
    }
}

impl BodyStream {
    /// Streams `reader`, allowing at most `limit` bytes of it. A read error of kind
    /// `TimedOut` counts as a body that did not arrive in time.
    pub(crate) fn new(
        reader: impl AsyncRead + Send + Sync + 'static,
        limit: u64,
    ) -> (BodyStream, BodyFault) {
        let fault = BodyFault::default();
        let stream = BodyStream {
            reader: Box::pin(reader),
            limit,
            seen: 0,
            fault: fault.clone(),
        };
        (stream, fault)
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
        match &polled {
            Poll::Ready(Ok(())) => {
                this.seen += (buf.filled().len() - before) as u64;
                if this.seen > this.limit {
                    this.fault.set(BodyError::TooLarge);
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::other(format!(
                        "the request body is larger than {} bytes",
                        this.limit
                    ))));
                }
            }
            Poll::Ready(Err(e)) => this.fault.set(match e.kind() {
                io::ErrorKind::TimedOut => BodyError::TimedOut,
                _ => BodyError::Unreadable,
            }),
            Poll::Pending => {}
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
        let (mut stream, fault) = BodyStream::new(&b"twelve bytes"[..], 12);
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"twelve bytes");
        assert_eq!(fault.get(), None);
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_refused_and_flagged() {
        let (mut stream, fault) = BodyStream::new(&b"thirteen byte"[..], 12);
        let mut out = Vec::new();
        let err = stream.read_to_end(&mut out).await.unwrap_err();
        assert!(err.to_string().contains("larger than 12 bytes"), "{err}");
        assert!(out.is_empty(), "no byte past the limit reaches the guest");
        assert_eq!(fault.get(), Some(BodyError::TooLarge));
    }
}
