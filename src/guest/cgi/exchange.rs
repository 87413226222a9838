//! One CGI exchange, the same for `serve` and `run`: the request becomes the guest's
//! environment, the guest runs, and its stdout becomes the response, whole or streamed
//! (DESIGN.md "Streaming"). Whatever goes wrong before the head is sent is a
//! [`CgiFailure`] that names the module and the reason, with the outcome it counts as.
//!
//! The guest is polled right here, in the caller's task, while its stdout is buffered. If
//! it returns first, which a function that prints a page does, its output is parsed whole
//! and answered exactly as before streaming: status from the outcome, `Content-Length`.
//! Once it has written `stream_after_bytes` or run for `stream_after_ms`, the head is
//! committed as soon as it can be read from the buffer, and the guest goes on in a task of
//! its own, which holds its slot until it returns and drops it if the client goes away.
//! From then on a failure can only cut the response off ([`StreamedBody`]).

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use http_body_util::BodyExt;

use super::env::{EnvError, RequestMeta, build_env};
use super::response::{CgiHead, CgiResponse, HeadScan, OutputError, parse_output, scan_head};
use super::stdin::{BodyFault, Stdin};
use super::stdout::{Stdout, StdoutBody};
use crate::guest::bounds::InvokeError;
use crate::guest::invoke::run_guest;
use crate::guest::lazy_sleep::LazySleep;
use crate::guest::module::GuestModule;
use crate::guest::streamed::{GuestEnd, GuestRun, Record, StreamedBody};
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

/// The guest's stdin, and where a body that breaks off leaves word of it.
pub(crate) struct GuestStdin {
    pub stdin: Stdin,
    pub fault: Option<BodyFault>,
}

/// A CGI guest's response.
pub(crate) enum CgiReply {
    /// The guest returned while its output was still buffered.
    Whole(CgiResponse),
    /// The guest is still running: its head, and its body as it writes it.
    Streaming(CgiHead, StreamedBody<StdoutBody>),
}

/// What ended the wait for the head.
enum Waited {
    Ended(Result<(), InvokeError>),
    /// The head, from the first `len` bytes of stdout.
    Head(CgiHead, usize),
    Bad(OutputError),
}

/// Runs `module` for `request`; `hold` (its slot, its permits) is released when the guest
/// returns. `started` is when the request arrived (for the metrics); `stream_after_ms`
/// counts from the guest's start, now.
pub(crate) async fn exchange(
    module: Arc<GuestModule>,
    request: &RequestMeta<'_>,
    stdin: GuestStdin,
    started: Instant,
    hold: impl Send + 'static,
) -> Result<CgiReply, CgiFailure> {
    let env = build_env(request, &module.settings).map_err(|error| CgiFailure::Request {
        module: module.name.to_string(),
        error,
    })?;
    let limits = module.settings.limits;
    let stdout = Stdout::new(limits.stream_after_bytes, limits.max_output_bytes);
    let guest_started = Instant::now();
    let mut guest: GuestRun = Box::pin({
        let (module, stdout) = (module.clone(), stdout.clone());
        async move {
            let _hold = hold;
            let ran = run_guest(&module, env, stdin.stdin, stdout.clone(), guest_started).await;
            stdout.finish();
            match stdin.fault.and_then(|fault| fault.get()) {
                Some(error) => Err(InvokeError::body(
                    &module.name,
                    limits.max_body_bytes,
                    error,
                )),
                None => ran,
            }
        }
    });
    // When a guest still running commits its head: `stream_after` from its start.
    let mut timer = LazySleep::until(guest_started + limits.stream_after);
    let waited = std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(ended) = guest.as_mut().poll(cx) {
                return Poll::Ready(Waited::Ended(ended));
            }
            let timer_fired = timer.poll_elapsed(cx).is_ready();
            if !timer_fired && (stdout.buffered() as u64) < limits.stream_after_bytes {
                return Poll::Pending;
            }
            match stdout.inspect(scan_head) {
                Ok(HeadScan::Ready { head, len }) => return Poll::Ready(Waited::Head(head, len)),
                Err(error) => return Poll::Ready(Waited::Bad(error)),
                // Let the guest write until the block can be told; go on if that changed.
                Ok(HeadScan::Incomplete) if stdout.allow_header_block() => {}
                Ok(HeadScan::Incomplete) => return Poll::Pending,
            }
        }
    })
    .await;
    let output_error = |error| CgiFailure::Output {
        module: module.name.to_string(),
        error,
    };
    let reply = match waited {
        Waited::Ended(ended) => {
            ended?;
            CgiReply::Whole(parse_output(stdout.take()).map_err(output_error)?)
        }
        // Dropping the guest stops it.
        Waited::Bad(error) => return Err(output_error(error)),
        Waited::Head(head, len) => {
            let body = stdout.commit(len);
            let end = GuestEnd::spawn(until_client_gone(guest, stdout, module.name.clone()));
            let record = Record::new(module.shared.metrics.clone(), started);
            CgiReply::Streaming(
                head,
                StreamedBody::new(body, None, end, limits.max_output_bytes, record),
            )
        }
    };
    module.metrics().first_byte(started.elapsed());
    Ok(reply)
}

/// Runs `guest` until it returns, or until its client goes away, whichever is first: a
/// guest that never writes again is dropped as promptly as one that does.
async fn until_client_gone(
    mut guest: GuestRun,
    stdout: Stdout,
    module: Arc<str>,
) -> Result<(), InvokeError> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(ended) = guest.as_mut().poll(cx) {
            return Poll::Ready(ended);
        }
        stdout.poll_client_gone(cx).map(|()| {
            Err(InvokeError::ClientGone {
                module: module.clone(),
            })
        })
    })
    .await
}

/// One whole exchange with `module`, its body collected (as the benches look at it).
pub async fn respond(
    module: Arc<GuestModule>,
    request: &RequestMeta<'_>,
    stdin: Stdin,
) -> Result<CgiResponse, CgiFailure> {
    let stdin = GuestStdin { stdin, fault: None };
    match exchange(module, request, stdin, Instant::now(), ()).await? {
        CgiReply::Whole(response) => Ok(response),
        CgiReply::Streaming(head, body) => {
            let body = body.collect().await.map_err(|cut| cut.0)?.to_bytes();
            Ok(CgiResponse {
                status: head.status,
                headers: head.headers,
                body,
            })
        }
    }
}
