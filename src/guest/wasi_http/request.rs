//! The request as a component receives it: the method, the path and query as received
//! (`/NAME/rest?query`), the headers by the CGI path's rules, and the body streamed as it
//! arrives, cut at the module's `max_body_bytes` and, as a CGI guest's stdin is, at the
//! gateway's `body_timeout_ms` (a body still arriving then fails the request, which no
//! longer holds a slot until the module's deadline).
//!
//! Withheld from the guest: `Authorization` and `Proxy-Authorization` (unless the module
//! sets `pass_authorization`), and the hop-by-hop headers of RFC 9110 7.6.1, which describe
//! the client's connection to the gateway, not the request (`Connection`, every header it
//! names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
//! `Upgrade`). A request without a `Host` gets the address it arrived at, since wasi:http
//! gives every incoming request an authority.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;
use wasmtime_wasi_http::Error;

use crate::guest::conn::ConnInfo;
use crate::guest::headers::{is_credential, is_hop_by_hop};

/// Says whether a request body went past its limit or its deadline, after the body was
/// handed away.
#[derive(Clone, Default)]
pub(crate) struct BodyWatch {
    over_limit: Arc<AtomicBool>,
    timed_out: Arc<AtomicBool>,
}

impl BodyWatch {
    pub(crate) fn over_limit(&self) -> bool {
        self.over_limit.load(Ordering::Relaxed)
    }

    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// What a request body handed to a component must be.
pub trait RequestBody: Body<Data = Bytes, Error: Into<Error>> + Send + Unpin + 'static {}

impl<B> RequestBody for B where B: Body<Data = Bytes, Error: Into<Error>> + Send + Unpin + 'static {}

/// A request body (the client's, or `run`'s stdin) that fails once more than its limit
/// has arrived, or when it has not ended by its deadline.
pub(crate) struct GuestBody<B = Incoming> {
    inner: B,
    limit: u64,
    received: u64,
    deadline: Option<Pin<Box<Sleep>>>,
    watch: BodyWatch,
}

impl<B: RequestBody> Body for GuestBody<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                let Some(deadline) = self.deadline.as_mut() else {
                    return Poll::Pending;
                };
                if deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.watch.timed_out.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
            }
        };
        if let Some(data) = frame.data_ref() {
            self.received = self.received.saturating_add(data.len() as u64);
            if self.received > self.limit {
                self.watch.over_limit.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(self.limit)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a request body must keep to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyBounds {
    pub(crate) max_bytes: u64,
    /// When the whole body must have arrived (a client's), if ever (`run`'s stdin).
    pub(crate) deadline: Option<Instant>,
}

/// The request to hand a component, and the watch on its body's bounds.
pub(crate) fn guest_request<B>(
    mut parts: Parts,
    body: B,
    conn: ConnInfo,
    bounds: BodyBounds,
    pass_authorization: bool,
) -> (hyper::Request<GuestBody<B>>, BodyWatch) {
    filter_headers(&mut parts.headers, pass_authorization);
    if !parts.headers.contains_key(HOST)
        && let Ok(host) = HeaderValue::from_str(&conn.local.to_string())
    {
        parts.headers.insert(HOST, host);
    }
    let watch = BodyWatch::default();
    let body = GuestBody {
        inner: body,
        limit: bounds.max_bytes,
        received: 0,
        deadline: bounds
            .deadline
            .map(|at| Box::pin(tokio::time::sleep_until(at.into()))),
        watch: watch.clone(),
    };
    (hyper::Request::from_parts(parts, body), watch)
}

/// Removes the hop-by-hop headers, and the credentials unless they are to be passed.
///
/// Most requests carry none of them, so the map is read once and written only when one is
/// there: removing by name would parse and hash each name for every request.
fn filter_headers(headers: &mut HeaderMap, pass_authorization: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let withheld = |name: &HeaderName| {
        is_hop_by_hop(name)
            || named.contains(name)
            || (!pass_authorization && is_credential(name.as_str()))
    };
    let dropped: Vec<HeaderName> = headers.keys().filter(|n| withheld(n)).cloned().collect();
    for name in dropped {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "secret"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
            ("content-length", "3"),
        ]);
        filter_headers(&mut h, false);
        // Only the order of one name's values is significant (RFC 9110 5.3).
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
    }

    #[test]
    fn credentials_pass_only_when_asked() {
        let pairs = [
            ("authorization", "Bearer t"),
            ("proxy-authorization", "Basic p"),
        ];
        let mut withheld = headers(&pairs);
        filter_headers(&mut withheld, false);
        assert!(withheld.is_empty());
        let mut passed = headers(&pairs);
        filter_headers(&mut passed, true);
        assert_eq!(passed.len(), 2);
    }
}
