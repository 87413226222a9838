//! The guest side of a request: a fresh instance in a store of its own, bounded by fuel, a
//! deadline and memory and output caps, with one folder per guest ABI.
//!
//! - [`store`]: the store's state and the resource limiter;
//! - [`deadline`]: the wall-clock deadline, enforced at epoch ticks;
//! - [`linkers`] and [`log`]: what a module is linked against, once, at load;
//! - [`invoke`]: one run of a module;
//! - [`cgi`]: the CGI ABI (WASI preview1 command modules).

pub(crate) mod cgi;
pub(crate) mod deadline;
pub(crate) mod invoke;
pub(crate) mod linkers;
pub(crate) mod log;
pub(crate) mod store;
