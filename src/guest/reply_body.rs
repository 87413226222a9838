//! The body of a response: whole (a CGI response that finished inside its buffer, the
//! gateway's own answers) or streamed from a guest as it writes it. One enum rather
//! than a boxed trait object, so a whole response costs no allocation for its body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::cgi::stdout::StdoutBody;
use super::streamed::{CutOff, StreamedBody};
use super::wasi_http::tracked::ServiceBody;

/// A response's body, for `serve` and `run` alike.
pub enum ReplyBody {
    Whole(Full<Bytes>),
    Cgi(StreamedBody<StdoutBody>),
    Component(StreamedBody<HyperOutgoingBody>),
    Service(StreamedBody<ServiceBody>),
}

impl From<Full<Bytes>> for ReplyBody {
    fn from(body: Full<Bytes>) -> Self {
        ReplyBody::Whole(body)
    }
}

impl ReplyBody {
    /// Ends a response that carries no body with its head (see
    /// [`StreamedBody::end_bodiless`]).
    pub(crate) fn end_bodiless(self) {
        match self {
            ReplyBody::Whole(_) => {}
            ReplyBody::Cgi(body) => body.end_bodiless(),
            ReplyBody::Component(body) => body.end_bodiless(),
            ReplyBody::Service(body) => body.end_bodiless(),
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = CutOff;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
        match self.get_mut() {
            ReplyBody::Whole(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            ReplyBody::Cgi(body) => Pin::new(body).poll_frame(cx),
            ReplyBody::Component(body) => Pin::new(body).poll_frame(cx),
            ReplyBody::Service(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Whole(body) => body.is_end_stream(),
            ReplyBody::Cgi(body) => body.is_end_stream(),
            ReplyBody::Component(body) => body.is_end_stream(),
            ReplyBody::Service(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Whole(body) => body.size_hint(),
            ReplyBody::Cgi(body) => body.size_hint(),
            ReplyBody::Component(body) => body.size_hint(),
            ReplyBody::Service(body) => body.size_hint(),
        }
    }
}
