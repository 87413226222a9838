//! TLS on the public listener, through rustls with the `ring` provider: TLS 1.3 and 1.2,
//! `h2` then `http/1.1` offered by ALPN, session resumption by tickets, and a certificate
//! that is replaced on disk served to new connections without a restart
//! ([`reload`]). The admin listener stays cleartext: it listens on loopback by default.
//!
//! The handshake runs in the connection's own task, under the same bound as reading a
//! request head, so a client that never finishes it holds nothing but its slot until then.

mod pair;
mod reload;

use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::task::TaskTracker;

pub use pair::PairError;
use reload::{Reloader, Served};

use crate::config::TlsFiles;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// The ALPN name of HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";
/// Sessions remembered for TLS 1.2 clients that resume by session ID (TLS 1.3 clients
/// resume by ticket, which costs the server no memory).
const SESSION_CACHE: usize = 4096;

/// Why TLS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pair(#[from] PairError),
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
}

/// What accepts TLS connections, with the pair in use now.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
}

/// A connection once its handshake is done.
pub(crate) struct Accepted {
    pub(crate) stream: TlsStream<TcpStream>,
    /// Whether the client chose HTTP/2 by ALPN.
    pub(crate) h2: bool,
}

impl Tls {
    /// Loads the pair `files` names (an error now if it does not load), and starts watching
    /// the files for a new one until `shutdown`.
    pub(crate) fn start(
        files: &TlsFiles,
        metrics: &Metrics,
        shutdown: &Shutdown,
        tasks: &TaskTracker,
    ) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth();
        let loaded = Reloader::look(files);
        let pair = pair::load(files, &provider)?;
        metrics.tls_pair(None, pair.expires);
        let served = Arc::new(Served::new(pair.key));
        let mut config = config.with_cert_resolver(served.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Setup)?;
        let reloader = Reloader {
            files: files.clone(),
            provider,
            served,
            metrics: metrics.clone(),
        };
        tasks.spawn(reloader.run(loaded, shutdown.clone()));
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Shakes hands with a client on `stream`.
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<Accepted> {
        let stream = self.acceptor.accept(stream).await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
        Ok(Accepted { stream, h2 })
    }
}
