//! Certificates that renew themselves: the files are looked at twice a second, and a pair
//! whose files changed and then stayed still for one look is loaded and served to new
//! connections; connections already open keep the certificate they shook hands with.
//!
//! Why polling rather than inotify: cert-manager and Kubernetes replace a Secret volume's
//! files by swapping a symlinked directory, certbot by re-pointing symlinks, other tools by
//! renaming or writing in place; `stat` through the path sees all of them, at the cost of
//! two system calls each half second. Waiting for the files to stay still for one look
//! means a renewal that writes the key and then the certificate is loaded once, whole,
//! rather than refused half-way as a key that does not match its certificate.
//!
//! A pair that does not load (garbage, a key that is not the certificate's, a file
//! deleted) leaves the pair in use serving, is logged once, and counts as
//! `wasmgate_tls_reloads_total{result="error"}`; the same files are not tried again until
//! they change once more.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::pair::{self, Pair};
use crate::config::TlsFiles;
use crate::metrics::{Metrics, TlsReload};
use crate::shutdown::Shutdown;

/// How often the files are looked at.
const LOOK_INTERVAL: Duration = Duration::from_millis(500);

/// The pair new handshakes are answered with.
#[derive(Debug)]
pub(crate) struct Served(ArcSwap<CertifiedKey>);

impl Served {
    pub(crate) fn new(key: Arc<CertifiedKey>) -> Served {
        Served(ArcSwap::new(key))
    }
}

impl ResolvesServerCert for Served {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// What the files looked like: enough to notice any way of replacing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    device: u64,
    inode: u64,
    len: u64,
    modified_ns: i128,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            device: meta.dev(),
            inode: meta.ino(),
            len: meta.len(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// Both files' stamps; `None` for one that cannot be read.
pub(crate) type Stamps = [Option<Stamp>; 2];

/// Watches a pair's files and swaps what [`Served`] answers with.
pub(crate) struct Reloader {
    pub(crate) files: TlsFiles,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) served: Arc<Served>,
    pub(crate) metrics: Metrics,
}

impl Reloader {
    /// How `files` look now.
    pub(crate) fn look(files: &TlsFiles) -> Stamps {
        [&files.cert, &files.key].map(|path| std::fs::metadata(path).ok().map(|m| Stamp::of(&m)))
    }

    /// Looks at the files until `shutdown`, loading each new pair once it stands still.
    /// `loaded` is how they looked when the pair in use was read.
    pub(crate) async fn run(self, loaded: Stamps, shutdown: Shutdown) {
        let (mut tried, mut seen) = (loaded, loaded);
        loop {
            tokio::select! {
                () = tokio::time::sleep(LOOK_INTERVAL) => {}
                () = shutdown.triggered() => return,
            }
            let now = Reloader::look(&self.files);
            if now == seen && now != tried {
                tried = now;
                self.reload();
            }
            seen = now;
        }
    }

    /// Loads the files; serves the new pair if it loads, keeps the old one otherwise.
    fn reload(&self) {
        match pair::load(&self.files, &self.provider) {
            Ok(Pair { key, expires }) => {
                self.served.0.store(key);
                self.metrics.tls_pair(Some(TlsReload::Ok), expires);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    expires,
                    "TLS certificate reloaded: new connections get the new one"
                );
            }
            Err(e) => {
                self.metrics.tls_pair(Some(TlsReload::Error), None);
                tracing::error!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    "TLS certificate not reloaded, the previous one stays in use: {e}"
                );
            }
        }
    }
}
