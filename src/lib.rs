//! wasmgate: an HTTP gateway that runs WebAssembly functions, CGI-style or through
//! wasi:http.
//!
//! A request to `/NAME/...` runs `NAME.wasm` in a fresh instance. A WASI preview1 command
//! module gets the request through environment variables and stdin, and its stdout comes
//! back as the response; a wasi:http component is handed the request as a wasi:http
//! request and streams its response back. The folders follow a request through the
//! pipeline:
//!
//! ```text
//! config ─> runtime ─────────────> (engine + epoch ticker + linkers, made once)
//!              │
//! catalogue:   watch ─> loader ─> file ─> compile (cache) ─> served ─> registry
//!                                                                         │
//! http:        listener ─> server (body) ──── registry.lookup ────────────┘
//!                              │
//! guest:                       ├─> cgi::exchange ─> invoke (store, bounds, linkers)
//!                              │    env · stdin · preview1 · stdout · response
//!                              └─> wasi_http::exchange (store, bounds, linkers)
//!                                   request · io · outbound · response
//! metrics:     every step above records into its module's series; http::admin serves them
//! ```
//!
//! - `config`: the TOML file and flags, checked once;
//! - `runtime`: the one engine, its epoch ticker and the linkers, built in one place;
//! - `catalogue`: which version of each module is served, kept in step with the directory;
//! - `sources`: modules from OCI registries, followed by tag, into the same catalogue;
//! - `http`: the listeners, the public handler, request bodies, the admin endpoints;
//! - `guest`: one request's instance, with one folder per guest ABI (`cgi`, `wasi_http`);
//! - `metrics`: the Prometheus series and the gateway's own histograms;
//! - `logging`: the log's writer, which escapes every control character of every event;
//! - `gateway` (`serve`) and `commands` (`run`, `compile`): what the binary starts.
//!
//! The public API is what the binary, the tests and the benches use; everything else is
//! private to the crate.

mod catalogue;
mod commands;
mod config;
mod gateway;
mod guest;
mod http;
pub mod logging;
mod metrics;
mod outcome;
mod runtime;
mod shutdown;
mod sources;

pub use catalogue::ServedModule;
pub use catalogue::abi::Abi;
pub use catalogue::compile::Source;
pub use catalogue::failure::{LoadError, LoadFailure};
pub use catalogue::private_dir::CacheError;
pub use commands::compile::{PrecompileError, Precompiled, Precompiler};
pub use commands::compile_worker::compile_worker;
pub use commands::push::{PushError, push};
pub use commands::run::{RunBody, RunError, RunRequest, RunResponse, run_once};
pub use config::{
    CompileSettings, Config, ConfigError, Limits, ModuleSettings, Overrides, SlotResetChoice,
    WatchMode,
};
pub use gateway::{RunningGateway, StartError};
pub use guest::bounds::InvokeError;
pub use guest::cgi::env::{EnvError, Environment, RequestMeta, build_env};
pub use guest::cgi::exchange::{CgiFailure, respond};
pub use guest::cgi::preview1::{CGI_IMPORTS, Preview1};
pub use guest::cgi::response::{CgiResponse, OutputError, parse_output};
pub use guest::cgi::stdin::{BodyStream, Stdin};
pub use guest::invoke::invoke;
pub use guest::wasi_http::allowed::{AllowedHost, AllowedHostError};
pub use guest::wasi_http::exchange::{HttpFailure, respond_whole};
pub use guest::wasi_http::request::RequestBody;
pub use http::listener::{ConnInfo, ListenOptions, serve};
pub use http::threads::serve_on_threads;
pub use outcome::Outcome;
pub use runtime::{AllocatorChoice, GuestRuntime, RuntimeError};
pub use shutdown::{Shutdown, signal};
