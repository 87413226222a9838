//! One wasi:http exchange, the same for `serve` and `run`: a fresh instance of the
//! component handles the request, and its response head comes back as soon as the guest
//! sets it, while the guest goes on writing the body.
//!
//! The guest's run holds what it occupies (its pool slot, its module's concurrency permit)
//! until it has returned, whenever that is. Until the head, the caller polls it: if the
//! caller goes away (the client hung up), the instance is dropped. The guest's deadline
//! covers the whole run, host calls included (a guest blocked on a pollable or an outgoing
//! request is stopped as surely as a spinning one): a guest past it before its head is a
//! [`InvokeError::Timeout`] (504), after it a cut-off response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::io::{ComponentIo, ComponentStore};
use super::outbound::OutboundPolicy;
use super::request::{BodyBounds, GuestBody, RequestBody, guest_request};
use crate::guest::body::declared_length;
use crate::guest::bounds::{Bounds, Failure, InvokeError};
use crate::guest::cgi::stdout::OutputFate;
use crate::guest::conn::ConnInfo;
use crate::guest::deadline::DeadlinePassed;
use crate::guest::lazy_sleep::unless_past;
use crate::guest::linkers::Prepared;
use crate::guest::module::GuestModule;
use crate::guest::store::Footprint;
use crate::guest::streamed::{GuestEnd, GuestRun, Record, StreamedBody};

/// The response head a guest set, with the body still coming.
type Head = Result<Response<HyperOutgoingBody>, ErrorCode>;

/// What stopped the wait for the head: the head, or the guest's end.
enum Waited {
    Head(Result<Head, oneshot::error::RecvError>),
    Ended(Result<(), InvokeError>),
}

/// Runs `module`'s component for `request`; `hold` (its slot, its permit) is released when
/// the guest returns. Returns the response head and how the guest's end will be known.
///
/// Until the head, the guest is polled right here, in the caller's task: a guest that
/// answers at once (most do) runs start to finish without a task of its own, and if the
/// caller is dropped (the client hung up) the guest is dropped with it. A guest still
/// running when its head is set goes on in a task of its own, so that its deadline holds
/// whether or not the client reads the body.
pub(crate) async fn exchange<B: RequestBody>(
    module: Arc<GuestModule>,
    pre: ProxyPre<ComponentStore>,
    request: hyper::Request<GuestBody<B>>,
    started: Instant,
    hold: impl Send + 'static,
) -> Result<(Response<HyperOutgoingBody>, GuestEnd), InvokeError> {
    let name = module.name.clone();
    let metrics = module.shared.metrics.clone();
    let (head_tx, mut head_rx) = oneshot::channel::<Head>();
    let mut guest: GuestRun = Box::pin(async move {
        let _hold = hold;
        run(&module, &pre, request, head_tx, started).await
    });
    let waited = std::future::poll_fn(|cx| {
        if let Poll::Ready(head) = Pin::new(&mut head_rx).poll(cx) {
            return Poll::Ready(Waited::Head(head));
        }
        guest.as_mut().poll(cx).map(Waited::Ended)
    })
    .await;
    let error_response = |code: ErrorCode| InvokeError::ErrorResponse {
        module: name.clone(),
        code: format!("{code:?}"),
    };
    let first_byte = || metrics.first_byte(started.elapsed());
    match waited {
        Waited::Head(Ok(Ok(head))) => {
            first_byte();
            Ok((head, GuestEnd::spawn(guest)))
        }
        Waited::Head(Ok(Err(code))) => Err(error_response(code)),
        // The guest dropped its response-outparam unset; its end says why.
        Waited::Head(Err(_)) => Err(guest
            .await
            .err()
            .unwrap_or(InvokeError::NoResponse { module: name })),
        Waited::Ended(ended) => match head_rx.try_recv() {
            Ok(Ok(head)) => {
                first_byte();
                Ok((head, GuestEnd::Ended(ended)))
            }
            Ok(Err(code)) => Err(error_response(code)),
            Err(_) => Err(ended
                .err()
                .unwrap_or(InvokeError::NoResponse { module: name })),
        },
    }
}

/// Why [`respond_whole`] produced no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpFailure {
    #[error("module '{module}' is a CGI module, not a wasi:http component")]
    NotComponent { module: Arc<str> },
    #[error("module '{module}': the request body is larger than {limit} bytes")]
    BodyTooLarge { module: Arc<str>, limit: u64 },
    #[error(transparent)]
    Guest(#[from] InvokeError),
}

/// One whole exchange with component `module`, as the gateway would serve `request` on a
/// connection `conn`, with the response body collected (within the output cap): for the
/// tests and the benches.
pub async fn respond_whole<B: RequestBody>(
    module: Arc<GuestModule>,
    request: http::Request<B>,
    conn: ConnInfo,
) -> Result<Response<Bytes>, HttpFailure> {
    let (head, body) = respond_streamed(module, request, conn).await?.into_parts();
    let body = body.collect().await.map_err(|cut| cut.0)?.to_bytes();
    Ok(Response::from_parts(head, body))
}

/// One exchange with component `module`, as the gateway would serve `request` on a
/// connection `conn`: its head, and its body as the guest writes it (for `run`).
pub(crate) async fn respond_streamed<B: RequestBody>(
    module: Arc<GuestModule>,
    request: http::Request<B>,
    conn: ConnInfo,
) -> Result<Response<StreamedBody<HyperOutgoingBody>>, HttpFailure> {
    let started = Instant::now();
    let Prepared::Http(pre) = &module.prepared else {
        return Err(HttpFailure::NotComponent {
            module: module.name.clone(),
        });
    };
    let pre = pre.clone();
    let settings = &module.settings;
    let limits = settings.limits;
    let (parts, body) = request.into_parts();
    let too_large = || HttpFailure::BodyTooLarge {
        module: module.name.clone(),
        limit: limits.max_body_bytes,
    };
    if body.size_hint().lower() > limits.max_body_bytes {
        return Err(too_large());
    }
    let bounds = BodyBounds {
        max_bytes: limits.max_body_bytes,
        deadline: None,
    };
    let (request, watch) = guest_request(parts, body, conn, bounds, settings.pass_authorization);
    let ran = exchange(module.clone(), pre, request, started, ()).await;
    if watch.over_limit() {
        return Err(too_large());
    }
    let (head, end) = ran?;
    if declared_length(head.headers()).is_some_and(|len| len > limits.max_output_bytes) {
        return Err(InvokeError::OutputTooLarge {
            module: module.name.clone(),
            limit: limits.max_output_bytes,
        }
        .into());
    }
    let record = Record::new(module.shared.metrics.clone(), started);
    let declared = declared_length(head.headers());
    Ok(head.map(|body| StreamedBody::new(body, declared, end, limits.max_output_bytes, record)))
}

/// Instantiates the component in a fresh store, calls its handler, and names how it ended.
async fn run<B: RequestBody>(
    module: &GuestModule,
    pre: &ProxyPre<ComponentStore>,
    request: hyper::Request<GuestBody<B>>,
    head: oneshot::Sender<Head>,
    started: Instant,
) -> Result<(), InvokeError> {
    let bounds = Bounds::new(module, started);
    let mut store = bounds.store(pre.engine(), component_io(module), Footprint::COMPONENT);
    let budget = Bounds::budget(&store);
    let call = async {
        let mut http = store.data_mut().http();
        let req = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(Failure::Instantiate)?;
        let out = http
            .new_response_outparam(head)
            .map_err(Failure::Instantiate)?;
        let instantiating = Instant::now();
        let proxy = pre
            .instantiate_async(&mut store)
            .await
            .map_err(Failure::Instantiate)?;
        module.metrics().instantiated(instantiating.elapsed());
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
            .map_err(Failure::Run)
    };
    let result = unless_past(bounds.deadline, call)
        .await
        .unwrap_or_else(|| Err(Failure::Run(DeadlinePassed.into())));
    bounds.record_fuel(&store, budget, module.metrics());
    let ended = bounds.name(&store, result, OutputFate::Kept);
    if let Err(InvokeError::Timeout { .. }) = &ended {
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
