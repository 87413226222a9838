//! The CGI ABI: a WASI preview1 command module that reads the request from its
//! environment and stdin and writes the response to stdout (RFC 3875, over WASI).
//!
//! - [`exchange`]: one request end to end, shared by `serve` and `run`;
//! - [`env`] and [`reserved`]: the request as environment variables;
//! - [`stdin`], [`stdio`]: the body in, stdout and stderr out;
//! - [`response`]: stdout as an HTTP response;
//! - [`preview1`] and [`string_block`]: the gateway's own WASI functions for these guests.

pub(crate) mod env;
pub(crate) mod exchange;
pub(crate) mod preview1;
pub(crate) mod reserved;
pub(crate) mod response;
pub(crate) mod stdin;
pub(crate) mod stdio;
pub(crate) mod string_block;
