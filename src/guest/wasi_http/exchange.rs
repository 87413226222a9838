//! The wasi:http ABI's two conversions for the pipeline (`guest/pipeline.rs`): the request
//! becomes a wasi:http request handed to a fresh instance of the component, and the
//! response head comes back as soon as the guest sets it, while the guest goes on writing
//! the body. What is the same for 0.2 and 0.3 components is here, with 0.2's run
//! ([`Proxy02`]); 0.3's run is `service.rs` ([`ComponentAbi`] says what differs).
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
use wasmtime::Store;
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
use crate::guest::exchange::{Exchange, Failure, Reply};
use crate::guest::linkers::Prepared;
use crate::guest::module::GuestModule;
use crate::guest::reply_body::ReplyBody;
use crate::guest::store::Footprint;
use crate::guest::streamed::{GuestEnd, GuestRun, StreamedBody};

/// What differs between the versions of wasi:http: how a guest is run for a request,
/// and what its response body is.
pub(crate) trait ComponentAbi: Send + 'static {
    /// The response body as the guest writes it.
    type Body: hyper::body::Body<Data = bytes::Bytes, Error: std::fmt::Display>
        + Unpin
        + Send
        + 'static;
    /// The error code a guest may answer with instead of a response.
    type Code: std::fmt::Debug + Send + 'static;

    /// The guest's run for `request` (with its deadline from `started`), which sends its
    /// response head, or its error code, on `head`.
    fn run<B: RequestBody>(
        module: &Arc<GuestModule>,
        request: Request<ComponentBody<B>>,
        conn: ConnInfo,
        head: oneshot::Sender<Head<Self>>,
        started: Instant,
    ) -> Result<GuestRun, Failure>;

    /// The body as a response body.
    fn reply_body(body: StreamedBody<Self::Body>) -> ReplyBody;
}

/// The response head a guest set, with the body still coming, or the code it answered.
pub(crate) type Head<A> = Result<Response<<A as ComponentAbi>::Body>, <A as ComponentAbi>::Code>;

/// One component's response head, as the pipeline waits for it.
pub(crate) struct ComponentExchange<A: ComponentAbi> {
    module: Arc<str>,
    head: oneshot::Receiver<Head<A>>,
    /// Set once the guest dropped its response unset: its end says why.
    unset: bool,
}

impl<A: ComponentAbi> Exchange for ComponentExchange<A> {
    type Body = A::Body;

    fn start<B: RequestBody>(
        module: &Arc<GuestModule>,
        request: Request<LimitedBody<B>>,
        conn: ConnInfo,
        started: Instant,
    ) -> Result<(GuestRun, Self), Failure> {
        let request = guest_request(request, conn, module.settings.pass_authorization);
        let (head_tx, head) = oneshot::channel::<Head<A>>();
        let guest = A::run(module, request, conn, head_tx, started)?;
        let exchange = ComponentExchange {
            module: module.name.clone(),
            head,
            unset: false,
        };
        Ok((guest, exchange))
    }

    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Response<A::Body>, Failure>> {
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

    fn ended(mut self, ended: Result<(), GuestError>) -> Result<Reply<A::Body>, Failure> {
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

    fn declared(head: &Response<A::Body>) -> Option<u64> {
        declared_length(head.headers())
    }

    fn reply_body(body: StreamedBody<A::Body>) -> ReplyBody {
        A::reply_body(body)
    }
}

/// A `wasi:http/incoming-handler@0.2` component.
pub(crate) struct Proxy02;

impl ComponentAbi for Proxy02 {
    type Body = HyperOutgoingBody;
    type Code = ErrorCode;

    fn run<B: RequestBody>(
        module: &Arc<GuestModule>,
        request: Request<ComponentBody<B>>,
        conn: ConnInfo,
        head: oneshot::Sender<Head<Self>>,
        started: Instant,
    ) -> Result<GuestRun, Failure> {
        let Prepared::Http(pre) = &module.prepared else {
            return Err(not_this_abi(module, "wasi:http 0.2"));
        };
        let (module, pre) = (module.clone(), pre.clone());
        let scheme = match conn.secure {
            true => Scheme::Https,
            false => Scheme::Http,
        };
        Ok(Box::pin(async move {
            run(&module, &pre, (scheme, request), head, started).await
        }))
    }

    fn reply_body(body: StreamedBody<HyperOutgoingBody>) -> ReplyBody {
        ReplyBody::Component(body)
    }
}

/// The error for a module prepared for another ABI than the one asked of it.
pub(crate) fn not_this_abi(module: &GuestModule, abi: &str) -> Failure {
    GuestError::Instantiate {
        module: module.name.clone(),
        reason: format!("it is not a {abi} component"),
    }
    .into()
}

impl<A: ComponentAbi> ComponentExchange<A> {
    fn error_response(&self, code: A::Code) -> Failure {
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
    head: oneshot::Sender<Head<Proxy02>>,
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
    let result = bounds.before_deadline(call).await;
    finish(module, &bounds, &store, budget, result)
}

/// How a component's run ended, with its fuel and any overshoot of its deadline recorded.
pub(crate) fn finish(
    module: &GuestModule,
    bounds: &Bounds,
    store: &Store<ComponentStore>,
    budget: u64,
    result: Result<(), RunFailure>,
) -> Result<(), GuestError> {
    bounds.record_fuel(store, budget, module.metrics());
    let ended = bounds.name(store, result, OutputFate::Kept);
    if let Err(GuestError::Timeout { .. }) = &ended {
        let overshoot = Instant::now().saturating_duration_since(bounds.deadline);
        module.metrics().timeout_overshoot(overshoot);
    }
    ended
}

/// The I/O of one request of `module`.
pub(crate) fn component_io(module: &GuestModule) -> ComponentIo {
    let outbound = OutboundPolicy {
        allowed: module.allowed_outbound.clone(),
        metrics: module.shared.metrics.clone(),
    };
    ComponentIo::new(&module.name, &module.settings.env, &module.args, outbound)
}
