//! The hop-by-hop headers of RFC 9110 7.6.1: they describe one connection, not the
//! message, so the gateway neither hands a client's to a guest nor takes a guest's for
//! its own connection to the client.

use http::HeaderName;

/// Headers about the connection, never the message's own.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` (lowercase, as `HeaderName`s are) is a hop-by-hop header.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}
