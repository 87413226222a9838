//! Serving threads: one acceptor hands each new connection to one of N threads, each with a
//! single-threaded runtime of its own, which serves it (and runs its guests) to the end.
//!
//! Against one multi-threaded runtime (`serve_threads = 0`): no worker parks and wakes
//! another around each request, and a connection's guest runs on the core that read its
//! request; for a small function that work costs more than the function, and one runtime
//! per core served 17% more hello requests (BENCHMARKS.md, issue 18). The price is that a
//! connection stays on its thread: guests still yield at every epoch tick, so one busy
//! guest delays but cannot stall the others on its thread, but a thread the kernel takes
//! off its core holds up its connections until it is back.
//!
//! Why one acceptor rather than a socket per thread (`SO_REUSEPORT`): the port stays the
//! gateway's alone (a second process on it is an error, not a silent share of the
//! traffic); `max_connections` stays one cap for the listener, not a share per socket that
//! a connection hashed to a full one waits on while another has room; and each connection
//! goes to the thread with the fewest open, where the kernel's hash of the client's port
//! can leave one thread idle. The handover costs a wake-up per connection, not per request.
//!
//! With one thread per core, each thread is pinned to its core ([`cores`](super::cores)).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::connection::{Answer, Handler, ResponseBody, Speaking};
use super::cores::{self, CoreId};
use super::listener::{Accepted, Acceptor, Connections, Counted, ListenOptions, serve, serve_with};
use crate::shutdown::Shutdown;

/// [`super::listener::serve`] on `threads` threads of its own: connections are accepted
/// here, on the caller's runtime, and each is handed to the thread with the fewest open.
/// With `pin`, threads that match the process's cores one for one are pinned to them.
/// Returns once every thread has drained. If not one thread can start (the process is out
/// of threads or memory), the caller's runtime serves instead of accepting connections
/// that nothing would serve.
pub async fn serve_on_threads<F, Fut, B>(
    listener: TcpListener,
    threads: usize,
    pin: bool,
    handle: F,
    shutdown: Shutdown,
    options: ListenOptions,
) where
    F: Handler<Fut>,
    Fut: Answer<B>,
    B: ResponseBody,
{
    let mut lanes = Vec::with_capacity(threads);
    let mut running = Vec::with_capacity(threads);
    let placement = cores::placement(threads.max(1), pin);
    let pinned: Vec<usize> = placement.iter().flatten().map(|core| core.id).collect();
    tracing::info!(threads = placement.len(), ?pinned, "serving threads");
    for (index, core) in placement.into_iter().enumerate() {
        let (lane, handed) = mpsc::unbounded_channel();
        let thread = ServingThread {
            index,
            core,
            handle: handle.clone(),
            shutdown: shutdown.clone(),
            speaking: options.speaking.clone(),
            grace: options.grace,
        };
        match thread.start(Connections::Handed(handed)) {
            Ok(done) => {
                running.push(done);
                lanes.push(Lane {
                    to: lane,
                    open: Arc::default(),
                });
            }
            Err(e) => tracing::error!(thread = index, error = %e, "cannot start a serving thread"),
        }
    }
    if lanes.is_empty() {
        tracing::error!("no serving thread could start: serving on the main runtime instead");
        return serve(listener, handle, shutdown, options).await;
    }
    let acceptor = Acceptor::new(listener, options.max_connections);
    while let Some(accepted) = acceptor.next(&shutdown).await {
        hand_over(&lanes, accepted);
    }
    for accepted in acceptor.drain_queue().await {
        hand_over(&lanes, accepted);
    }
    // The threads see their lanes close once they have taken every connection, and drain.
    drop(lanes);
    for done in running {
        // An error only means the thread ended without a word (a panic); it has ended.
        let _ = done.await;
    }
}

/// Gives `accepted` to the lane with the fewest open connections; with no lane left, the
/// connection is closed.
fn hand_over(lanes: &[Lane], accepted: Accepted<tokio::net::TcpStream>) {
    let Some(lane) = lanes
        .iter()
        .filter(|lane| !lane.to.is_closed())
        .min_by_key(|lane| lane.open.load(Ordering::Relaxed))
    else {
        tracing::error!("no serving thread is left to take a connection");
        return;
    };
    let stream = match accepted.stream.into_std() {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(error = %e, "an accepted connection cannot be handed over");
            return;
        }
    };
    let handed = Accepted {
        stream,
        remote: accepted.remote,
        held: accepted.held.counted(Counted::new(&lane.open)),
    };
    if lane.to.send(handed).is_err() {
        tracing::warn!("a serving thread ended before it took its connection");
    }
}

/// The way to one serving thread, and how many connections it has open.
struct Lane {
    to: mpsc::UnboundedSender<Accepted<std::net::TcpStream>>,
    open: Arc<AtomicUsize>,
}

/// One of [`serve_on_threads`]'s threads, before it starts.
struct ServingThread<F> {
    index: usize,
    /// The core it is pinned to, if any.
    core: Option<CoreId>,
    handle: F,
    shutdown: Shutdown,
    speaking: Arc<Speaking>,
    grace: Duration,
}

impl<F> ServingThread<F> {
    /// Starts the thread serving what `source` gives; the receiver resolves (with an error:
    /// its sender is dropped) when the thread has finished.
    fn start<Fut, B>(self, source: Connections) -> std::io::Result<oneshot::Receiver<()>>
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
                cores::pin_current(self.core, self.index);
                let serving = serve_with(
                    source,
                    self.handle,
                    self.shutdown,
                    self.speaking,
                    self.grace,
                );
                runtime.block_on(serving);
            })?;
        Ok(done)
    }
}
