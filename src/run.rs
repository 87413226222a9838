//! `wasmgate run`: one invocation of a module file, the way the gateway would run it, for
//! module authors to try a function before deploying it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::cgi::{self, CgiResponse, RequestMeta};
use crate::compile::Compiler;
use crate::config::Config;
use crate::engine::{AllocatorChoice, EpochTicker, GatewayEngine};
use crate::error::{EngineError, LoadError};
use crate::host;
use crate::invoke::{InvokeError, invoke};

/// The addresses a one-shot run pretends the request came from and went to.
const RUN_REMOTE: &str = "127.0.0.1:0";
const RUN_LOCAL: &str = "127.0.0.1:8080";

/// The request to simulate.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub method: String,
    /// The path after `/NAME` (the guest's `PATH_INFO`).
    pub path: String,
    pub query: String,
    /// Extra environment variables, as if from the module's config.
    pub env: Vec<(String, String)>,
    pub body: Bytes,
}

/// Why a one-shot run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("module '{module}': {error}")]
    Load { module: String, error: LoadError },
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    #[error("module '{module}': {reason}")]
    Request { module: String, reason: String },
}

/// Loads `file` and runs it once with `request`; returns the response it made.
pub async fn run_once(
    file: &Path,
    config: Config,
    request: RunRequest,
) -> Result<CgiResponse, RunError> {
    let module_name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".into());
    let mut config = config;
    config
        .modules
        .entry(module_name.clone())
        .or_default()
        .env
        .extend(request.env.clone());
    if let Some(settings) = config.modules.get_mut(&module_name) {
        settings.limits = config.limits;
    }
    let engine = GatewayEngine::new(&config, AllocatorChoice::OnDemand)?;
    let _ticker = EpochTicker::start(&engine.engine).map_err(|e| EngineError(e.to_string()))?;
    let linkers = host::Linkers::new(&engine.engine).map_err(|e| EngineError(format!("{e:#}")))?;
    let compiler = Compiler::new(engine.engine.clone(), linkers, Arc::new(config));
    let module = compiler
        .load_file(&module_name, file)
        .map_err(|f| RunError::Load {
            module: module_name.clone(),
            error: f.error,
        })?;
    let request_error = |reason: String| RunError::Request {
        module: module_name.clone(),
        reason,
    };
    let headers = HeaderMap::new();
    let path = format!("/{module_name}{}", request.path);
    let meta = RequestMeta {
        module: &module_name,
        method: &request.method,
        path: &path,
        path_info: &request.path,
        query: &request.query,
        headers: &headers,
        remote: parse_addr(RUN_REMOTE),
        local: parse_addr(RUN_LOCAL),
        protocol: "HTTP/1.1",
        body_len: request.body.len(),
    };
    let env = cgi::build_env(&meta, &module.settings).map_err(|e| request_error(e.to_string()))?;
    let run = invoke(&module, env, request.body).await?;
    cgi::parse_output(run.stdout).map_err(|e| request_error(e.to_string()))
}

fn parse_addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}
