//! A guest's stderr: the gateway's log, one line at a time, tagged with the module, and
//! capped per request so that a chatty guest cannot flood the log. (A CR, LF or ESC in a
//! line is escaped by the log's writer, `crate::logging`, as in every event.)

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// stderr bytes logged per request; the rest is dropped with one notice.
pub(crate) const MAX_STDERR_BYTES: usize = 64 * 1024;
/// How much a guest may write per `check_write` permit.
const WRITE_PERMIT: usize = 64 * 1024;

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

    /// Logs the complete lines of `data`, keeping a partial last line for later.
    pub(crate) fn append(&self, data: &[u8]) {
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
    tracing::info!(target: "wasmgate::guest", module, "[{module}] {text}");
}

/// A [`GuestLog`] through the stream traits of wasmtime-wasi and tokio.
#[derive(Clone)]
pub(crate) struct LogStream(pub GuestLog);

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.append(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
