//! The body of a wasi:http 0.3 response, as the pipeline sends it: wasmtime-wasi-http's
//! stream of what the guest writes, which tells the guest's event loop (`service.rs`)
//! when it is over, so that the loop runs exactly as long as the body needs it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

/// A 0.3 response body as wasmtime-wasi-http streams it from the guest.
pub(crate) type GuestBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;
/// A 0.3 response body as the pipeline sends it.
pub type ServiceBody = Tracked<GuestBody>;

/// A body that tells its guest's event loop when it is over: at its last frame, at an
/// error, or when it is dropped (the client went away).
pub struct Tracked<B> {
    body: B,
    ended: Option<oneshot::Sender<()>>,
}

impl<B> Tracked<B> {
    /// `body`, which drops `ended` once it is over.
    pub(crate) fn new(body: B, ended: oneshot::Sender<()>) -> Tracked<B> {
        Tracked {
            body,
            ended: Some(ended),
        }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            self.ended.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
