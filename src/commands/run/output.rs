//! What `run` answers: the response head and its body as the guest writes it, or the
//! error that took its place, with the process's exit status for each.

use std::io::Write;

use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::catalogue::failure::LoadError;
use crate::catalogue::private_dir::CacheError;
use crate::config::ConfigError;
use crate::guest::bounds::GuestError;
use crate::guest::exchange::Failure;
use crate::guest::reply_body::ReplyBody;
use crate::kv::KvOpenError;
use crate::runtime::RuntimeError;

/// Exit statuses of `wasmgate run` beside the guest's own (../shared/DESIGN.md).
const EXIT_CANNOT_RUN: u8 = 126;
const EXIT_TRAP: u8 = 134;
const EXIT_LIMIT: u8 = 137;

/// Why a one-shot run produced no response.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("module '{module}': {error}")]
    Load { module: String, error: LoadError },
    #[error("module '{module}': {reason}")]
    Request { module: String, reason: String },
    #[error(transparent)]
    Failed(#[from] Failure),
    #[error(transparent)]
    Kv(#[from] KvOpenError),
    #[error("the compiled-module cache cannot be used: {0}")]
    Cache(#[from] CacheError),
    #[error("cannot write the response: {0}")]
    Write(std::io::Error),
}

/// What a run answered: the head, and the body still to come.
pub struct RunResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub(super) body: ReplyBody,
}

impl RunResponse {
    /// Writes the body to `out` as the guest writes it, flushing each piece. A guest that
    /// fails once its head is out ends the body early, and that is the run's error.
    pub async fn write_body(self, out: &mut impl Write) -> Result<(), RunError> {
        let mut body = self.body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|cut| RunError::Failed(Failure::Guest(cut.0)))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data)
                    .and_then(|()| out.flush())
                    .map_err(RunError::Write)?;
            }
        }
        Ok(())
    }
}

impl RunError {
    /// The process's exit status: the guest's own for a non-zero `proc_exit`, 137 for a
    /// limit, 134 for a trap or output that is no response, 126 for everything that kept
    /// the guest from running.
    pub fn exit_code(&self) -> u8 {
        let error = match self {
            RunError::Failed(Failure::Guest(error)) => error,
            RunError::Failed(Failure::Output { .. }) => return EXIT_TRAP,
            _ => return EXIT_CANNOT_RUN,
        };
        match error {
            GuestError::Exit { code, .. } => u8::try_from(*code).unwrap_or(EXIT_TRAP),
            GuestError::Trap { .. }
            | GuestError::NoResponse { .. }
            | GuestError::ErrorResponse { .. } => EXIT_TRAP,
            GuestError::FuelExhausted { .. }
            | GuestError::MemoryExceeded { .. }
            | GuestError::HostLimit { .. }
            | GuestError::OutputTooLarge { .. }
            | GuestError::Timeout { .. } => EXIT_LIMIT,
            GuestError::Instantiate { .. }
            | GuestError::BodyTooLarge { .. }
            | GuestError::BodyIncomplete { .. }
            | GuestError::ClientGone { .. } => EXIT_CANNOT_RUN,
        }
    }
}
