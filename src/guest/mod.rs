//! The guest side of a request: a fresh instance in a store of its own, bounded by fuel, a
//! deadline and memory and output caps, with one folder per guest ABI.
//!
//! - [`module`], [`settings`], [`abi`]: the module a guest runs, its limits and its ABI;
//! - [`conn`], [`headers`], [`body`]: the request as the guest sees it: the connection's
//!   facts, the headers it is not simply handed, its body within its limits;
//! - [`store`]: the store's state and the resource limiter;
//! - [`host_limits`]: the caps on what a guest can make the host hold;
//! - [`swap`]: what keeps a slot's swapped-out pages from reaching the next guest;
//! - [`bounds`]: the limits every run is held to, and how its end is named;
//! - [`deadline`]: the wall-clock deadline, enforced at epoch ticks;
//! - [`lazy_sleep`]: timers made only once a guest has had to wait;
//! - [`linkers`] and [`log`]: what a module is linked against, once, at load;
//! - [`pipeline`]: one request through a guest, for either ABI, `serve` and `run`, and
//!   [`exchange`]: what each ABI supplies to it;
//! - [`streamed`] and [`reply_body`]: a response body after its head was sent, for
//!   either ABI, and counting its request once;
//! - [`cgi`]: the CGI ABI (WASI preview1 command modules);
//! - [`wasi_http`]: the wasi:http ABI (components).

pub(crate) mod abi;
pub(crate) mod body;
pub(crate) mod bounds;
pub(crate) mod cgi;
pub(crate) mod conn;
pub(crate) mod deadline;
pub(crate) mod exchange;
pub(crate) mod headers;
pub(crate) mod host_limits;
pub(crate) mod lazy_sleep;
pub(crate) mod linkers;
pub(crate) mod log;
pub(crate) mod module;
pub(crate) mod pipeline;
pub(crate) mod reply_body;
pub(crate) mod settings;
pub(crate) mod store;
pub(crate) mod streamed;
pub(crate) mod swap;
pub(crate) mod wasi_http;
