//! The facts of the connection a request came on, as a guest may see them (CGI's
//! `REMOTE_ADDR` and `SERVER_PORT`, a component's authority).

use std::net::SocketAddr;

/// The two ends of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}
