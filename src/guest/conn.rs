//! The facts of the connection a request came on, as a guest may see them (CGI's
//! `REMOTE_ADDR`, `SERVER_PORT` and `HTTPS`, a component's authority and scheme).

use std::net::SocketAddr;

/// The two ends of a connection, and whether it is encrypted.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The request came over TLS.
    pub secure: bool,
}
