//! The public HTTP side: routes `/NAME/rest` to module NAME, waits for a pool slot and runs
//! the guest. The request body streams to the guest as it arrives (a CGI guest's stdin, a
//! component's body), within its limit, and the response comes back whole when the guest
//! finishes quickly, streamed when it does not.
//!
//! The module name is validated as received (no percent-decoding) before the registry is
//! consulted, and the registry is the only thing consulted: a request never touches the
//! filesystem.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Body;
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::listener::ConnInfo;
use super::public_body::PublicBody;
use super::reply::error_response;
use crate::catalogue::registry::{Lookup, Registry};
use crate::config::name::ModuleName;
use crate::guest::body::{BodyError, BodyReader, declared_length, refuse_declared_oversize};
use crate::guest::bounds::InvokeError;
use crate::guest::cgi::env::RequestMeta;
use crate::guest::cgi::exchange::{CgiReply, GuestStdin, exchange as cgi_exchange};
use crate::guest::cgi::stdin::{BodyStream, Stdin};
use crate::guest::linkers::Prepared;
use crate::guest::module::GuestModule;
use crate::guest::streamed::{Record, StreamedBody};
use crate::guest::wasi_http::exchange::exchange;
use crate::guest::wasi_http::io::ComponentStore;
use crate::guest::wasi_http::request::{BodyBounds, guest_request};
use crate::metrics::{Metrics, ModuleMetrics};
use crate::outcome::Outcome;

/// Everything the public handler needs, shared by all connections.
pub(crate) struct PublicService {
    pub(crate) registry: Arc<Registry>,
    /// One permit per pool slot: guests running at once.
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) queue_timeout: Duration,
    /// A slow client must send its whole body within this time.
    pub(crate) body_timeout: Duration,
    pub(crate) metrics: Metrics,
    /// Whether every request is logged (target `wasmgate::access`).
    pub(crate) access_log: bool,
}

/// A response that ends a request early, with its outcome.
struct Early(Outcome, String);

impl From<InvokeError> for Early {
    fn from(e: InvokeError) -> Early {
        Early(e.outcome(), e.to_string())
    }
}

/// A response, and who counts the request in the metrics.
enum Reply {
    /// Complete: the handler counts it.
    Whole(Response<PublicBody>),
    /// Still streaming: its body counts it when it ends.
    Streaming(Response<PublicBody>),
}

/// A module file that the path names.
enum Found {
    Ready(Arc<GuestModule>),
    /// No version of it loaded: the answer, and the series to count it in.
    Unavailable(Early, Arc<ModuleMetrics>),
}

impl PublicService {
    /// Answers one request; never fails, every problem becomes an error response.
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<PublicBody> {
        let started = Instant::now();
        let access = self
            .access_log
            .then(|| (req.method().clone(), req.uri().path().to_string()));
        let routed = self.route(&req);
        // Requests are counted under `_unknown` unless they name a module file that exists.
        let metrics = match &routed {
            Ok(Found::Ready(module)) => module.shared.metrics.clone(),
            Ok(Found::Unavailable(_, metrics)) => metrics.clone(),
            Err(_) => self.metrics.unknown(),
        };
        let unanswered = Unanswered {
            metrics: &metrics,
            started,
        };
        let result = match routed {
            Ok(Found::Ready(module)) => match &module.prepared {
                Prepared::Cgi(_) => self.run(module, req, conn, started).await,
                Prepared::Http(pre) => {
                    let pre = pre.clone();
                    self.run_component(module, pre, req, conn, started).await
                }
            },
            Ok(Found::Unavailable(early, _)) | Err(early) => Err(early),
        };
        std::mem::forget(unanswered);
        let took = started.elapsed();
        let (outcome, response, counted) = match result {
            Ok(Reply::Whole(response)) => (Outcome::Ok, response, false),
            Ok(Reply::Streaming(response)) => (Outcome::Ok, response, true),
            Err(Early(outcome, message)) => {
                if outcome.is_guest_failure() {
                    tracing::warn!(
                        target: "wasmgate::request",
                        module = %metrics.name,
                        outcome = outcome.label(),
                        duration_ms = took.as_secs_f64() * 1000.0,
                        "{message}"
                    );
                }
                (
                    outcome,
                    error_response(outcome, &message).map(PublicBody::from),
                    false,
                )
            }
        };
        if !counted {
            metrics.request(outcome, took);
        }
        if let Some((method, path)) = access {
            tracing::info!(
                target: "wasmgate::access",
                %method,
                path,
                status = response.status().as_u16(),
                outcome = outcome.label(),
                duration_us = took.as_micros() as u64,
                remote = %conn.remote,
            );
        }
        response
    }

    /// Finds the module the path names, without touching the request's body.
    fn route(&self, req: &Request<Incoming>) -> Result<Found, Early> {
        let (raw_name, _) = split_path(req.uri().path());
        let name = ModuleName::parse(raw_name).map_err(|e| match raw_name {
            "" => Early(Outcome::NotFound, "no module named in the path".into()),
            _ => Early(Outcome::BadRequest, format!("invalid module name: {e}")),
        })?;
        match self.registry.lookup(name.as_str()) {
            Lookup::Ready(module) => Ok(Found::Ready(module.guest.clone())),
            Lookup::NotFound => Err(Early(
                Outcome::NotFound,
                format!("no module named '{name}'"),
            )),
            Lookup::Unavailable(failure, metrics) => Ok(Found::Unavailable(
                Early(
                    Outcome::Unavailable,
                    format!("module '{name}' is unavailable: {}", failure.error),
                ),
                metrics,
            )),
        }
    }

    /// Runs CGI `module` for the request: a slot, the guest with the body as its stdin as
    /// it arrives, and its stdout as the response.
    async fn run(
        &self,
        module: Arc<GuestModule>,
        req: Request<Incoming>,
        conn: ConnInfo,
        started: Instant,
    ) -> Result<Reply, Early> {
        let in_flight = module.metrics().in_flight();
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let (_, path_info) = split_path(path);
        check_host(&parts.headers)?;
        let (stdin, body_len) = self.stdin(&module, &parts.headers, body, started).await?;
        let meta = RequestMeta {
            module: &module.name,
            method: parts.method.as_str(),
            path,
            path_info,
            query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            remote: conn.remote,
            local: conn.local,
            protocol: protocol_name(parts.version),
            body_len,
        };
        let guest = HeldPermit::new(&module.shared.guests, running_guest(&module)?);
        let slot = HeldPermit::new(&self.slots, self.acquire_slot(&module).await?);
        let reply = cgi_exchange(
            module.clone(),
            &meta,
            stdin,
            started,
            (guest, slot, in_flight),
        )
        .await
        .map_err(|e| Early(e.outcome(), e.to_string()))?;
        Ok(match reply {
            CgiReply::Whole(out) => {
                let mut response = Response::new(PublicBody::Whole(Full::new(out.body)));
                *response.status_mut() = out.status;
                *response.headers_mut() = out.headers;
                Reply::Whole(response)
            }
            CgiReply::Streaming(head, body) => {
                let mut response = Response::new(PublicBody::Cgi(body));
                *response.status_mut() = head.status;
                *response.headers_mut() = head.headers;
                streaming(response, &parts.method)
            }
        })
    }

    /// The guest's stdin for a request `body`, and the length it declares: a body that
    /// declares more than the module's limit is refused before the guest runs; any other
    /// streams to the guest as it arrives, within the body timeout.
    async fn stdin(
        &self,
        module: &GuestModule,
        headers: &HeaderMap,
        mut body: Incoming,
        started: Instant,
    ) -> Result<(GuestStdin, Option<u64>), Early> {
        if body.is_end_stream() {
            let stdin = GuestStdin {
                stdin: Stdin::Buffered(Default::default()),
                fault: None,
            };
            return Ok((stdin, Some(0)));
        }
        let limit = module.settings.limits.max_body_bytes;
        refuse_declared_oversize(headers, &mut body, limit)
            .await
            .map_err(|e| body_refused(module, e))?;
        let reader = BodyReader::new(body, started + self.body_timeout);
        let (stream, fault) = BodyStream::new(reader, limit);
        let stdin = GuestStdin {
            stdin: Stdin::Streamed(stream),
            fault: Some(fault),
        };
        Ok((stdin, declared_length(headers)))
    }

    /// Runs component `module` for the request: its body streams in within the limit, its
    /// response streams out within the output cap, and it is counted when it ends.
    async fn run_component(
        &self,
        module: Arc<GuestModule>,
        pre: ProxyPre<ComponentStore>,
        req: Request<Incoming>,
        conn: ConnInfo,
        started: Instant,
    ) -> Result<Reply, Early> {
        let in_flight = module.metrics().in_flight();
        let (parts, mut body) = req.into_parts();
        let method = parts.method.clone();
        check_host(&parts.headers)?;
        let limits = module.settings.limits;
        refuse_declared_oversize(&parts.headers, &mut body, limits.max_body_bytes)
            .await
            .map_err(|e| body_refused(&module, e))?;
        let guest = HeldPermit::new(&module.shared.guests, running_guest(&module)?);
        let slot = HeldPermit::new(&self.slots, self.acquire_slot(&module).await?);
        let bounds = BodyBounds {
            max_bytes: limits.max_body_bytes,
            deadline: Some(started + self.body_timeout),
        };
        let (request, watch) = guest_request(
            parts,
            body,
            conn,
            bounds,
            module.settings.pass_authorization,
        );
        let ran = exchange(
            module.clone(),
            pre,
            request,
            started,
            (guest, slot, in_flight),
        )
        .await;
        if watch.over_limit() {
            return Err(body_refused(&module, BodyError::TooLarge));
        }
        if watch.timed_out() {
            return Err(body_refused(&module, BodyError::TimedOut));
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
        let response = head.map(|inner| {
            PublicBody::Component(StreamedBody::new(
                inner,
                declared,
                end,
                limits.max_output_bytes,
                record,
            ))
        });
        Ok(streaming(response, &method))
    }

    /// Waits up to the queue timeout for a pool slot.
    async fn acquire_slot(
        &self,
        module: &GuestModule,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, Early> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let _waiting = self.metrics.waiting_for_slot();
        match tokio::time::timeout(self.queue_timeout, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Early(
                Outcome::Overloaded,
                format!(
                    "module '{}': every instance slot is busy, try again shortly",
                    module.name
                ),
            )),
        }
    }
}

/// One of the module's `max_concurrency` permits, or a 503 at once: one module cannot
/// take every slot of the pool.
fn running_guest(module: &GuestModule) -> Result<tokio::sync::SemaphorePermit<'_>, Early> {
    module.shared.guests.try_acquire().map_err(|_| {
        module.metrics().concurrency_limited();
        Early(
            Outcome::Overloaded,
            format!(
                "module '{}' is running its max_concurrency of {} guests, try again shortly",
                module.name, module.settings.limits.max_concurrency
            ),
        )
    })
}

/// A permit that outlives the handler (a streaming guest goes on after its head): it is
/// given back to its semaphore when dropped.
struct HeldPermit(Arc<Semaphore>);

impl HeldPermit {
    fn new(semaphore: &Arc<Semaphore>, permit: tokio::sync::SemaphorePermit<'_>) -> HeldPermit {
        permit.forget();
        HeldPermit(semaphore.clone())
    }
}

impl Drop for HeldPermit {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
}

/// RFC 9112 3.2: a request with more than one Host is invalid.
fn check_host(headers: &HeaderMap) -> Result<(), Early> {
    if headers.get_all(HOST).iter().count() > 1 {
        return Err(Early(
            Outcome::BadRequest,
            "more than one Host header".into(),
        ));
    }
    Ok(())
}

/// `/name/rest?q` → (`name`, `/rest`).
fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    }
}

fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

/// The answer to a body that could not be read, naming the module.
fn body_refused(module: &GuestModule, error: BodyError) -> Early {
    InvokeError::body(&module.name, module.settings.limits.max_body_bytes, error).into()
}

/// A streamed response; one that carries no body (the answer to HEAD, a 204, a 304) goes
/// out as its head alone, and its guest is stopped then, its slot freed.
fn streaming(mut response: Response<PublicBody>, method: &Method) -> Reply {
    let status = response.status();
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        std::mem::replace(response.body_mut(), PublicBody::from(Full::default())).end_bodiless();
    }
    Reply::Streaming(response)
}

/// Counts a request whose handler was dropped before it answered (its client went away),
/// unless forgotten once it has answered.
struct Unanswered<'a> {
    metrics: &'a ModuleMetrics,
    started: Instant,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        self.metrics
            .request(Outcome::ClientGone, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_name_and_rest() {
        assert_eq!(split_path("/hello"), ("hello", ""));
        assert_eq!(split_path("/hello/"), ("hello", "/"));
        assert_eq!(split_path("/hello/a/b"), ("hello", "/a/b"));
        assert_eq!(split_path("/"), ("", ""));
        assert_eq!(split_path("/../x"), ("..", "/x"));
    }
}
