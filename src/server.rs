//! The public HTTP side: routes `/NAME/rest` to module NAME, reads the body within its
//! limit, waits for a pool slot, runs the guest and turns what it wrote into a response.
//!
//! The module name is validated as received (no percent-decoding) before the registry is
//! consulted, and the registry is the only thing consulted: a request never touches the
//! filesystem.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use crate::body::{BodyError, read_limited};
use crate::cgi::{self, RequestMeta};
use crate::compile::LoadedModule;
use crate::invoke::invoke;
use crate::listener::ConnInfo;
use crate::metrics::{Metrics, ModuleMetrics};
use crate::name::ModuleName;
use crate::outcome::Outcome;
use crate::registry::{Lookup, Registry};

/// What an overloaded gateway suggests in `Retry-After`, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Everything the public handler needs, shared by all connections.
pub struct PublicService {
    pub registry: Arc<Registry>,
    /// One permit per pool slot: guests running at once.
    pub slots: Arc<Semaphore>,
    pub queue_timeout: Duration,
    /// A slow client must send its whole body within this time.
    pub body_timeout: Duration,
    pub metrics: Metrics,
    /// Whether every request is logged (target `wasmgate::access`).
    pub access_log: bool,
}

/// A response that ends a request early, with its outcome.
struct Early(Outcome, String);

impl PublicService {
    /// Answers one request; never fails, every problem becomes an error response.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let access = self
            .access_log
            .then(|| (req.method().clone(), req.uri().path().to_string()));
        // Requests are counted under `_unknown` until they name a module file that exists.
        let mut metrics = None;
        let result = self.run(req, conn, &mut metrics).await;
        let took = started.elapsed();
        let metrics = metrics.unwrap_or_else(|| self.metrics.unknown());
        let (outcome, response) = match result {
            Ok(response) => (Outcome::Ok, response),
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
                (outcome, error_response(outcome, &message))
            }
        };
        metrics.request(outcome, took);
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

    async fn run(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
        metrics: &mut Option<Arc<ModuleMetrics>>,
    ) -> Result<Response<Full<Bytes>>, Early> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let (raw_name, path_info) = split_path(path);
        let name = ModuleName::parse(raw_name).map_err(|e| match raw_name {
            "" => Early(Outcome::NotFound, "no module named in the path".into()),
            _ => Early(Outcome::BadRequest, format!("invalid module name: {e}")),
        })?;
        let module = match self.registry.lookup(name.as_str()) {
            Lookup::Ready(module) => module,
            Lookup::NotFound => {
                return Err(Early(
                    Outcome::NotFound,
                    format!("no module named '{name}'"),
                ));
            }
            Lookup::Unavailable(failure) => {
                *metrics = Some(self.metrics.module(name.as_str()));
                return Err(Early(
                    Outcome::Unavailable,
                    format!("module '{name}' is unavailable: {}", failure.error),
                ));
            }
        };
        *metrics = Some(module.metrics.clone());
        let _in_flight = module.metrics.in_flight();
        if parts.headers.get_all(HOST).iter().count() > 1 {
            // RFC 9112 3.2: a request with more than one Host is invalid.
            return Err(Early(
                Outcome::BadRequest,
                "more than one Host header".into(),
            ));
        }
        let body = read_body(&module, &parts.headers, body, self.body_timeout).await?;
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
            body_len: body.len(),
        };
        let env = cgi::build_env(&meta, &module.settings)
            .map_err(|e| Early(Outcome::BadRequest, format!("module '{name}': {e}")))?;
        let _slot = self.acquire_slot(&module).await?;
        let invoked = Instant::now();
        let run = invoke(&module, env, body).await.map_err(|e| {
            if e.outcome() == Outcome::Timeout {
                let deadline = Duration::from_millis(module.settings.limits.timeout_ms);
                self.metrics
                    .timeout_overshoot(invoked.elapsed().saturating_sub(deadline));
            }
            Early(e.outcome(), e.to_string())
        })?;
        let out = cgi::parse_output(run.stdout)
            .map_err(|e| Early(Outcome::BadOutput, format!("module '{name}': {e}")))?;
        let mut response = Response::new(Full::new(out.body));
        *response.status_mut() = out.status;
        *response.headers_mut() = out.headers;
        Ok(response)
    }

    /// Waits up to the queue timeout for a pool slot.
    async fn acquire_slot(
        &self,
        module: &LoadedModule,
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

/// Reads the body within the module's limit; every failure names the module.
async fn read_body(
    module: &LoadedModule,
    headers: &http::HeaderMap,
    body: Incoming,
    timeout: Duration,
) -> Result<Bytes, Early> {
    let limit = module.settings.limits.max_body_bytes;
    let name = &module.name;
    read_limited(headers, body, limit, timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => Early(
                Outcome::BodyTooLarge,
                format!("module '{name}': request body larger than {limit} bytes"),
            ),
            BodyError::Unreadable => Early(
                Outcome::BadRequest,
                format!("module '{name}': the request body could not be read"),
            ),
            BodyError::TimedOut => Early(
                Outcome::BadRequest,
                format!("module '{name}': the request body was not received in time"),
            ),
        })
}

/// A short plain-text error naming the module and the reason.
pub fn error_response(outcome: Outcome, message: &str) -> Response<Full<Bytes>> {
    let mut response = text_response(outcome.status(), message);
    if outcome == Outcome::Overloaded {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    response
}

/// A plain-text response with `status` (for the admin listener's simple answers).
pub fn text_response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    response
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
