//! A component's outgoing HTTP requests (`wasi:http/outgoing-handler`): denied unless the
//! module's `allowed_outbound_hosts` lists the destination, and counted either way.
//!
//! The check runs in wasmtime-wasi-http's `send_request` hook, before anything is resolved
//! or connected: a denied request fails inside the guest with `HTTP-request-denied`, and
//! no packet leaves the host. An allowed one goes out through wasmtime-wasi-http's hyper
//! client (with rustls for `https`), bounded like everything else by the request's
//! deadline.

use std::sync::Arc;

use http::uri::Scheme;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::allowed::AllowedHost;
use crate::metrics::{ModuleMetrics, OutboundResult};

/// What `send_request` hands back: the response and the future that drives its body.
type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// The hooks of one request's store.
pub(crate) struct OutboundPolicy {
    pub allowed: Arc<[AllowedHost]>,
    pub metrics: Arc<ModuleMetrics>,
}

impl OutboundPolicy {
    /// Whether `uri`'s scheme, host and port are listed.
    fn admits(&self, uri: &http::Uri) -> bool {
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let Some(authority) = uri.authority() else {
            return false;
        };
        self.allowed
            .iter()
            .any(|a| a.admits(https, authority.host(), authority.port_u16()))
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        let metrics = self.metrics.clone();
        if !self.admits(request.uri()) {
            tracing::info!(
                module = %metrics.name,
                destination = %destination(request.uri()),
                "outgoing request denied: not in allowed_outbound_hosts"
            );
            metrics.outbound(OutboundResult::Denied);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let sent = wasmtime_wasi_http::default_send_request(request, options).await;
            metrics.outbound(match sent {
                Ok(_) => OutboundResult::Ok,
                Err(_) => OutboundResult::Error,
            });
            let (response, io) = sent?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// `scheme://authority` of a request, for the log (never its path or query).
fn destination(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    let authority = uri.authority().map_or("?", |a| a.as_str());
    format!("{scheme}://{authority}")
}
