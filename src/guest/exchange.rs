//! What the pipeline (`guest/pipeline.rs`) and each ABI's exchange agree on: the
//! [`Exchange`] an ABI implements (the request in, the head and the body out), the
//! [`Reply`] it gives, the [`Failure`] that takes a response's place, and how a request's
//! path names its module.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body;

use super::body::{LimitedBody, RequestBody};
use super::bounds::GuestError;
use super::cgi::env::EnvError;
use super::cgi::response::OutputError;
use super::conn::ConnInfo;
use super::module::GuestModule;
use super::reply_body::ReplyBody;
use super::streamed::{GuestEnd, GuestRun, StreamedBody};
use crate::outcome::Outcome;

/// Why a request got no response from its guest, with the outcome it counts as. The
/// messages name the module and the reason.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The request is malformed (more than one `Host`).
    #[error("{0}")]
    BadRequest(&'static str),
    /// The request cannot be given to a CGI guest.
    #[error("module '{module}': {error}")]
    Request { module: Arc<str>, error: EnvError },
    /// No slot or permit was free in time.
    #[error("{0}")]
    Overloaded(String),
    /// The guest, or the body it was given, did not finish well.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// A CGI guest's output is not a response.
    #[error(
        "module '{module}': {error}; a CGI header block is `Name: value` lines, then an empty \
         line, then the body (docs/writing-functions.md, \"What your function returns\")"
    )]
    Output {
        module: Arc<str>,
        error: OutputError,
    },
}

impl Failure {
    pub fn outcome(&self) -> Outcome {
        match self {
            Failure::BadRequest(_) | Failure::Request { .. } => Outcome::BadRequest,
            Failure::Overloaded(_) => Outcome::Overloaded,
            Failure::Guest(e) => e.outcome(),
            Failure::Output { .. } => Outcome::BadOutput,
        }
    }
}

/// What one ABI supplies to the pipeline: the request in, the head and the body out.
pub(crate) trait Exchange: Sized + Send {
    /// The response body as the guest writes it, once its head is out.
    type Body: Body<Data = Bytes, Error: std::fmt::Display> + Unpin + Send + 'static;

    /// The guest's run for `request` (with its deadline from `started`), and the exchange
    /// that sees its head.
    fn start<B: RequestBody>(
        module: &Arc<GuestModule>,
        request: Request<LimitedBody<B>>,
        conn: ConnInfo,
        started: Instant,
    ) -> Result<(GuestRun, Self), Failure>;

    /// The head, once the guest has set it; polled while the guest runs.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Response<Self::Body>, Failure>>;

    /// The response of a guest that returned before its head was taken: whole, or its
    /// head and what is left of its body.
    fn ended(self, ended: Result<(), GuestError>) -> Result<Reply<Self::Body>, Failure>;

    /// The guest's run once its head is out, in a task of its own.
    fn detach(&self, guest: GuestRun) -> GuestRun {
        guest
    }

    /// The length a head declares, which must fit the output cap.
    fn declared(head: &Response<Self::Body>) -> Option<u64>;

    /// The body as a response body.
    fn reply_body(body: StreamedBody<Self::Body>) -> ReplyBody;
}

/// A response from an [`Exchange`].
pub(crate) enum Reply<B> {
    /// The guest returned with its output still in the buffer.
    Whole(Response<Bytes>),
    /// Its head, with its body still to come (or already whole in `inner`).
    Head(Response<B>, GuestEnd),
}

/// `/name/rest?q` → (`name`, `/rest`).
pub(crate) fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_name_and_rest() {
        assert_eq!(split_path("/hello"), ("hello", ""));
        assert_eq!(split_path("/hello/"), ("hello", "/"));
        assert_eq!(split_path("/hello/a/b"), ("hello", "/a/b"));
        assert_eq!(split_path("/"), ("", ""));
        assert_eq!(split_path("/../x"), ("..", "/x"));
    }
}
