//! Headers a guest is not simply handed, and one it is always given: the hop-by-hop
//! headers of RFC 9110 7.6.1, which describe one connection, not the message (the gateway
//! neither hands a client's to a guest nor takes a guest's for its own connection to the
//! client); the headers that carry credentials, which reach a guest only when its config
//! says so; and `X-Content-Type-Options: nosniff` on every guest response, whatever its
//! ABI, since every function shares the gateway's origin and a browser must not guess
//! HTML out of a plain body.

use http::header::X_CONTENT_TYPE_OPTIONS;
use http::{HeaderMap, HeaderName, HeaderValue};

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

/// Headers that carry credentials: passed only when the module's config says so.
const CREDENTIALS: [&str; 2] = ["authorization", "proxy-authorization"];

/// Whether `name` (lowercase, as `HeaderName`s are) is a hop-by-hop header.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Whether `name` (lowercase) carries credentials.
pub(crate) fn is_credential(name: &str) -> bool {
    CREDENTIALS.contains(&name)
}

/// Adds `X-Content-Type-Options: nosniff` to a guest's response headers, unless the guest
/// set that header itself.
pub(crate) fn forbid_sniffing(headers: &mut HeaderMap) {
    headers
        .entry(X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
}
