//! The HTTP side: the accept loop shared by both listeners (and its serving threads, each
//! pinned to a core when there is one per core), how a connection is served (HTTP/1.1,
//! HTTP/2, TLS with certificates reloaded from disk), the public handler that routes
//! `/NAME/...` to a module, request bodies within their limits, the admin endpoints (and
//! the `Host` values they answer), and
//! the gateway's own short replies.

pub(crate) mod admin;
pub(crate) mod admin_host;
pub(crate) mod connection;
pub(crate) mod cores;
pub(crate) mod listener;
pub(crate) mod reply;
pub(crate) mod server;
pub(crate) mod status_page;
pub(crate) mod threads;
pub(crate) mod tls;
