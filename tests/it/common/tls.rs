//! TLS for the protocol tests: certificates made by rcgen, written where a config names
//! them, and a rustls client that reports which certificate and protocol it got (it
//! trusts whatever it is shown, as `curl -k` does: the tests compare the certificate).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM.
pub struct Pair {
    pub cert: String,
    pub key: String,
    pub der: Vec<u8>,
    /// Its `notAfter`, in Unix seconds.
    pub expires: i64,
}

impl Pair {
    /// A pair whose subject is `name`, valid until the start of `year`.
    pub fn new(name: &str, year: i32) -> Pair {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
            expires: params.not_after.unix_timestamp(),
        }
    }
}

/// Where a gateway's certificate and key live, and the config lines that name them.
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    pub fn config(&self) -> String {
        format!("tls_cert = {:?}\ntls_key = {:?}\n", self.cert, self.key)
    }

    /// Replaces both files (each by a rename, the key first, as renewals do).
    pub fn install(&self, pair: &Pair) {
        replace(&self.key, pair.key.as_bytes());
        replace(&self.cert, pair.cert.as_bytes());
    }
}

/// Replaces `path` with `bytes` at once, by renaming a written file over it.
pub fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A TLS connection, the certificate the server showed and the protocol ALPN chose.
pub struct Connected {
    pub stream: TlsStream<TcpStream>,
    pub cert: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
}

/// Shakes hands with `addr`, offering `alpn`.
pub async fn connect(addr: SocketAddr, alpn: &[&[u8]]) -> std::io::Result<Connected> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(TrustAnything(provider.signature_verification_algorithms));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let (_, session) = stream.get_ref();
    let cert = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let alpn = session.alpn_protocol().map(|p| p.to_vec());
    Ok(Connected { stream, cert, alpn })
}

/// Accepts any certificate, checking only that the handshake is signed by its key.
#[derive(Debug)]
struct TrustAnything(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
