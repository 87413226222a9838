//! The body of a public response: whole (a CGI response, the gateway's own answers) or
//! streamed from a component as it writes it. One enum rather than a boxed trait object,
//! so a CGI response costs no allocation for its body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use crate::guest::wasi_http::response::{ComponentBody, CutOff};

/// A public response's body.
pub enum PublicBody {
    Whole(Full<Bytes>),
    Component(ComponentBody),
}

impl From<Full<Bytes>> for PublicBody {
    fn from(body: Full<Bytes>) -> Self {
        PublicBody::Whole(body)
    }
}

impl Body for PublicBody {
    type Data = Bytes;
    type Error = CutOff;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
        match self.get_mut() {
            PublicBody::Whole(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            PublicBody::Component(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            PublicBody::Whole(body) => body.is_end_stream(),
            PublicBody::Component(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            PublicBody::Whole(body) => body.size_hint(),
            PublicBody::Component(body) => body.size_hint(),
        }
    }
}
