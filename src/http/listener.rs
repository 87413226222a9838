//! The accept loop shared by the public and the admin listener: HTTP/1.1 with keep-alive on
//! hyper, bounded header reads, and a graceful drain when shutdown is triggered.
//!
//! Requests with more than 100 headers get a 431 from hyper's default, which keeps the
//! header array on the stack (an explicit `max_headers` would move it to the heap).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, oneshot};

use crate::shutdown::Shutdown;

/// A client that has not sent its whole request head by then is disconnected.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The request head may not be larger than this (431 otherwise).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// What hyper buffers per connection, reading a request head or queueing response body
/// to write: room for the largest head, and for a streamed body's pipe twice over. Its
/// default (about 400 KiB) would hold that much of every streaming response in memory
/// while a slow client reads.
const MAX_CONNECTION_BUFFER: usize = 2 * MAX_HEAD_BYTES;
/// Connections the kernel queues per listening socket before they are accepted.
const LISTEN_BACKLOG: u32 = 1024;
/// How long to wait before accepting again after an accept error (such as EMFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The two ends of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// How a listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// Connections served at once; beyond that, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// After shutdown, how long open connections may take to finish their requests.
    pub grace: Duration,
}

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

/// Serves `listener` with `handle` until `shutdown` triggers, then lets open connections
/// finish their requests for up to the grace period.
pub async fn serve<F, Fut, B>(
    listener: TcpListener,
    handle: F,
    shutdown: Shutdown,
    options: ListenOptions,
) where
    F: Handler<Fut>,
    Fut: Answer<B>,
    B: ResponseBody,
{
    let connections = Arc::new(Semaphore::new(options.max_connections));
    serve_with(listener, handle, shutdown, options.grace, connections).await;
}

/// [`serve`] on `threads` threads of its own, each with a single-threaded runtime and a
/// listening socket of its own on `listener`'s address (made by [`bind_shared`], as
/// `listener` must be), running its connections' requests (and their guests) to the end.
/// Returns once every thread has drained.
///
/// Against [`serve`] on one multi-threaded runtime (the default, `serve_threads = 0`): no
/// worker parks and wakes another around each request, which for a small function costs
/// more than its own work, so CPU per request falls by 13–19% (BENCHMARKS.md). The
/// price is that a connection stays on the thread that accepted it: guests still yield at
/// every epoch tick, so one busy guest delays but cannot stall the others on its thread,
/// but a thread the kernel takes off its core holds up all of its connections (a higher
/// p99 where cores are oversubscribed). Why a socket per thread (`SO_REUSEPORT`) rather than one shared
/// socket: the kernel then spreads new connections over the threads evenly, where with a
/// shared socket the first thread to wake accepts a whole burst of them. `max_connections`
/// is split evenly among the threads (at least one each): a thread takes a connection slot
/// before it accepts, and a slot taken by one thread cannot serve a connection that the
/// kernel queued on another's socket.
pub async fn serve_on_threads<F, Fut, B>(
    listener: TcpListener,
    threads: usize,
    handle: F,
    shutdown: Shutdown,
    options: ListenOptions,
) where
    F: Handler<Fut>,
    Fut: Answer<B>,
    B: ResponseBody,
{
    let per_thread = (options.max_connections / threads.max(1)).max(1);
    let (first, addr) = match listener
        .local_addr()
        .and_then(|a| Ok((listener.into_std()?, a)))
    {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(error = %e, "cannot hand the listener to the serving threads");
            return;
        }
    };
    let mut first = Some(first);
    let mut running = Vec::with_capacity(threads);
    for index in 0..threads.max(1) {
        let thread = ServingThread {
            index,
            handle: handle.clone(),
            shutdown: shutdown.clone(),
            grace: options.grace,
            connections: Arc::new(Semaphore::new(per_thread)),
        };
        // The first thread takes the listener bound at start-up, the others bind their own.
        let socket = match first.take() {
            Some(socket) => Ok(socket),
            None => bind_shared(addr).and_then(|l| l.into_std()),
        };
        match socket.and_then(|socket| thread.start(socket)) {
            Ok(done) => running.push(done),
            Err(e) => tracing::error!(thread = index, error = %e, "cannot start a serving thread"),
        }
    }
    for done in running {
        // An error only means the thread ended without a word (a panic); it has ended.
        let _ = done.await;
    }
}

/// Binds a listening socket on `addr` that other sockets may share (`SO_REUSEPORT`), for
/// [`serve_on_threads`]. As with `TcpListener::bind`, the address is reusable right after a
/// restart (`SO_REUSEADDR`); a port held by a socket that does not share is an error.
pub fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// One of [`serve_on_threads`]'s threads, before it starts.
struct ServingThread<F> {
    index: usize,
    handle: F,
    shutdown: Shutdown,
    grace: Duration,
    connections: Arc<Semaphore>,
}

impl<F> ServingThread<F> {
    /// Starts the thread on `listener`; the receiver resolves (with an error: its sender is
    /// dropped) when the thread has finished.
    fn start<Fut, B>(
        self,
        listener: std::net::TcpListener,
    ) -> std::io::Result<oneshot::Receiver<()>>
    where
        F: Handler<Fut>,
        Fut: Answer<B>,
        B: ResponseBody,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (finished, done) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("wasmgate-serve-{}", self.index))
            .spawn(move || {
                let _finished = finished;
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            serve_with(
                                listener,
                                self.handle,
                                self.shutdown,
                                self.grace,
                                self.connections,
                            )
                            .await
                        }
                        Err(e) => tracing::error!(error = %e, "a serving thread cannot listen"),
                    }
                });
            })?;
        Ok(done)
    }
}

async fn serve_with<F, Fut, B>(
    listener: TcpListener,
    handle: F,
    shutdown: Shutdown,
    grace: Duration,
    connections: Arc<Semaphore>,
) where
    F: Handler<Fut>,
    Fut: Answer<B>,
    B: ResponseBody,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_CONNECTION_BUFFER);
    let graceful = GracefulShutdown::new();
    loop {
        // Take a connection slot before accepting: at the cap, clients queue in the backlog
        // instead of costing memory here.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.triggered() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.triggered() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let info = ConnInfo { remote, local };
        let handle = handle.clone();
        let service = service_fn(move |req| {
            let response = handle(req, info);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: closing the connections still open");
        }
    }
}
