//! One CGI exchange, the same for `serve` and `run`: the request becomes the guest's
//! environment, the guest runs, and its stdout becomes the response. Whatever goes wrong on
//! the way is a [`CgiFailure`] that names the module and the reason, with the outcome it
//! counts as.

use bytes::Bytes;

use super::env::{EnvError, RequestMeta, build_env};
use super::response::{CgiResponse, OutputError, parse_output};
use super::stdin::Stdin;
use crate::catalogue::ServedModule;
use crate::guest::bounds::InvokeError;
use crate::guest::invoke::invoke;
use crate::outcome::Outcome;

/// Why an exchange produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CgiFailure {
    /// The request cannot be given to a guest.
    #[error("module '{module}': {error}")]
    Request { module: String, error: EnvError },
    /// The guest did not finish well.
    #[error(transparent)]
    Guest(#[from] InvokeError),
    /// The guest's output is not a response.
    #[error("module '{module}': {error}")]
    Output { module: String, error: OutputError },
}

impl CgiFailure {
    pub fn outcome(&self) -> Outcome {
        match self {
            CgiFailure::Request { .. } => Outcome::BadRequest,
            CgiFailure::Guest(e) => e.outcome(),
            CgiFailure::Output { .. } => Outcome::BadOutput,
        }
    }
}

/// Runs `module` for `request`, with `stdin` as the request body.
pub async fn respond(
    module: &ServedModule,
    request: &RequestMeta<'_>,
    stdin: Stdin,
) -> Result<CgiResponse, CgiFailure> {
    let env = build_env(request, &module.settings).map_err(|error| CgiFailure::Request {
        module: module.name.to_string(),
        error,
    })?;
    let stdout: Bytes = invoke(module, env, stdin).await?;
    parse_output(stdout).map_err(|error| CgiFailure::Output {
        module: module.name.to_string(),
        error,
    })
}
