//! The admin listener: a status page, health, readiness, the module list and the
//! Prometheus metrics, on an address of its own so that none of it is reachable through
//! the public port.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Incoming;

use tokio::sync::Semaphore;

use super::admin_host;
use super::listener::ConnInfo;
use super::reply::text_response;
use super::status_page;
use crate::catalogue::{ArtifactCache, ModuleTable};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// The content type of the Prometheus text format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the admin handler reads.
pub(crate) struct AdminService {
    pub(crate) table: Arc<ModuleTable>,
    pub(crate) shutdown: Shutdown,
    pub(crate) metrics: Metrics,
    pub(crate) cache: Option<Arc<ArtifactCache>>,
    /// The pool's slot semaphore and size, to report the slots in use.
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) max_instances: usize,
    /// Names besides addresses and `localhost` the listener answers (`admin_hosts`).
    pub(crate) admin_hosts: Vec<String>,
}

impl AdminService {
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        _conn: ConnInfo,
    ) -> Response<Full<Bytes>> {
        if !admin_host::answers(req.headers(), &self.admin_hosts) {
            return text_response(
                StatusCode::MISDIRECTED_REQUEST,
                "this Host is not the admin listener's (see admin_hosts)",
            );
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here");
        }
        let path = req.uri().path();
        if let Some(page) = status_page::asset(path) {
            return page;
        }
        match path {
            "/healthz" => text_response(StatusCode::OK, "ok"),
            "/readyz" => self.readyz(),
            "/modules" => self.modules(),
            "/metrics" => self.metrics(),
            _ => text_response(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn readyz(&self) -> Response<Full<Bytes>> {
        if self.shutdown.is_triggered() {
            text_response(StatusCode::SERVICE_UNAVAILABLE, "draining")
        } else if self.table.is_ready() {
            text_response(StatusCode::OK, "ready")
        } else {
            text_response(StatusCode::SERVICE_UNAVAILABLE, "loading modules")
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        self.metrics.set_slots_in_use(
            self.max_instances
                .saturating_sub(self.slots.available_permits()),
        );
        if let Some(cache) = &self.cache {
            let s = &cache.stats;
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            self.metrics.cache_totals(
                load(&s.hits),
                load(&s.misses),
                load(&s.discarded),
                load(&s.evicted),
            );
        }
        let mut response = Response::new(Full::new(Bytes::from(self.metrics.render())));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
        );
        response
    }

    fn modules(&self) -> Response<Full<Bytes>> {
        match serde_json::to_vec(&self.table.statuses()) {
            Ok(json) => {
                let mut response = Response::new(Full::new(Bytes::from(json)));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            Err(e) => text_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
}
