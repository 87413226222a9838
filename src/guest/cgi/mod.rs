//! The CGI ABI: a WASI preview1 command module that reads the request from its
//! environment and stdin and writes the response to stdout (RFC 3875, over WASI).
//!
//! - [`exchange`]: the ABI's two conversions for the pipeline; [`run`]: one run of a
//!   guest, under its bounds;
//! - [`env`] and [`reserved`]: the request as environment variables;
//! - [`stdin`], [`stdout`], [`stderr`]: the body in, the response and the log out;
//! - [`response`]: stdout as an HTTP response;
//! - [`preview1`] and [`string_block`]: the gateway's own WASI functions for these guests.
//! - [`kv`]: the `wasmgate` key-value functions.

pub(crate) mod env;
pub(crate) mod exchange;
pub(crate) mod kv;
pub(crate) mod preview1;
pub(crate) mod reserved;
pub(crate) mod response;
pub(crate) mod run;
pub(crate) mod stderr;
pub(crate) mod stdin;
pub(crate) mod stdout;
pub(crate) mod string_block;
