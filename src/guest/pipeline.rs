//! One request through a guest, the same for both ABIs and for `serve` and `run`:
//! admission (the module's permit, a pool slot and the in-flight count, one guard), the
//! body under one size limit and one body timeout, the run under its bounds, the race
//! between the guest's response head and its end, the first-byte metric, and one count
//! per request ([`Count`]). Each ABI supplies only its two conversions, the request in and
//! the head and body out ([`Exchange`], in `cgi/exchange.rs` and `wasi_http/exchange.rs`).
//!
//! Until the head, the guest is polled right here, in the caller's task: a guest that
//! answers at once (most do) runs start to finish without a task of its own, and if the
//! caller is dropped (the client hung up) the guest is dropped with it. A guest still
//! running once its head is out goes on in a task of its own, which holds what it was
//! admitted with until it returns, so that its deadline holds whether or not the client
//! reads the body.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body::{BodyError, BodyFault, LimitedBody, RequestBody, refuse_declared_oversize};
use super::bounds::GuestError;
use super::cgi::exchange::CgiExchange;
use super::conn::ConnInfo;
use super::exchange::{Exchange, Failure, Reply};
use super::headers::forbid_sniffing;
use super::linkers::Prepared;
use super::module::GuestModule;
use super::reply_body::ReplyBody;
use super::streamed::{Count, GuestEnd, GuestRun, StreamedBody};
use super::wasi_http::exchange::{ComponentExchange, Proxy02};
use super::wasi_http::service::Service03;
use crate::metrics::{GaugeGuard, Metrics};
use crate::outcome::Outcome;

/// What admits a request to a guest: the pool's slots and how long a request waits for
/// one, and how long a client may take to send its body.
pub(crate) struct Gate {
    /// One permit per pool slot: guests running at once, across all modules.
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    /// A slow client must send its whole body within this time; `None` waits for it.
    body_timeout: Option<Duration>,
    /// Where requests waiting for a slot are counted.
    metrics: Metrics,
}

impl Gate {
    pub(crate) fn new(
        slots: Arc<Semaphore>,
        queue_timeout: Duration,
        body_timeout: Duration,
        metrics: Metrics,
    ) -> Gate {
        Gate {
            slots,
            queue_timeout,
            body_timeout: Some(body_timeout),
            metrics,
        }
    }

    /// No pool to wait for and no body timeout: `run` (whose body is its own stdin), the
    /// tests and the benches. The module's `max_concurrency` still holds.
    pub(crate) fn unbounded() -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            queue_timeout: Duration::ZERO,
            body_timeout: None,
            metrics: Metrics::disabled(),
        }
    }

    /// One of the module's `max_concurrency` permits, or a 503 at once (one module cannot
    /// take every slot of the pool); then a pool slot, within the queue timeout.
    async fn admit(&self, module: &GuestModule, admitted: &mut Admitted) -> Result<(), Failure> {
        let guests = module.shared.guests.clone();
        let guest = guests.try_acquire_owned().map_err(|_| {
            module.metrics().concurrency_limited();
            Failure::Overloaded(format!(
                "module '{}' is running its max_concurrency of {} guests, try again shortly",
                module.name, module.settings.limits.max_concurrency
            ))
        })?;
        admitted.guest = Some(guest);
        admitted.slot = Some(self.slot(module).await?);
        Ok(())
    }

    /// Waits up to the queue timeout for a pool slot.
    async fn slot(&self, module: &GuestModule) -> Result<OwnedSemaphorePermit, Failure> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = self.metrics.waiting_for_slot();
        match tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Failure::Overloaded(format!(
                "module '{}': every instance slot is busy, try again shortly",
                module.name
            ))),
        }
    }
}

/// What a request holds from its arrival at its module until its guest returns: its
/// place in the module's in-flight count, then its module's permit and its pool slot.
/// Dropping it gives all of them back.
pub(crate) struct Admitted {
    _in_flight: GaugeGuard,
    guest: Option<OwnedSemaphorePermit>,
    slot: Option<OwnedSemaphorePermit>,
}

/// A response from a guest (whole, or its head with the body still coming) or the
/// failure that took its place. Either way, the request's [`Count`] is taken care of:
/// counted, or handed to the streaming body that counts it when it ends.
pub(crate) type Answer = Result<Response<ReplyBody>, (Failure, Count)>;

/// Runs `module` for `request`, arrived on `conn`, admitted by `gate`, counted by `count`.
pub(crate) async fn respond<B: RequestBody>(
    module: Arc<GuestModule>,
    request: Request<B>,
    conn: ConnInfo,
    gate: &Gate,
    count: Count,
) -> Answer {
    match &module.prepared {
        Prepared::Cgi(_) => run::<CgiExchange, B>(module, request, conn, gate, count).await,
        Prepared::Http(_) => {
            run::<ComponentExchange<Proxy02>, B>(module, request, conn, gate, count).await
        }
        Prepared::Service(_) => {
            run::<ComponentExchange<Service03>, B>(module, request, conn, gate, count).await
        }
    }
}

/// [`respond`] through exchange `X`.
async fn run<X: Exchange, B: RequestBody>(
    module: Arc<GuestModule>,
    request: Request<B>,
    conn: ConnInfo,
    gate: &Gate,
    count: Count,
) -> Answer {
    let mut admitted = Admitted {
        _in_flight: module.metrics().in_flight(),
        guest: None,
        slot: None,
    };
    let started = count.started();
    let result = async {
        let (parts, mut body) = request.into_parts();
        check_host(&parts.headers)?;
        let limit = module.settings.limits.max_body_bytes;
        refuse_declared_oversize(&parts.headers, &mut body, limit)
            .await
            .map_err(|e| body_error(&module, e))?;
        gate.admit(&module, &mut admitted).await?;
        let deadline = gate.body_timeout.map(|timeout| started + timeout);
        let (body, fault) = LimitedBody::new(body, limit, deadline);
        let method = parts.method.clone();
        let (guest, exchange) = X::start(
            &module,
            Request::from_parts(parts, body),
            conn,
            Instant::now(),
        )?;
        let guest = hold_until_returned(guest, admitted, fault.clone(), module.clone());
        let reply = head_or_end(guest, exchange, &module, &fault).await?;
        module.metrics().first_byte(started.elapsed());
        Ok((reply, method))
    }
    .await;
    match result {
        Ok((Reply::Whole(mut response), _)) => {
            count.count(Outcome::Ok);
            forbid_sniffing(response.headers_mut());
            Ok(response.map(|body| ReplyBody::Whole(Full::new(body))))
        }
        Ok((Reply::Head(mut head, end), method)) => {
            forbid_sniffing(head.headers_mut());
            let limit = module.settings.limits.max_output_bytes;
            let declared = X::declared(&head);
            if declared.is_some_and(|len| len > limit) {
                let failure = GuestError::OutputTooLarge {
                    module: module.name.clone(),
                    limit,
                };
                return Err((failure.into(), count));
            }
            let response = head
                .map(|inner| X::reply_body(StreamedBody::new(inner, declared, end, limit, count)));
            Ok(bodiless_if_no_body(response, &method))
        }
        Err(failure) => Err((failure, count)),
    }
}

/// The guest's run, holding what it was admitted with until it returns; a body that broke
/// off, arrived too slowly or passed its limit names the run's end.
fn hold_until_returned(
    guest: GuestRun,
    admitted: Admitted,
    fault: BodyFault,
    module: Arc<GuestModule>,
) -> GuestRun {
    Box::pin(async move {
        let _admitted = admitted;
        let ended = guest.await;
        match fault.get() {
            Some(error) => Err(body_error(&module, error)),
            None => ended,
        }
    })
}

/// Polls `guest` and `exchange` until the guest returns or its head is out, whichever is
/// first; a guest still running then goes on in a task of its own.
async fn head_or_end<X: Exchange>(
    mut guest: GuestRun,
    mut exchange: X,
    module: &GuestModule,
    fault: &BodyFault,
) -> Result<Reply<X::Body>, Failure> {
    enum Waited<B> {
        Ended(Result<(), GuestError>),
        Head(Result<Response<B>, Failure>),
    }
    let waited = std::future::poll_fn(|cx| {
        if let Poll::Ready(ended) = guest.as_mut().poll(cx) {
            return Poll::Ready(Waited::Ended(ended));
        }
        exchange.poll_head(cx).map(Waited::Head)
    })
    .await;
    // A body that failed names the answer, whatever the guest made of it (a component
    // may answer its own read error with a 500).
    if let Some(error) = fault.get() {
        return Err(body_error(module, error).into());
    }
    match waited {
        Waited::Ended(ended) => exchange.ended(ended),
        // Dropping the guest stops it.
        Waited::Head(Err(failure)) => Err(failure),
        Waited::Head(Ok(head)) => {
            let end = GuestEnd::spawn(exchange.detach(guest));
            Ok(Reply::Head(head, end))
        }
    }
}

/// A streamed response; one that carries no body (the answer to HEAD, a 204, a 304) goes
/// out as its head alone, and its guest is stopped then, its slot freed.
fn bodiless_if_no_body(mut response: Response<ReplyBody>, method: &Method) -> Response<ReplyBody> {
    let status = response.status();
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        std::mem::replace(response.body_mut(), ReplyBody::Whole(Full::default())).end_bodiless();
    }
    response
}

/// RFC 9112 3.2: a request with more than one Host is invalid.
fn check_host(headers: &HeaderMap) -> Result<(), Failure> {
    match headers.get_all(HOST).iter().count() {
        0 | 1 => Ok(()),
        _ => Err(Failure::BadRequest("more than one Host header")),
    }
}

/// The error for a request body that could not be given to `module` whole.
fn body_error(module: &GuestModule, error: BodyError) -> GuestError {
    GuestError::body(&module.name, module.settings.limits.max_body_bytes, error)
}
