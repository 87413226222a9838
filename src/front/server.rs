//! The public HTTP side: routes `/NAME/rest` to module NAME and hands the request to the
//! guest pipeline (`guest/pipeline.rs`), which admits it, streams its body to the guest
//! and its response back; every failure becomes an error response here, and the access
//! log line is written here.
//!
//! The module name is validated as received (no percent-decoding) before the table is
//! consulted, and the table is the only thing consulted: a request never touches the
//! filesystem.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::Response;
use hyper::body::Incoming;

use super::reply::error_response;
use crate::catalogue::table::{Lookup, ModuleTable};
use crate::config::name::ModuleName;
use crate::guest::conn::ConnInfo;
use crate::guest::exchange::split_path;
use crate::guest::module::GuestModule;
use crate::guest::pipeline::{Gate, respond};
use crate::guest::reply_body::ReplyBody;
use crate::guest::streamed::Count;
use crate::metrics::{Metrics, ModuleMetrics};
use crate::outcome::Outcome;

/// Everything the public handler needs, shared by all connections.
pub(crate) struct PublicService {
    pub(crate) table: Arc<ModuleTable>,
    /// What admits a request to a guest.
    pub(crate) gate: Gate,
    pub(crate) metrics: Metrics,
    /// Whether every request is logged (target `wasmgate::access`).
    pub(crate) access_log: bool,
}

/// How long a request for a module whose first version is being written or compiled
/// waits for it, as requests wait at start-up; past it, a 503 with `Retry-After`.
pub(crate) const LOADING_HOLD: Duration = Duration::from_secs(10);

/// A request answered without its module: the outcome, and the message.
struct Early(Outcome, String);

/// What the path names.
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
    ) -> Response<ReplyBody> {
        let started = Instant::now();
        let access = self
            .access_log
            .then(|| (req.method().clone(), req.uri().path().to_string()));
        // Requests are counted under `_unknown` unless they name a module file that exists.
        let answer = match self.route(&req).await {
            Ok(Found::Ready(module)) => {
                let count = Count::new(module.shared.metrics.clone(), started);
                respond(module, req, conn, &self.gate, count)
                    .await
                    .map_err(|(failure, count)| {
                        (Early(failure.outcome(), failure.to_string()), count)
                    })
            }
            Ok(Found::Unavailable(early, metrics)) => Err((early, Count::new(metrics, started))),
            Err(early) => Err((early, Count::new(self.metrics.unknown(), started))),
        };
        let (outcome, response) = match answer {
            Ok(response) => (Outcome::Ok, response),
            Err((Early(outcome, message), count)) => {
                if outcome.is_guest_failure() {
                    tracing::warn!(
                        target: "wasmgate::request",
                        module = %count.metrics().name,
                        outcome = outcome.label(),
                        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                        "{message}"
                    );
                }
                count.count(outcome);
                (
                    outcome,
                    error_response(outcome, &message).map(ReplyBody::from),
                )
            }
        };
        if let Some((method, path)) = access {
            tracing::info!(
                target: "wasmgate::access",
                %method,
                path,
                status = response.status().as_u16(),
                outcome = outcome.label(),
                duration_us = started.elapsed().as_micros() as u64,
                remote = %conn.remote,
            );
        }
        response
    }

    /// Finds the module the path names, without touching the request's body.
    async fn route(&self, req: &Request<Incoming>) -> Result<Found, Early> {
        let (raw_name, _) = split_path(req.uri().path());
        let name = ModuleName::parse(raw_name).map_err(|e| match raw_name {
            "" => Early(Outcome::NotFound, "no module named in the path".into()),
            _ => Early(Outcome::BadRequest, format!("invalid module name: {e}")),
        })?;
        let found = match self.table.lookup(name.as_str()) {
            // Boxed: the wait is rare, and the future of every request stays small.
            Lookup::Loading(..) => {
                Box::pin(self.table.lookup_settled(name.as_str(), LOADING_HOLD)).await
            }
            found => found,
        };
        match found {
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
            Lookup::Loading(since, metrics) => Ok(Found::Unavailable(
                Early(
                    Outcome::Loading,
                    format!(
                        "module '{name}' is loading: its first version has been on its way \
                         for {} s (being written, then compiled); retry shortly",
                        since.as_secs()
                    ),
                ),
                metrics,
            )),
        }
    }
}
