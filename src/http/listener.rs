//! The accept loop shared by the public and the admin listener: HTTP/1.1 with keep-alive on
//! hyper, bounded header reads, and a graceful drain when shutdown is triggered.
//!
//! Requests with more than 100 headers get a 431 from hyper's default, which keeps the
//! header array on the stack (an explicit `max_headers` would move it to the heap).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

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
    let source = Connections::Listener(Acceptor::new(listener, options.max_connections));
    serve_with(source, handle, shutdown, options.grace).await;
}

/// A connection ready to be served, and what it holds until it ends.
pub(crate) struct Accepted<S> {
    pub(crate) stream: S,
    pub(crate) remote: SocketAddr,
    /// Its connection slot (and, when handed to a serving thread, its place in that
    /// thread's count), given back when the connection ends.
    pub(crate) held: Held,
}

/// What an open connection holds, released when it is dropped.
pub(crate) struct Held {
    _slot: OwnedSemaphorePermit,
    _count: Option<Counted>,
}

/// Accepts connections on a listener, one connection slot at a time: at the cap, clients
/// queue in the kernel's backlog instead of costing memory here.
pub(crate) struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, max_connections: usize) -> Acceptor {
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// The next connection, or `None` once `shutdown` has triggered.
    pub(crate) async fn next(&self, shutdown: &Shutdown) -> Option<Accepted<TcpStream>> {
        let slot = tokio::select! {
            slot = self.slots.clone().acquire_owned() => slot.ok()?,
            () = shutdown.triggered() => return None,
        };
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown.triggered() => return None,
            };
            match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let held = Held {
                        _slot: slot,
                        _count: None,
                    };
                    return Some(Accepted {
                        stream,
                        remote,
                        held,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

impl Held {
    /// The same hold, also counted against a serving thread until the connection ends.
    pub(crate) fn counted(self, count: Counted) -> Held {
        Held {
            _slot: self._slot,
            _count: Some(count),
        }
    }
}

/// One open connection in a count (a serving thread's), taken out when dropped.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub(crate) fn new(open: &Arc<AtomicUsize>) -> Counted {
        open.fetch_add(1, Ordering::Relaxed);
        Counted(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a serving loop takes its connections from.
pub(crate) enum Connections {
    /// A listener of its own.
    Listener(Acceptor),
    /// Connections accepted elsewhere and handed over (to a serving thread).
    Handed(mpsc::UnboundedReceiver<Accepted<std::net::TcpStream>>),
}

impl Connections {
    /// The next connection, registered with this runtime, or `None` once `shutdown` has
    /// triggered or no more can come.
    async fn next(&mut self, shutdown: &Shutdown) -> Option<Accepted<TcpStream>> {
        let handed = match self {
            Connections::Listener(acceptor) => return acceptor.next(shutdown).await,
            Connections::Handed(handed) => handed,
        };
        loop {
            let accepted = tokio::select! {
                accepted = handed.recv() => accepted?,
                () = shutdown.triggered() => return None,
            };
            match TcpStream::from_std(accepted.stream) {
                Ok(stream) => {
                    return Some(Accepted {
                        stream,
                        remote: accepted.remote,
                        held: accepted.held,
                    });
                }
                Err(e) => tracing::warn!(error = %e, "a handed connection cannot be served"),
            }
        }
    }
}

/// Serves the connections `source` gives with `handle` until `shutdown` triggers, then
/// lets open connections finish their requests for up to `grace`.
pub(crate) async fn serve_with<F, Fut, B>(
    mut source: Connections,
    handle: F,
    shutdown: Shutdown,
    grace: Duration,
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
    while let Some(Accepted {
        stream,
        remote,
        held,
    }) = source.next(&shutdown).await
    {
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
            let _held = held;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
        });
    }
    drop(source);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: closing the connections still open");
        }
    }
}
