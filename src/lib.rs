//! wasmgate: an HTTP gateway that runs WebAssembly functions, CGI-style or through
//! wasi:http.
//!
//! A request to `/NAME/...` runs `NAME.wasm` in a fresh instance. A WASI preview1 command
//! module gets the request through environment variables and stdin, and its stdout comes
//! back as the response; a wasi:http component is handed the request as a wasi:http
//! request and streams its response back. The folders are layers, lowest first, and a
//! request meets them from the top (`tests/it/layout.rs` holds every import to this
//! order):
//!
//! ```text
//! gateway, commands   serve ─ run ─ compile ─ push             (what the binary starts)
//! front               listener ─> server (route) ──┐           admin, status page
//! sources             OCI tags ─> loader            │
//! catalogue           watch ─> loader ─> compile ─> served ─> table ─> lookup
//! runtime             engine · epoch ticker · linkers                  │
//! config              schema · defaults · module settings              │
//! guest               pipeline::respond <──────────────────────────────┘
//!                       admit ─> body (limit, timeout) ─> Exchange ─> head or end ─> count
//!                       cgi::exchange (env · stdin · run · preview1 · stdout · response)
//!                       wasi_http::exchange (request · io · outbound)
//! metrics             every step records into its module's series; front::admin serves them
//! outcome, logging, shutdown
//! ```
//!
//! - `guest`: one request through a guest, for either ABI and for `serve` and `run` alike;
//! - `config`: the TOML file and flags, checked once;
//! - `runtime`: the one engine, its epoch ticker and the linkers, built in one place;
//! - `catalogue`: which version of each module is served, kept in step with the directory;
//! - `sources`: modules from OCI registries, followed by tag, into the same catalogue;
//! - `front`: the listeners, the public handler, the admin endpoints;
//! - `metrics`: the Prometheus series and the gateway's own histograms;
//! - `logging`: the log's writer, which escapes every control character of every event;
//! - `kv`: the key-value stores, embedded or Redis, that guests of both ABIs call;
//! - `gateway` (`serve`) and `commands` (`run`, `compile`, `push`, `kv`): what the binary
//!   starts.
//!
//! The public API is what the binary needs; [`testing`] opens the inside to the crate's
//! own tests, benches and fuzz targets, and is no API at all. Everything else is private.

mod catalogue;
mod commands;
mod config;
mod front;
mod gateway;
mod guest;
mod kv;
pub mod logging;
mod metrics;
mod outcome;
mod runtime;
mod shutdown;
mod sources;

pub use commands::compile::{PrecompileError, Precompiled, Precompiler};
pub use commands::compile_worker::compile_worker;
pub use commands::kv::{StoreAdmin, StoreAdminError};
pub use commands::new::{Language, NewError, new_project};
pub use commands::push::{PushError, push};
pub use commands::run::{RunBody, RunError, RunRequest, RunResponse, run_once};
pub use config::{
    CompileSettings, Config, ConfigError, Limits, ModuleSettings, Overrides, SlotResetChoice,
    WatchMode,
};
pub use gateway::{RunningGateway, StartError};
pub use kv::{KvError, KvOpenError, KvSettings};
pub use shutdown::signal;

/// The crate's inside, for its own tests, benches and fuzz targets: each piece of the
/// pipeline on its own, a module compiled without a gateway, the bare listeners. Not an
/// API: it changes whenever the inside does.
#[doc(hidden)]
pub mod testing {
    use std::sync::{Arc, LazyLock};

    pub use crate::catalogue::compile::Provenance;
    pub use crate::catalogue::failure::{LoadError, LoadFailure};
    pub use crate::catalogue::private_dir::CacheError;
    pub use crate::front::listener::{ListenOptions, serve};
    pub use crate::front::threads::serve_on_threads;
    pub use crate::guest::abi::Abi;
    pub use crate::guest::body::RequestBody;
    pub use crate::guest::bounds::GuestError;
    pub use crate::guest::cgi::env::{EnvError, Environment, RequestMeta, build_env};
    pub use crate::guest::cgi::preview1::{CGI_IMPORTS, Preview1};
    pub use crate::guest::cgi::response::{CgiResponse, OutputError, parse_output};
    pub use crate::guest::cgi::run::run_cgi;
    pub use crate::guest::cgi::stdin::Stdin;
    pub use crate::guest::conn::ConnInfo;
    pub use crate::guest::exchange::Failure;
    pub use crate::guest::module::GuestModule;
    pub use crate::guest::wasi_http::allowed::{AllowedHost, AllowedHostError};
    pub use crate::outcome::Outcome;
    pub use crate::runtime::{AllocatorChoice, GuestRuntime, RuntimeError};
    pub use crate::shutdown::Shutdown;

    use bytes::Bytes;
    use http_body_util::BodyExt;

    use crate::catalogue::ServedModule;
    use crate::config::Config;
    use crate::guest::pipeline::Gate;
    use crate::guest::streamed::Count;

    /// Compiles `bytes` as module `name` on `runtime`, with its settings from `config`, as
    /// the gateway would serve it (no cache, no metrics). Blocking.
    pub fn load(
        runtime: &GuestRuntime,
        name: &str,
        bytes: &[u8],
        config: &Config,
    ) -> Result<Arc<GuestModule>, LoadFailure> {
        ServedModule::load(runtime, name, bytes, config, None, None).map(|served| served.guest)
    }

    /// One request through the pipeline for `module`, as `run` serves it (no pool, no body
    /// timeout), with the response body collected within the output cap.
    pub async fn respond<B: RequestBody>(
        module: Arc<GuestModule>,
        request: http::Request<B>,
        conn: ConnInfo,
    ) -> Result<http::Response<Bytes>, Failure> {
        static GATE: LazyLock<Gate> = LazyLock::new(Gate::unbounded);
        let count = Count::new(module.shared.metrics.clone(), std::time::Instant::now());
        let response = crate::guest::pipeline::respond(module, request, conn, &GATE, count)
            .await
            .map_err(|(failure, _)| failure)?;
        let (head, body) = response.into_parts();
        let body = body.collect().await.map_err(|cut| Failure::Guest(cut.0))?;
        Ok(http::Response::from_parts(head, body.to_bytes()))
    }
}
