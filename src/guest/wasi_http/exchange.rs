//! The wasi:http ABI's two conversions for the pipeline (`guest/pipeline.rs`): the request
//! becomes a wasi:http incoming request handed to a fresh instance of the component, and
//! the response head comes back as soon as the guest sets it, while the guest goes on
//! writing the body.
//!
//! The guest's deadline covers the whole run, host calls included (a guest blocked on a
//! pollable or an outgoing request is stopped as surely as a spinning one): a guest past
//! it before its head is a [`GuestError::Timeout`] (504), after it a cut-off response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tokio::sync::oneshot;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::io::{ComponentIo, ComponentStore};
use super::outbound::OutboundPolicy;
use super::request::{ComponentBody, guest_request};
use crate::guest::body::{LimitedBody, RequestBody, declared_length};
use crate::guest::bounds::{Bounds, Failure as RunFailure, GuestError};
use crate::guest::cgi::stdout::OutputFate;
use crate::guest::conn::ConnInfo;
use crate::guest::deadline::DeadlinePassed;
use crate::guest::exchange::{Exchange, Failure, Reply};
use crate::guest::lazy_sleep::unless_past;
use crate::guest::linkers::Prepared;
use crate::guest::module::GuestModule;
use crate::guest::reply_body::ReplyBody;
use crate::guest::store::Footprint;
use crate::guest::streamed::{GuestEnd, GuestRun, StreamedBody};

/// The response head a guest set, with the body still coming.
type Head = Result<Response<HyperOutgoingBody>, ErrorCode>;

/// One component's response head, as the pipeline waits for it.
pub(crate) struct ComponentExchange {
    module: Arc<str>,
    head: oneshot::Receiver<Head>,
    /// Set once the guest dropped its response-outparam unset: its end says why.
    unset: bool,
}

impl Exchange for ComponentExchange {
    type Body = HyperOutgoingBody;

    fn start<B: RequestBody>(
        module: &Arc<GuestModule>,
        request: Request<LimitedBody<B>>,
        conn: ConnInfo,
        started: Instant,
    ) -> Result<(GuestRun, Self), Failure> {
        let Prepared::Http(pre) = &module.prepared else {
            return Err(GuestError::Instantiate {
                module: module.name.clone(),
                reason: "it is a CGI module, not a wasi:http component".into(),
            }
            .into());
        };
        let pre = pre.clone();
        let scheme = match conn.secure {
            true => Scheme::Https,
            false => Scheme::Http,
        };
        let request = guest_request(request, conn, module.settings.pass_authorization);
        let (head_tx, head) = oneshot::channel::<Head>();
        let guest: GuestRun = Box::pin({
            let module = module.clone();
            async move { run(&module, &pre, (scheme, request), head_tx, started).await }
        });
        let exchange = ComponentExchange {
            module: module.name.clone(),
            head,
            unset: false,
        };
        Ok((guest, exchange))
    }

    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<HyperOutgoingBody>, Failure>> {
        if self.unset {
            return Poll::Pending;
        }
        match Pin::new(&mut self.head).poll(cx) {
            Poll::Ready(Ok(Ok(head))) => Poll::Ready(Ok(head)),
            Poll::Ready(Ok(Err(code))) => Poll::Ready(Err(self.error_response(code))),
            Poll::Ready(Err(_)) => {
                self.unset = true;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn ended(mut self, ended: Result<(), GuestError>) -> Result<Reply<HyperOutgoingBody>, Failure> {
        match self.head.try_recv() {
            Ok(Ok(head)) => Ok(Reply::Head(head, GuestEnd::Ended(ended))),
            Ok(Err(code)) => Err(self.error_response(code)),
            Err(_) => Err(ended
                .err()
                .unwrap_or(GuestError::NoResponse {
                    module: self.module.clone(),
                })
                .into()),
        }
    }

    fn declared(head: &Response<HyperOutgoingBody>) -> Option<u64> {
        declared_length(head.headers())
    }

    fn reply_body(body: StreamedBody<HyperOutgoingBody>) -> ReplyBody {
        ReplyBody::Component(body)
    }
}

impl ComponentExchange {
    fn error_response(&self, code: ErrorCode) -> Failure {
        GuestError::ErrorResponse {
            module: self.module.clone(),
            code: format!("{code:?}"),
        }
        .into()
    }
}

/// Instantiates the component in a fresh store, calls its handler, and names how it ended.
async fn run<B: RequestBody>(
    module: &GuestModule,
    pre: &ProxyPre<ComponentStore>,
    (scheme, request): (Scheme, hyper::Request<ComponentBody<B>>),
    head: oneshot::Sender<Head>,
    started: Instant,
) -> Result<(), GuestError> {
    let bounds = Bounds::new(module, started);
    let mut store = bounds.store(pre.engine(), component_io(module), Footprint::COMPONENT);
    let budget = Bounds::budget(&store);
    let call = async {
        let mut http = store.data_mut().http();
        let req = http
            .new_incoming_request(scheme, request)
            .map_err(RunFailure::Instantiate)?;
        let out = http
            .new_response_outparam(head)
            .map_err(RunFailure::Instantiate)?;
        let instantiating = Instant::now();
        let proxy = pre
            .instantiate_async(&mut store)
            .await
            .map_err(RunFailure::Instantiate)?;
        module.metrics().instantiated(instantiating.elapsed());
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
            .map_err(RunFailure::Run)
    };
    let result = unless_past(bounds.deadline, call)
        .await
        .unwrap_or_else(|| Err(RunFailure::Run(DeadlinePassed.into())));
    bounds.record_fuel(&store, budget, module.metrics());
    let ended = bounds.name(&store, result, OutputFate::Kept);
    if let Err(GuestError::Timeout { .. }) = &ended {
        module
            .metrics()
            .timeout_overshoot(started.elapsed().saturating_sub(bounds.limits.timeout));
    }
    ended
}

/// The I/O of one request of `module`.
fn component_io(module: &GuestModule) -> ComponentIo {
    let outbound = OutboundPolicy {
        allowed: module.allowed_outbound.clone(),
        metrics: module.shared.metrics.clone(),
    };
    ComponentIo::new(&module.name, &module.settings.env, &module.args, outbound)
}
