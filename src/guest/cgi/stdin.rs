//! A CGI guest's stdin: the request body, either whole in memory or read as the guest asks.
//!
//! A request without a body gives its guest an empty [`Stdin::Buffered`]. Any other body
//! (the gateway's, as it arrives over the connection, or the process's own stdin under
//! `wasmgate run`) is a [`BodyStream`]: nothing is read until the guest reads, so a guest
//! that never reads stdin does not wait for its end. A body that breaks off, arrives too
//! slowly or passes its limit (`guest/body.rs`) gives the guest an I/O error. Both
//! preview1 implementations read either kind.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::Body;
use tokio::io::{AsyncRead, ReadBuf};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::cli::AsyncStdinStream;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use crate::guest::body::{BodyError, LimitedBody, RequestBody};

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

/// A request body read only as the guest asks for it.
pub struct BodyStream {
    reader: Pin<Box<dyn AsyncRead + Send + Sync>>,
}

impl BodyStream {
    pub(crate) fn new<B: RequestBody>(body: LimitedBody<B>) -> BodyStream {
        BodyStream {
            reader: Box::pin(BodyReader {
                body,
                current: Bytes::new(),
            }),
        }
    }
}

impl AsyncRead for BodyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reader.as_mut().poll_read(cx, buf)
    }
}

/// A body's frames as an `AsyncRead`.
struct BodyReader<B> {
    body: LimitedBody<B>,
    /// What is left of the last data frame.
    current: Bytes,
}

impl<B: RequestBody> AsyncRead for BodyReader<B> {
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
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(io_error(e, this.body.limit())));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = this.current.len().min(buf.remaining());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// What the guest's read of a failed body returns.
fn io_error(error: BodyError, limit: u64) -> io::Error {
    match error {
        BodyError::TooLarge => {
            io::Error::other(format!("the request body is larger than {limit} bytes"))
        }
        BodyError::TimedOut => io::ErrorKind::TimedOut.into(),
        BodyError::Unreadable => io::Error::other("the request body could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_body_within_its_limit_reads_whole() {
        let (body, _) = LimitedBody::new(Full::new(Bytes::from("twelve bytes")), 12, None);
        let mut out = Vec::new();
        BodyStream::new(body).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"twelve bytes");
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_refused() {
        let (body, _) = LimitedBody::new(Full::new(Bytes::from("thirteen byte")), 12, None);
        let mut out = Vec::new();
        let err = BodyStream::new(body)
            .read_to_end(&mut out)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than 12 bytes"), "{err}");
        assert!(out.is_empty(), "no byte past the limit reaches the guest");
    }
}
