//! The wasi:http ABI: a component exporting `wasi:http/incoming-handler@0.2` (the
//! `wasi:http/proxy` world) or `wasi:http/handler@0.3` (the `wasi:http/service` world) is
//! handed the request as a wasi:http request and streams its response back, through
//! wasmtime-wasi-http, under the same limits as a CGI module.
//!
//! - [`allowed`]: `allowed_outbound_hosts` entries, parsed and matched;
//! - [`outbound`]: the hook that denies, sends and counts outgoing requests;
//! - [`io`]: the store's WASI and HTTP contexts;
//! - [`keyvalue`]: `wasi:keyvalue` over the gateway's key-value stores;
//! - [`request`]: the request as the guest sees it (headers filtered, body capped);
//! - [`exchange`]: one request, in a task of its own once its head is set (0.2);
//! - [`service`]: the same for a 0.3 component, run in its store's event loop;
//! - [`tracked`]: a 0.3 response body, which tells that loop when it is over.

pub(crate) mod allowed;
pub(crate) mod exchange;
pub(crate) mod io;
pub(crate) mod keyvalue;
pub(crate) mod outbound;
pub(crate) mod request;
pub(crate) mod service;
pub(crate) mod tracked;
