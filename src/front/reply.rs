//! The gateway's own short answers: plain-text error responses that name the module and
//! the reason, shared by the public and the admin listener.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::outcome::Outcome;

/// What an overloaded gateway, or one still loading the module, suggests in
/// `Retry-After`, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A short plain-text error naming the module and the reason.
pub(crate) fn error_response(outcome: Outcome, message: &str) -> Response<Full<Bytes>> {
    let mut response = text_response(outcome.status(), message);
    if matches!(outcome, Outcome::Overloaded | Outcome::Loading) {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    response
}

/// A plain-text response with `status`.
pub(crate) fn text_response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    response
}
