//! The guest's stdout and stderr.
//!
//! stdout is a bounded in-memory buffer: a write that would pass `max_output_bytes` stops the
//! guest on the spot (a trap), and marks the buffer as overflowed so the request is answered
//! 502 `output_too_large`. The gateway so never holds more than the cap, however much a
//! guest tries to write. stderr goes to the gateway's log one line at a time, tagged with
//! the module, and is capped per request so a chatty guest cannot flood the log.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::guest::log::escape_controls;

/// stderr bytes logged per request; the rest is dropped with one notice.
pub(crate) const MAX_STDERR_BYTES: usize = 64 * 1024;
/// How much a guest may write per `check_write` permit.
const WRITE_PERMIT: usize = 64 * 1024;

/// A guest's stdout: a buffer that refuses to grow past its capacity.
#[derive(Clone)]
pub(crate) struct BoundedOutput {
    inner: Arc<OutputState>,
}

struct OutputState {
    buf: Mutex<BytesMut>,
    capacity: usize,
    overflowed: AtomicBool,
}

/// The error a guest's write past the cap traps with.
#[derive(Debug, thiserror::Error)]
#[error("the module wrote more than its output limit of {0} bytes")]
pub(crate) struct OutputTooLarge(pub usize);

impl BoundedOutput {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedOutput {
            inner: Arc::new(OutputState {
                buf: Mutex::new(BytesMut::new()),
                capacity,
                overflowed: AtomicBool::new(false),
            }),
        }
    }

    /// Whether the guest tried to write past the cap.
    pub(crate) fn overflowed(&self) -> bool {
        self.inner.overflowed.load(Ordering::Relaxed)
    }

    /// Everything written so far.
    pub(crate) fn take(&self) -> Bytes {
        lock(&self.inner.buf).split().freeze()
    }
}

/// A poisoned lock only means another writer panicked mid-append; the bytes are still ours.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A guest's stderr: complete lines go to the log as `[module] line`.
#[derive(Clone)]
pub(crate) struct GuestLog {
    inner: Arc<LogState>,
}

struct LogState {
    module: Arc<str>,
    pending: Mutex<LogBuffer>,
}

#[derive(Default)]
struct LogBuffer {
    partial: Vec<u8>,
    logged: usize,
    truncated: bool,
}

impl GuestLog {
    pub(crate) fn new(module: Arc<str>) -> Self {
        GuestLog {
            inner: Arc::new(LogState {
                module,
                pending: Mutex::new(LogBuffer::default()),
            }),
        }
    }

    fn append(&self, data: &[u8]) {
        let mut state = lock(&self.inner.pending);
        let room = MAX_STDERR_BYTES.saturating_sub(state.logged);
        if data.len() > room && !state.truncated {
            state.truncated = true;
            tracing::warn!(module = %self.inner.module, "stderr past {MAX_STDERR_BYTES} bytes dropped");
        }
        let data = &data[..data.len().min(room)];
        state.logged += data.len();
        state.partial.extend_from_slice(data);
        while let Some(nl) = state.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = state.partial.drain(..=nl).collect();
            log_line(&self.inner.module, &line[..nl]);
        }
    }
}

impl Drop for LogState {
    fn drop(&mut self) {
        let state = lock(&self.pending);
        if !state.partial.is_empty() {
            log_line(&self.module, &state.partial);
        }
    }
}

fn log_line(module: &str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = escape_controls(&text);
    tracing::info!(target: "wasmgate::guest", module, "[{module}] {text}");
}

/// Where a guest stream's bytes go: the stdout buffer or the log.
pub(crate) trait GuestSink: Clone + Send + Sync + 'static {
    /// Takes `data`, or refuses it with the trap that stops the guest.
    fn accept(&self, data: &[u8]) -> Result<(), OutputTooLarge>;
}

impl GuestSink for BoundedOutput {
    fn accept(&self, data: &[u8]) -> Result<(), OutputTooLarge> {
        let mut buf = lock(&self.inner.buf);
        if data.len() > self.inner.capacity - buf.len() {
            self.inner.overflowed.store(true, Ordering::Relaxed);
            return Err(OutputTooLarge(self.inner.capacity));
        }
        buf.extend_from_slice(data);
        Ok(())
    }
}

impl GuestSink for GuestLog {
    fn accept(&self, data: &[u8]) -> Result<(), OutputTooLarge> {
        self.append(data);
        Ok(())
    }
}

/// Adapts a [`GuestSink`] to the stream traits of wasmtime-wasi and tokio.
#[derive(Clone)]
pub(crate) struct GuestStream<S>(pub S);

impl<S: GuestSink> IsTerminal for GuestStream<S> {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl<S: GuestSink> StdoutStream for GuestStream<S> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl<S: GuestSink> Pollable for GuestStream<S> {
    async fn ready(&mut self) {}
}

impl<S: GuestSink> OutputStream for GuestStream<S> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0
            .accept(&bytes)
            .map_err(|e| StreamError::Trap(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always grant a permit, even when full: the write that follows is what trips the
        // cap, so an overflow is a trap the gateway can name rather than a closed stream.
        Ok(WRITE_PERMIT)
    }
}

impl<S: GuestSink> tokio::io::AsyncWrite for GuestStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.0
                .accept(data)
                .map(|()| data.len())
                .map_err(std::io::Error::other),
        )
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

    #[test]
    fn output_is_kept_up_to_the_cap() {
        let out = BoundedOutput::new(10);
        let mut stream = GuestStream(out.clone());
        stream.write(Bytes::from_static(b"0123456789")).unwrap();
        assert!(!out.overflowed());
        let refused = stream.write(Bytes::from_static(b"x"));
        assert!(matches!(refused, Err(StreamError::Trap(_))));
        assert!(out.overflowed());
        assert_eq!(&out.take()[..], b"0123456789");
    }
}
