//! wasi:http 0.3: a component exporting `wasi:http/handler@0.3` (the `wasi:http/service`
//! world) is run as a 0.2 component is (`exchange.rs`): a fresh instance per request, the
//! same bounds, the head as soon as the guest returns it. What differs is how it runs:
//! `handle` is an async export, called inside the store's event loop
//! (`run_concurrent`), and it returns its response while the guest's own tasks go on
//! writing the body through that loop, so the loop runs until the body has ended or the
//! client is gone ([`Tracked`]). A deadline, fuel or a trap ends the loop, and the guest,
//! as for 0.2.
//!
//! Instances are not reused between requests, as `wasmtime serve` does for 0.3 components
//! (up to 128 requests an instance): the isolation every other module has (a request
//! never sees another's memory) holds for 0.3 components too.

use std::sync::Arc;
use std::time::Instant;

use http::uri::{Scheme, Uri};
use http::{Request, header::HOST};
use tokio::sync::oneshot;
use wasmtime::component::Accessor;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};

use super::exchange::{ComponentAbi, Head, component_io, finish, not_this_abi};
use super::io::ComponentStore;
use super::request::ComponentBody;
use super::tracked::{ServiceBody, Tracked};
use crate::guest::body::RequestBody;
use crate::guest::bounds::{Bounds, Failure as RunFailure, GuestError};
use crate::guest::conn::ConnInfo;
use crate::guest::exchange::Failure;
use crate::guest::linkers::Prepared;
use crate::guest::module::GuestModule;
use crate::guest::reply_body::ReplyBody;
use crate::guest::store::Footprint;
use crate::guest::streamed::{GuestRun, StreamedBody};

/// A `wasi:http/handler@0.3` component.
pub(crate) struct Service03;

impl ComponentAbi for Service03 {
    type Body = ServiceBody;
    type Code = ErrorCode;

    fn run<B: RequestBody>(
        module: &Arc<GuestModule>,
        request: Request<ComponentBody<B>>,
        conn: ConnInfo,
        head: oneshot::Sender<Head<Self>>,
        started: Instant,
    ) -> Result<GuestRun, Failure> {
        let Prepared::Service(pre) = &module.prepared else {
            return Err(not_this_abi(module, "wasi:http 0.3"));
        };
        let (module, pre) = (module.clone(), pre.clone());
        let request = absolute(request, conn.secure);
        Ok(Box::pin(async move {
            run(&module, &pre, request, head, started).await
        }))
    }

    fn reply_body(body: StreamedBody<ServiceBody>) -> ReplyBody {
        ReplyBody::Service(body)
    }
}

/// The request with its scheme and authority in its URI, where a 0.3 guest reads them.
fn absolute<B>(mut request: Request<B>, secure: bool) -> Request<B> {
    let scheme = match secure {
        true => Scheme::HTTPS,
        false => Scheme::HTTP,
    };
    let authority = request.headers().get(HOST).and_then(|h| h.to_str().ok());
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(scheme);
    parts.authority = authority.and_then(|a| a.parse().ok());
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// Instantiates the component in a fresh store, calls its handler inside the store's
/// event loop, and names how it ended.
async fn run<B: RequestBody>(
    module: &GuestModule,
    pre: &ServicePre<ComponentStore>,
    request: Request<ComponentBody<B>>,
    head: oneshot::Sender<Head<Service03>>,
    started: Instant,
) -> Result<(), GuestError> {
    let bounds = Bounds::new(module, started);
    let mut store = bounds.store(pre.engine(), component_io(module), Footprint::COMPONENT);
    let budget = Bounds::budget(&store);
    let call = async {
        let instantiating = Instant::now();
        let service = pre
            .instantiate_async(&mut store)
            .await
            .map_err(RunFailure::Instantiate)?;
        module.metrics().instantiated(instantiating.elapsed());
        let hooks = store.data_mut().http().hooks;
        let (request, _request_errors) = wasmtime_wasi_http::p3::Request::from_http(hooks, request);
        store
            .run_concurrent(async |store| answer(store, &service, request, head).await)
            .await
            .and_then(|answered| answered)
            .map_err(RunFailure::Run)
    };
    let result = bounds.before_deadline(call).await;
    finish(module, &bounds, &store, budget, result)
}

/// Calls the handler and sends its answer on `head`; with a response, keeps the event loop
/// (this call) running until its body has ended or been dropped.
async fn answer(
    store: &Accessor<ComponentStore>,
    service: &Service,
    request: wasmtime_wasi_http::p3::Request,
    head: oneshot::Sender<Head<Service03>>,
) -> wasmtime::Result<()> {
    let response = match service.handle(store, request).await? {
        Ok(response) => response,
        Err(code) => {
            let _ = head.send(Err(code));
            return Ok(());
        }
    };
    let response = store.with(|store| response.into_http(store, async { Ok(()) }))?;
    let (ended, body_over) = oneshot::channel();
    let tracked = response.map(|body| Tracked::new(body, ended));
    if head.send(Ok(tracked)).is_ok() {
        let _ = body_over.await;
    }
    Ok(())
}
