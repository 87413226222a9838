//! A certificate chain and its private key, read from PEM files and checked against each
//! other before rustls serves them, with the certificate's expiry for the metric. A pair
//! that does not load is an error naming which file and why; nothing half-read is served.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("tls_cert: cannot read a PEM certificate chain: {0}")]
    Cert(String),
    #[error("tls_cert holds no PEM certificate")]
    NoCert,
    #[error("tls_key: cannot read a PEM private key: {0}")]
    Key(String),
    #[error("tls_key: {0}")]
    UnusableKey(rustls::Error),
    #[error("tls_key is not the key of the certificate in tls_cert ({0})")]
    Mismatch(rustls::Error),
}

/// A pair ready to serve.
pub(crate) struct Pair {
    pub(crate) key: Arc<CertifiedKey>,
    /// When the first (the leaf) certificate expires, in Unix seconds, if it parses as
    /// X.509 (rustls itself never reads the date).
    pub(crate) expires: Option<i64>,
}

/// Reads and checks the pair `files` names.
pub(crate) fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Pair, PairError> {
    let chain = read_chain(&files.cert)?;
    let der =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| PairError::Key(e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(PairError::UnusableKey)?;
    let expires = expiry(&chain[0]);
    let key = CertifiedKey::new(chain, signing);
    key.keys_match().map_err(PairError::Mismatch)?;
    Ok(Pair {
        key: Arc::new(key),
        expires,
    })
}

/// Every certificate in the file, the leaf first; at least one.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, PairError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| PairError::Cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(PairError::NoCert);
    }
    Ok(chain)
}

/// The certificate's `notAfter`, in Unix seconds.
fn expiry(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}
