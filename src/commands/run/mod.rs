//! `wasmgate run`: one request through a module file, exactly as the gateway would serve it,
//! for module authors to try a function before deploying it.
//!
//! It is the gateway's twin: the module's own `[modules.NAME]` settings and limits from
//! `--config`, the same key-value stores, and the same request pipeline as `serve` (`guest/pipeline.rs`): the same
//! CGI or wasi:http exchange by the file's header, the same body and output limits, the
//! same streaming, and the same compiled-artifact cache (`cache_dir`), so that trying a
//! file again loads it in milliseconds. Only the pool is missing: `run` runs one guest.
//! The process's stdin is
//! the request body, read only as the guest reads it, so a guest that never reads stdin
//! does not wait for its end; the response body goes to stdout as the guest writes it
//! ([`RunResponse::write_body`]). The exit status says how the guest ended
//! ([`RunError::exit_code`]): the guest's own code for a `proc_exit`, and codes from 126
//! up for what the gateway would have answered with an error.
//!
//! - [`stdin`]: the process's stdin as the request body; [`output`]: the response, and
//!   the exit status.

mod output;
mod stdin;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, HOST};
use hyper::body::Body;

pub use output::{RunError, RunResponse};
use stdin::ReaderBody;
pub use stdin::RunBody;

use crate::catalogue::file::{ReadLimits, read_module_file};
use crate::catalogue::{ArtifactCache, ServedModule};
use crate::config::Config;
use crate::guest::conn::ConnInfo;
use crate::guest::module::GuestModule;
use crate::guest::pipeline::{Gate, respond};
use crate::guest::streamed::Count;
use crate::kv::KvStores;
use crate::runtime::{AllocatorChoice, GuestRuntime};

/// The addresses a one-shot run pretends the request came from and went to.
const RUN_REMOTE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const RUN_LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The request to simulate.
pub struct RunRequest {
    pub method: String,
    /// The path after `/NAME` (the guest's `PATH_INFO`).
    pub path: String,
    pub query: String,
    /// Extra environment variables, on top of the module's own `env`.
    pub env: Vec<(String, String)>,
    pub body: RunBody,
}

/// Loads `file` and runs it once with `request`; returns the response it makes.
pub async fn run_once(
    file: &Path,
    mut config: Config,
    mut request: RunRequest,
) -> Result<RunResponse, RunError> {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".into());
    config.add_module_env(&name, std::mem::take(&mut request.env))?;
    let load_error = |error| RunError::Load {
        module: name.clone(),
        error,
    };
    let kv = config.kv.as_ref().map(KvStores::open).transpose()?;
    let kv = kv.map(Arc::new);
    let runtime = GuestRuntime::new(&config, AllocatorChoice::OnDemand)?;
    let limits = ReadLimits {
        within: None,
        max_bytes: config.max_module_bytes,
    };
    let bytes = read_module_file(file, limits).map_err(|e| load_error(e.into()))?;
    let cache =
        ArtifactCache::open_at(&config.cache_dir, runtime.engine(), config.cache_max_bytes)?
            .map(|(_, cache)| Arc::new(cache));
    let served = ServedModule::load(&runtime, &name, &bytes, &config, kv.as_ref(), cache)
        .map_err(|f| load_error(f.error))?;
    tracing::debug!(
        module = %name,
        source = %served.provenance,
        load_ms = served.took.as_secs_f64() * 1000.0,
        "module ready"
    );
    let module = served.guest;
    let request = http_request(&module, request)?;
    let conn = ConnInfo {
        remote: RUN_REMOTE,
        local: RUN_LOCAL,
        secure: false,
    };
    let count = Count::new(module.shared.metrics.clone(), Instant::now());
    let response = respond(module, request, conn, &Gate::unbounded(), count)
        .await
        .map_err(|(failure, _)| failure)?;
    let (head, body) = response.into_parts();
    Ok(RunResponse {
        status: head.status,
        headers: head.headers,
        body,
    })
}

/// The request `run` hands the pipeline: `/NAME/PATH?QUERY` to the gateway's address,
/// with stdin as its body.
fn http_request(
    module: &GuestModule,
    request: RunRequest,
) -> Result<http::Request<ReaderBody>, RunError> {
    let query = match request.query.as_str() {
        "" => String::new(),
        q => format!("?{q}"),
    };
    let uri = format!("/{}{}{query}", module.name, request.path);
    let body = ReaderBody::new(request.body);
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(uri)
        .header(HOST, RUN_LOCAL.to_string());
    if let Some(len) = body.len.filter(|_| !body.is_end_stream()) {
        builder = builder.header(CONTENT_LENGTH, len);
    }
    builder.body(body).map_err(|e| RunError::Request {
        module: module.name.to_string(),
        reason: e.to_string(),
    })
}
