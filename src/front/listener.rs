//! The accept loop shared by the public and the admin listener, and its graceful drain when
//! shutdown is triggered; each connection is then served as `connection.rs` says (HTTP/1.1
//! with keep-alive, HTTP/2, TLS).
//!
//! A drain loses nothing that reached the gateway (issue 30: a rolling restart behind
//! nginx, which opens a connection per request, failed 6–25% of requests). Closing a
//! listener resets the connections still in the kernel's accept queue, so the queue is
//! emptied first ([`Acceptor::drain_queue`]) and those connections are served like the
//! rest; and so that none completes its handshake between the last accept and the close,
//! a socket filter first drops new connection attempts (a bare SYN), letting handshakes
//! already under way finish into the queue. A client whose SYN was dropped sends it again
//! a second later, finds the port closed, and its load balancer tries another replica:
//! its request never reached this one. And a connection whose request has not been read
//! yet looks idle, which hyper's graceful shutdown closes at once; so a connection that
//! has not sent its first request when the drain starts is given a moment
//! (`connection.rs`'s `FIRST_REQUEST_WAIT`) to send it, and that request is answered (with `Connection: close`). A connection
//! between two keep-alive requests is closed, and one in the middle of a request is
//! closed after its response; an HTTP/2 connection gets GOAWAY, and its open streams
//! finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustix::net::SocketFlags;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::connection::{Answer, ConnectionError, Handler, ResponseBody, Speaking};
pub use crate::guest::conn::ConnInfo;
use crate::shutdown::Shutdown;

/// How long to wait before accepting again after an accept error (such as EMFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long handshakes under way when a drain starts have to complete into the accept
/// queue (a round trip to a client in the same network, many times over).
const HANDSHAKE_SETTLE: Duration = Duration::from_millis(50);
/// A classic BPF program for a TCP socket (it sees the TCP header first) that drops a
/// bare SYN (flags byte 13, SYN set without ACK) and lets every other segment through.
const DROP_NEW_CONNECTIONS: [(u16, u8, u8, u32); 5] = [
    (0x30, 0, 0, 13),          // ldb [13]: the flags
    (0x54, 0, 0, 0x12),        // and #(SYN | ACK)
    (0x15, 0, 1, 0x02),        // jeq #SYN: to the drop, else to the pass
    (0x06, 0, 0, 0),           // ret #0: dropped
    (0x06, 0, 0, 0xffff_ffff), // ret: the whole segment passes
];

/// How a listener treats its connections.
#[derive(Clone)]
pub struct ListenOptions {
    /// Connections served at once; beyond that, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// After shutdown, how long open connections may take to finish their requests.
    pub grace: Duration,
    /// The protocols its connections speak.
    pub(crate) speaking: Arc<Speaking>,
}

impl ListenOptions {
    /// Cleartext HTTP/1.1, and HTTP/2 too with `http2_max_streams` streams per connection.
    pub fn new(
        max_connections: usize,
        grace: Duration,
        http2_max_streams: Option<u32>,
    ) -> ListenOptions {
        let speaking = Speaking::new(http2_max_streams, None);
        ListenOptions::speaking(max_connections, grace, speaking)
    }

    /// Connections that speak as `speaking` says (over TLS, say).
    pub(crate) fn speaking(
        max_connections: usize,
        grace: Duration,
        speaking: Speaking,
    ) -> ListenOptions {
        ListenOptions {
            max_connections,
            grace,
            speaking: Arc::new(speaking),
        }
    }
}

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
    serve_with(source, handle, shutdown, options.speaking, options.grace).await;
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
    /// Its connection slot; none for a connection taken from the accept queue at shutdown.
    _slot: Option<OwnedSemaphorePermit>,
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
                        _slot: Some(slot),
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

impl Acceptor {
    /// The connections in the kernel's accept queue, and those whose handshake was under
    /// way, for a drain to serve: closing the listener would reset them. New connection
    /// attempts are dropped from now on. They are open already, so they are served beyond
    /// `max_connections`.
    pub(crate) async fn drain_queue(&self) -> Vec<Accepted<TcpStream>> {
        let filter =
            DROP_NEW_CONNECTIONS.map(|(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k));
        if let Err(e) = socket2::SockRef::from(&self.listener).attach_filter(&filter) {
            tracing::warn!(error = %e, "cannot stop new connections before the drain; some may be reset");
        }
        let mut drained = self.take_queued();
        tokio::time::sleep(HANDSHAKE_SETTLE).await;
        drained.extend(self.take_queued());
        if !drained.is_empty() {
            tracing::info!(
                connections = drained.len(),
                "draining: served the connections waiting in the accept queue"
            );
        }
        drained
    }

    /// The connections in the accept queue now, without waiting.
    fn take_queued(&self) -> Vec<Accepted<TcpStream>> {
        let mut drained = Vec::new();
        loop {
            let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
            let fd = match rustix::net::accept_with(&self.listener, flags) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::INTR) => continue,
                // EAGAIN: the queue is empty (anything else: nothing more to take).
                Err(_) => break,
            };
            let stream = std::net::TcpStream::from(fd);
            let (Ok(remote), Ok(stream)) = (stream.peer_addr(), TcpStream::from_std(stream)) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let held = Held {
                _slot: None,
                _count: None,
            };
            drained.push(Accepted {
                stream,
                remote,
                held,
            });
        }
        drained
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
    /// The next connection, registered with this runtime, or `None` once no more can
    /// come: a listener stops at shutdown, handed connections when the acceptor stops
    /// handing them (after it has drained its queue).
    async fn next(&mut self, shutdown: &Shutdown) -> Option<Accepted<TcpStream>> {
        let handed = match self {
            Connections::Listener(acceptor) => return acceptor.next(shutdown).await,
            Connections::Handed(handed) => handed,
        };
        loop {
            let accepted = handed.recv().await?;
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

    /// What is left to serve once `next` has ended: a listener's accept queue.
    async fn drain(&self) -> Vec<Accepted<TcpStream>> {
        match self {
            Connections::Listener(acceptor) => acceptor.drain_queue().await,
            Connections::Handed(_) => Vec::new(),
        }
    }
}

/// Serves the connections `source` gives with `handle`, speaking as `speaking` says,
/// until `shutdown` triggers, then lets open connections finish their requests for up to
/// `grace`.
pub(crate) async fn serve_with<F, Fut, B>(
    mut source: Connections,
    handle: F,
    shutdown: Shutdown,
    speaking: Arc<Speaking>,
    grace: Duration,
) where
    F: Handler<Fut>,
    Fut: Answer<B>,
    B: ResponseBody,
{
    // Each connection holds a sender; the drain is over when they are all gone.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let serve = |accepted| serve_one(&speaking, accepted, handle.clone(), &shutdown, &open);
    while let Some(accepted) = source.next(&shutdown).await {
        serve(accepted);
    }
    source.drain().await.into_iter().for_each(serve);
    drop(source);
    drop(open);
    tokio::select! {
        _ = all_closed.recv() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: closing the connections still open");
        }
    }
}

/// Serves one connection in a task of its own until it ends.
fn serve_one<F, Fut, B>(
    speaking: &Arc<Speaking>,
    accepted: Accepted<TcpStream>,
    handle: F,
    shutdown: &Shutdown,
    open: &mpsc::Sender<()>,
) where
    F: Handler<Fut>,
    Fut: Answer<B>,
    B: ResponseBody,
{
    let Accepted {
        stream,
        remote,
        held,
    } = accepted;
    let (speaking, shutdown, open) = (speaking.clone(), shutdown.clone(), open.clone());
    tokio::spawn(async move {
        let _held = (held, open);
        match speaking.serve(stream, remote, handle, &shutdown).await {
            Ok(()) => {}
            Err(e @ ConnectionError::Tls(_)) if e.is_not_tls() => {
                tracing::warn!(%remote, "closed a connection that does not speak TLS: {e}");
            }
            Err(e) => tracing::debug!(error = %e, %remote, "connection ended with an error"),
        }
    });
}
