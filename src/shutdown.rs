//! The shutdown signal shared by the listeners, readiness and the binary.
//!
//! Triggering it turns `/readyz` to 503 (so load balancers stop sending traffic), makes the
//! listeners stop accepting, and lets connections finish their requests in flight within
//! the grace period.

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable handle on one shutdown.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown; idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has started: the gateway is draining.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has started.
    pub async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|&down| down).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received: draining"),
        _ = int.recv() => tracing::info!("SIGINT received: draining"),
    }
    Ok(())
}
