//! One connection, from its first byte to its close: the TLS handshake when the listener
//! speaks TLS, the protocol (HTTP/2 when ALPN chose it, or, in cleartext, when the client
//! opens with HTTP/2's preface; HTTP/1.1 otherwise), hyper's server for it within its
//! bounds, and its part in a drain.
//!
//! Every HTTP/2 stream is a request like an HTTP/1.1 one: the same handler, limits and
//! metrics. What HTTP/2 adds is bounded here: streams open at once
//! (`http2_max_streams`), the header list (as large as an HTTP/1.1 head may be), what a
//! connection buffers (flow-control windows and the send buffer, near HTTP/1.1's), and
//! the "rapid reset" attack (CVE-2023-44487): h2 itself closes a connection that resets
//! more than [`H2_MAX_PENDING_RESETS`] streams before they were accepted, and a client
//! that cancels more requests than it lets finish, by more than [`CANCEL_ALLOWANCE`],
//! loses its connection here. A connection must ask something within
//! [`HEADER_READ_TIMEOUT`], and an HTTP/2 connection with no stream open for that long is
//! closed with GOAWAY, as an idle HTTP/1.1 connection is closed by hyper.
//!
//! HTTP/1.1 requests with more than 100 headers get a 431 from hyper's default, which
//! keeps the header array on the stack (an explicit `max_headers` would move it to the
//! heap).

use std::convert::Infallible;
use std::future::{Future, pending};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::tls::Tls;
use crate::guest::conn::ConnInfo;
use crate::shutdown::Shutdown;

/// A client that has not sent its whole request head by then is disconnected (and one
/// that has not finished its TLS handshake).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The request head may not be larger than this (431 otherwise).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Once a drain starts, how long a connection that has sent no request yet has to send
/// its first (a load balancer sends it as it connects).
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(2);
/// What hyper buffers per connection, reading a request head or queueing response body
/// to write: room for the largest head, and for a streamed body's pipe twice over. Its
/// default (about 400 KiB) would hold that much of every streaming response in memory
/// while a slow client reads. HTTP/2 gets the same per stream.
const MAX_CONNECTION_BUFFER: usize = 2 * MAX_HEAD_BYTES;
/// The HTTP/2 connection preface a client with prior knowledge opens with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait before looking again at a connection that has sent part of the
/// preface (a client rarely splits its first 24 bytes).
const PREFACE_RETRY: Duration = Duration::from_millis(5);
/// How much request body one HTTP/2 stream may send ahead of the guest reading it.
const H2_STREAM_WINDOW: u32 = 128 * 1024;
/// How much request body one HTTP/2 connection may send ahead, over all its streams.
const H2_CONNECTION_WINDOW: u32 = 512 * 1024;
/// Streams a client may reset before the server has accepted them (h2's default): more,
/// and the connection is closed with ENHANCE_YOUR_CALM.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams the server may reset for a client's protocol errors before it closes the
/// connection.
const H2_MAX_LOCAL_RESETS: usize = 256;
/// How often an HTTP/2 connection is pinged, and how long its answer may take: a peer
/// that is gone is noticed without a request to fail.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Requests a client may cancel before they are answered beyond those it let finish,
/// before its connection is closed.
const CANCEL_ALLOWANCE: u64 = 100;

/// What answers each request on a connection (the public or the admin service).
pub trait Handler<Fut>:
    Fn(Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static
{
}

impl<F, Fut> Handler<Fut> for F where
    F: Fn(Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static
{
}

/// A body a listener can send: whole (the admin answers, a CGI response) or streamed (a
/// component's).
pub trait ResponseBody:
    Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

/// The response a [`Handler`] produces, in time.
pub trait Answer<B>: Future<Output = Response<B>> + Send + 'static {}

impl<T, B> Answer<B> for T where T: Future<Output = Response<B>> + Send + 'static {}

/// How a listener speaks HTTP on its connections.
pub(crate) struct Speaking {
    http1: http1::Builder,
    /// Whether HTTP/2 is spoken, and how.
    http2: Option<http2::Builder<TokioExecutor>>,
    tls: Option<Tls>,
}

impl Speaking {
    /// HTTP/1.1, HTTP/2 as well with `http2_max_streams`, over TLS with `tls`.
    pub(crate) fn new(http2_max_streams: Option<u32>, tls: Option<Tls>) -> Speaking {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_header_size(MAX_HEAD_BYTES)
            .max_buf_size(MAX_CONNECTION_BUFFER);
        let http2 = http2_max_streams.map(|streams| {
            let mut http2 = http2::Builder::new(TokioExecutor::new());
            http2
                .timer(TokioTimer::new())
                .max_concurrent_streams(streams)
                .max_header_list_size(MAX_HEAD_BYTES as u32)
                .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
                .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
                .initial_stream_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONNECTION_WINDOW)
                .max_send_buf_size(MAX_CONNECTION_BUFFER)
                .keep_alive_interval(H2_PING_INTERVAL)
                .keep_alive_timeout(H2_PING_TIMEOUT);
            http2
        });
        Speaking { http1, http2, tls }
    }

    /// Serves `stream` with `handle` until it closes, or, once `shutdown` has started,
    /// until its requests are done.
    pub(crate) async fn serve<F, Fut, B>(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        handle: F,
        shutdown: &Shutdown,
    ) -> Result<(), ConnectionError>
    where
        F: Handler<Fut>,
        Fut: Answer<B>,
        B: ResponseBody,
    {
        let local = stream.local_addr().map_err(ConnectionError::Io)?;
        let conn = |secure| ConnInfo {
            remote,
            local,
            secure,
        };
        let Some(tls) = &self.tls else {
            let h2 = match self.http2 {
                Some(_) => {
                    within_head_time(opens_with_preface(&stream), ConnectionError::Io).await?
                }
                None => false,
            };
            return self
                .serve_http(TokioIo::new(stream), h2, conn(false), handle, shutdown)
                .await;
        };
        let accepted = within_head_time(tls.accept(stream), ConnectionError::Tls).await?;
        let io = TokioIo::new(accepted.stream);
        self.serve_http(io, accepted.h2, conn(true), handle, shutdown)
            .await
    }

    /// Serves HTTP/2 (`h2`, when spoken) or HTTP/1.1 on `io`.
    async fn serve_http<I, F, Fut, B>(
        &self,
        io: I,
        h2: bool,
        conn: ConnInfo,
        handle: F,
        shutdown: &Shutdown,
    ) -> Result<(), ConnectionError>
    where
        I: Read + Write + Unpin + Send + 'static,
        F: Handler<Fut>,
        Fut: Answer<B>,
        B: ResponseBody,
    {
        let watch = Arc::new(Watch::default());
        let service = {
            let watch = watch.clone();
            service_fn(move |mut req| {
                host_from_authority(&mut req);
                let stream = watch.stream();
                let response = handle(req, conn);
                async move {
                    let response = response.await;
                    stream.answered();
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let ended = match (&self.http2, h2) {
            (Some(http2), true) => {
                let connection = http2.serve_connection(io, service);
                let shut = |c: Pin<&mut _>| http2::Connection::graceful_shutdown(c);
                drive(
                    connection,
                    shut,
                    &watch,
                    shutdown,
                    Some(HEADER_READ_TIMEOUT),
                )
                .await
            }
            _ => {
                let connection = self.http1.serve_connection(io, service);
                let shut = |c: Pin<&mut _>| http1::Connection::graceful_shutdown(c);
                drive(connection, shut, &watch, shutdown, None).await
            }
        };
        ended.map_err(ConnectionError::Http)
    }
}

/// Why a connection ended other than by closing cleanly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("{0}")]
    Io(io::Error),
    #[error("no request within {}s", HEADER_READ_TIMEOUT.as_secs())]
    Silent,
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("{0}")]
    Http(hyper::Error),
}

impl ConnectionError {
    /// Whether the client spoke something other than TLS to the TLS port: worth one
    /// line in the log (a misconfigured client or load balancer), unlike a reset.
    pub(crate) fn is_not_tls(&self) -> bool {
        matches!(self, ConnectionError::Tls(e) if e.kind() == io::ErrorKind::InvalidData)
    }
}

/// Gives an HTTP/2 request, which names its host in the `:authority` pseudo-header, the
/// `Host` header an HTTP/1.1 request would carry, so that a guest finds it where it always
/// does (CGI's `HTTP_HOST` and `SERVER_NAME`, a component's authority), and the admin
/// listener checks it as it checks HTTP/1.1's.
fn host_from_authority<B>(req: &mut Request<B>) {
    if req.version() != Version::HTTP_2 || req.headers().contains_key(HOST) {
        return;
    }
    let host = req
        .uri()
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok());
    if let Some(host) = host {
        req.headers_mut().insert(HOST, host);
    }
}

/// `step`, given as long as a client has to send a request head; its error as `failed`.
async fn within_head_time<T>(
    step: impl Future<Output = io::Result<T>>,
    failed: fn(io::Error) -> ConnectionError,
) -> Result<T, ConnectionError> {
    match tokio::time::timeout(HEADER_READ_TIMEOUT, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(ConnectionError::Silent),
    }
}

/// Whether the client opens with HTTP/2's preface, read without taking it from the socket.
async fn opens_with_preface(stream: &TcpStream) -> io::Result<bool> {
    let mut start = [0; H2_PREFACE.len()];
    loop {
        let read = stream.peek(&mut start).await?;
        if read == 0 || start[..read] != H2_PREFACE[..read] {
            return Ok(false);
        }
        if read == H2_PREFACE.len() {
            return Ok(true);
        }
        tokio::time::sleep(PREFACE_RETRY).await;
    }
}

/// What a connection's requests tell the task serving it.
#[derive(Default)]
struct Watch {
    /// Woken at each request; holds a permit once any has come.
    asked: Notify,
    /// Woken when the client cancels requests faster than it lets them run.
    abusive: Notify,
    started: AtomicU64,
    answered: AtomicU64,
    cancelled: AtomicU64,
}

impl Watch {
    /// A request begins.
    fn stream(self: &Arc<Self>) -> Stream {
        self.asked.notify_one();
        self.started.fetch_add(1, Ordering::Relaxed);
        Stream {
            watch: self.clone(),
            answered: false,
        }
    }

    /// Requests begun and not yet answered or cancelled.
    fn open(&self) -> u64 {
        let ended = self.answered.load(Ordering::Relaxed) + self.cancelled.load(Ordering::Relaxed);
        self.started.load(Ordering::Relaxed).saturating_sub(ended)
    }

    /// Returns once the connection has had no request open for `limit`, or never asked
    /// anything in that time.
    async fn idle(&self, limit: Duration) {
        loop {
            let before = self.started.load(Ordering::Relaxed);
            tokio::time::sleep(limit).await;
            if self.open() == 0 && self.started.load(Ordering::Relaxed) == before {
                return;
            }
        }
    }
}

/// One request until its response head is ready; dropped before then, it was cancelled
/// (an HTTP/2 RST_STREAM, or an HTTP/1.1 client gone).
struct Stream {
    watch: Arc<Watch>,
    answered: bool,
}

impl Stream {
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let watch = &self.watch;
        if self.answered {
            watch.answered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let cancelled = watch.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        if cancelled > CANCEL_ALLOWANCE + watch.answered.load(Ordering::Relaxed) {
            watch.abusive.notify_one();
        }
    }
}

/// Runs `connection` to its end; when `shutdown` starts, as the listener's documentation
/// says; with `idle_after`, closes it once it has had no request for that long.
async fn drive<C>(
    connection: C,
    graceful_shutdown: fn(Pin<&mut C>),
    watch: &Watch,
    shutdown: &Shutdown,
    idle_after: Option<Duration>,
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    let mut connection = pin!(connection);
    let idle = async {
        match idle_after {
            Some(limit) => watch.idle(limit).await,
            None => pending().await,
        }
    };
    tokio::select! {
        ended = connection.as_mut() => return ended,
        () = shutdown.triggered() => {}
        () = watch.abusive.notified() => {
            tracing::warn!(
                cancelled = watch.cancelled.load(Ordering::Relaxed),
                answered = watch.answered.load(Ordering::Relaxed),
                "closed a connection that cancelled its requests faster than it let them run"
            );
            return Ok(());
        }
        () = idle => {
            // Never asked anything: there is nothing to finish (and an HTTP/2 handshake
            // still waiting for the client's SETTINGS would hold a graceful close open).
            if watch.started.load(Ordering::Relaxed) == 0 {
                return Ok(());
            }
            graceful_shutdown(connection.as_mut());
            return tokio::time::timeout(HEADER_READ_TIMEOUT, connection).await.unwrap_or(Ok(()));
        }
    }
    // Draining: a request on its way is waited for, then the connection ends.
    tokio::select! {
        ended = connection.as_mut() => return ended,
        () = watch.asked.notified() => {}
        () = tokio::time::sleep(FIRST_REQUEST_WAIT) => {}
    }
    graceful_shutdown(connection.as_mut());
    connection.await
}
