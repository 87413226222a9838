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
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error;

use crate::guest::body::{BodyError, LimitedBody, RequestBody};
use crate::guest::conn::ConnInfo;
use crate::guest::headers::{is_credential, is_hop_by_hop};

/// A request body as a component reads it: its failures are wasi:http errors.
pub(crate) struct ComponentBody<B>(LimitedBody<B>);

impl<B: RequestBody> Body for ComponentBody<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let limit = self.0.limit();
        Pin::new(&mut self.0).poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame.map_err(|error| match error {
                    BodyError::TooLarge => Error::HttpRequestBodySize(Some(limit)),
                    BodyError::TimedOut => Error::ConnectionReadTimeout,
                    BodyError::Unreadable => Error::HttpProtocolError,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// The request to hand a component: its headers filtered, and an authority it always has.
pub(crate) fn guest_request<B>(
    request: Request<LimitedBody<B>>,
    conn: ConnInfo,
    pass_authorization: bool,
) -> Request<ComponentBody<B>> {
    let (mut parts, body) = request.into_parts();
    filter_headers(&mut parts.headers, pass_authorization);
    if !parts.headers.contains_key(HOST)
        && let Ok(host) = HeaderValue::from_str(&conn.local.to_string())
    {
        parts.headers.insert(HOST, host);
    }
    Request::from_parts(parts, ComponentBody(body))
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
