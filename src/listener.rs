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
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

/// A client that has not sent its whole request head by then is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The request head may not be larger than this (431 otherwise).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
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

/// Serves `listener` with `handle` until `shutdown` triggers, then lets open connections
/// finish their requests for up to the grace period.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handle: F,
    shutdown: Shutdown,
    options: ListenOptions,
) where
    F: Fn(Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(options.max_connections));
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
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!("grace period over: closing the connections still open");
        }
    }
}
