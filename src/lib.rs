//! wasmgate: an HTTP gateway that runs WebAssembly functions, CGI-style.
//!
//! A request to `/NAME/...` runs `NAME.wasm`, a WASI preview1 command module, in a fresh
//! instance: the request goes in through environment variables and stdin, and stdout comes
//! back as the response. The pipeline, one module per step:
//!
//! - [`config`]: the TOML file and flags;
//! - [`engine`]: the one wasmtime engine (pooling allocator, fuel, epochs) and its ticker;
//! - [`compile`]: module file → `InstancePre`, checked ahead of any request, through the
//!   on-disk artifact [`cache`];
//! - [`watch`], [`loader`] and [`registry`]: which version of each module is served, kept
//!   in step with the modules directory;
//! - [`server`], [`body`], [`cgi`], [`invoke`], [`stdio`], [`host`]: one request, end to end,
//!   with [`preview1`] serving WASI to the modules that need only stdio and environment;
//! - [`admin`] and [`metrics`]: health, readiness, the module list and Prometheus;
//! - [`gateway`]: starts and stops it all; [`run`]: one invocation from the command line;
//!   [`precompile`]: fills the cache and exits.

pub mod admin;
pub mod body;
pub mod cache;
pub mod cgi;
pub mod compile;
pub mod config;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod histogram;
pub mod host;
pub mod invoke;
pub mod listener;
pub mod loader;
pub mod metrics;
pub mod name;
pub mod outcome;
pub mod precompile;
pub mod preview1;
pub mod registry;
pub mod run;
pub mod server;
pub mod shutdown;
pub mod stdio;
pub mod watch;
