//! The CGI ABI's two conversions for the pipeline (`guest/pipeline.rs`): the request
//! becomes the guest's environment and stdin, and its stdout becomes the response, whole
//! or streamed (`../shared/DESIGN.md` "Streaming").
//!
//! The guest's stdout is buffered. If the guest returns first, which a function that
//! prints a page does, its output is parsed whole and answered with its
//! `Content-Length`. Once it has written `stream_after_bytes` or run for
//! `stream_after_ms`, the head is committed as soon as it can be read from the buffer,
//! and the guest goes on in a task of its own, which drops it if the client goes away.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body;

use super::env::{RequestMeta, build_env};
use super::response::{HeadScan, parse_output, scan_head, unended_header_line};
use super::stdin::{BodyStream, Stdin};
use super::stdout::{Stdout, StdoutBody};
use crate::guest::body::{LimitedBody, RequestBody, declared_length};
use crate::guest::bounds::GuestError;
use crate::guest::cgi::run::run_guest;
use crate::guest::conn::ConnInfo;
use crate::guest::exchange::{Exchange, Failure, Reply, split_path};
use crate::guest::lazy_sleep::LazySleep;
use crate::guest::module::GuestModule;
use crate::guest::reply_body::ReplyBody;
use crate::guest::streamed::{GuestRun, StreamedBody};

/// One CGI guest's output, as the pipeline waits for its head.
pub(crate) struct CgiExchange {
    module: Arc<str>,
    stdout: Stdout,
    stream_after_bytes: u64,
    /// When a guest still running commits its head: `stream_after` from its start.
    timer: LazySleep,
}

impl Exchange for CgiExchange {
    type Body = StdoutBody;

    fn start<B: RequestBody>(
        module: &Arc<GuestModule>,
        request: Request<LimitedBody<B>>,
        conn: ConnInfo,
        started: Instant,
    ) -> Result<(GuestRun, Self), Failure> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let body_len = match body.is_end_stream() {
            true => Some(0),
            false => declared_length(&parts.headers),
        };
        let meta = RequestMeta {
            module: &module.name,
            method: parts.method.as_str(),
            path,
            path_info: split_path(path).1,
            query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            remote: conn.remote,
            local: conn.local,
            secure: conn.secure,
            protocol: protocol_name(parts.version),
            body_len,
        };
        let env = build_env(&meta, &module.settings).map_err(|error| Failure::Request {
            module: module.name.clone(),
            error,
        })?;
        let stdin = match body.is_end_stream() {
            true => Stdin::Buffered(Bytes::new()),
            false => Stdin::Streamed(BodyStream::new(body)),
        };
        let limits = module.settings.limits;
        let stdout = Stdout::new(limits.stream_after_bytes, limits.max_output_bytes);
        let guest: GuestRun = Box::pin({
            let (module, stdout) = (module.clone(), stdout.clone());
            async move {
                let ran = run_guest(&module, env, stdin, stdout.clone(), started).await;
                stdout.finish();
                ran
            }
        });
        let exchange = CgiExchange {
            module: module.name.clone(),
            stdout,
            stream_after_bytes: limits.stream_after_bytes,
            timer: LazySleep::until(started + limits.stream_after),
        };
        Ok((guest, exchange))
    }

    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Response<StdoutBody>, Failure>> {
        loop {
            let timer_fired = self.timer.poll_elapsed(cx).is_ready();
            if !timer_fired && (self.stdout.buffered() as u64) < self.stream_after_bytes {
                return Poll::Pending;
            }
            match self.stdout.inspect(scan_head) {
                Ok(HeadScan::Ready { head, len }) => {
                    if len == 0 {
                        warn_if_unended(&self.module, self.stdout.inspect(unended_header_line));
                    }
                    let mut response = Response::new(self.stdout.commit(len));
                    *response.status_mut() = head.status;
                    *response.headers_mut() = head.headers;
                    return Poll::Ready(Ok(response));
                }
                Err(error) => return Poll::Ready(Err(self.output_error(error))),
                // Let the guest write until the block can be told; go on if that changed.
                Ok(HeadScan::Incomplete) if self.stdout.allow_header_block() => {}
                Ok(HeadScan::Incomplete) => return Poll::Pending,
            }
        }
    }

    fn ended(self, ended: Result<(), GuestError>) -> Result<Reply<StdoutBody>, Failure> {
        ended?;
        let stdout = self.stdout.take();
        let written = stdout.len();
        let output = parse_output(stdout.clone()).map_err(|e| self.output_error(e))?;
        if output.body.len() == written {
            warn_if_unended(&self.module, unended_header_line(&stdout));
        }
        let mut response = Response::new(output.body);
        *response.status_mut() = output.status;
        *response.headers_mut() = output.headers;
        Ok(Reply::Whole(response))
    }

    /// A guest that never writes again is dropped as promptly as one that does when its
    /// client goes away.
    fn detach(&self, guest: GuestRun) -> GuestRun {
        Box::pin(until_client_gone(
            guest,
            self.stdout.clone(),
            self.module.clone(),
        ))
    }

    /// A CGI head's length is the gateway's to set, never the guest's.
    fn declared(_: &Response<StdoutBody>) -> Option<u64> {
        None
    }

    fn reply_body(body: StreamedBody<StdoutBody>) -> ReplyBody {
        ReplyBody::Cgi(body)
    }
}

impl CgiExchange {
    fn output_error(&self, error: super::response::OutputError) -> Failure {
        Failure::Output {
            module: self.module.clone(),
            error,
        }
    }
}

/// Logs a warning when a guest's output, served as body whole, opens with a header line:
/// a header block without the empty line that ends it.
fn warn_if_unended(module: &str, line: Option<String>) {
    if let Some(line) = line {
        tracing::warn!(
            module,
            "module '{module}' wrote '{line}' as its first line but no empty line after its \
             headers, so everything it wrote was served as a text/plain body; end the CGI \
             header block with an empty line (docs/writing-functions.md, \"What your function returns\")"
        );
    }
}

/// Runs `guest` until it returns, or until its client goes away, whichever is first.
async fn until_client_gone(
    mut guest: GuestRun,
    stdout: Stdout,
    module: Arc<str>,
) -> Result<(), GuestError> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(ended) = guest.as_mut().poll(cx) {
            return Poll::Ready(ended);
        }
        stdout.poll_client_gone(cx).map(|()| {
            Err(GuestError::ClientGone {
                module: module.clone(),
            })
        })
    })
    .await
}

/// The request's protocol as CGI's `SERVER_PROTOCOL` names it.
fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}
