//! The series of one module, registered once when its name is first seen, so that
//! recording a request is a few atomic operations, with no label formatting, hashing or
//! map lookup on the request path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::PrometheusRecorder;
use metrics_exporter_prometheus::formatting::sanitize_label_value;

use super::histogram::FixedHistogram;
use super::names::*;
use crate::outcome::Outcome;

/// The series of one module, registered once.
pub(crate) struct ModuleMetrics {
    /// The `module` label these series carry.
    pub(crate) name: Arc<str>,
    requests: Vec<Counter>,
    histograms: Arc<RequestHistograms>,
    inflight: Gauge,
    /// The gateway-wide overshoot histogram, kept here so that a guest's run, which knows the
    /// deadline, records it.
    timeout_overshoot: Histogram,
    concurrency_limited: Counter,
    /// One per [`OutboundResult`], in its order.
    outbound: Vec<Counter>,
}

/// The histograms every request of one module records.
pub(super) struct RequestHistograms {
    /// The series' label set as `/metrics` writes it (`module="hello"`).
    pub(super) labels: String,
    pub(super) duration: FixedHistogram,
    pub(super) first_byte: FixedHistogram,
    pub(super) instantiate: FixedHistogram,
    pub(super) fuel: FixedHistogram,
}

impl RequestHistograms {
    pub(super) fn new(module: &str) -> RequestHistograms {
        RequestHistograms {
            labels: format!("module=\"{}\"", sanitize_label_value(module)),
            duration: FixedHistogram::new(DURATION_BUCKETS, NANOS_PER_SECOND),
            first_byte: FixedHistogram::new(DURATION_BUCKETS, NANOS_PER_SECOND),
            instantiate: FixedHistogram::new(DURATION_BUCKETS, NANOS_PER_SECOND),
            fuel: FixedHistogram::new(FUEL_BUCKETS, FUEL_PER_UNIT),
        }
    }
}

impl ModuleMetrics {
    pub(super) fn register(
        recorder: &PrometheusRecorder,
        histograms: &Mutex<BTreeMap<Arc<str>, Arc<RequestHistograms>>>,
        timeout_overshoot: &Histogram,
        name: &str,
    ) -> ModuleMetrics {
        let requests = Outcome::ALL
            .iter()
            .map(|o| {
                let labels = vec![
                    label("module", name),
                    Label::from_static_parts("outcome", o.label()),
                ];
                recorder.register_counter(&Key::from_parts(REQUESTS, labels), &META)
            })
            .collect();
        let name: Arc<str> = Arc::from(name);
        let histograms = histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.clone())
            .or_insert_with(|| Arc::new(RequestHistograms::new(&name)))
            .clone();
        ModuleMetrics {
            inflight: recorder.register_gauge(
                &Key::from_parts(INFLIGHT, vec![label("module", &name)]),
                &META,
            ),
            concurrency_limited: recorder.register_counter(
                &Key::from_parts(CONCURRENCY_LIMITED, vec![label("module", &name)]),
                &META,
            ),
            outbound: OutboundResult::ALL
                .iter()
                .map(|r| {
                    let labels = vec![
                        label("module", &name),
                        Label::from_static_parts("result", r.label()),
                    ];
                    recorder.register_counter(&Key::from_parts(OUTBOUND_REQUESTS, labels), &META)
                })
                .collect(),
            name,
            requests,
            histograms,
            timeout_overshoot: timeout_overshoot.clone(),
        }
    }

    pub(super) fn noop(name: &str) -> ModuleMetrics {
        ModuleMetrics {
            name: Arc::from(name),
            requests: Outcome::ALL.iter().map(|_| Counter::noop()).collect(),
            histograms: Arc::new(RequestHistograms::new(name)),
            inflight: Gauge::noop(),
            timeout_overshoot: Histogram::noop(),
            concurrency_limited: Counter::noop(),
            outbound: OutboundResult::ALL
                .iter()
                .map(|_| Counter::noop())
                .collect(),
        }
    }

    /// Counts one finished request.
    pub(crate) fn request(&self, outcome: Outcome, took: Duration) {
        if let Some(counter) = self.requests.get(outcome.index()) {
            counter.increment(1);
        }
        self.histograms.duration.record(nanos(took));
    }

    /// Records when a guest's response head was ready, counted from the request's arrival.
    pub(crate) fn first_byte(&self, took: Duration) {
        self.histograms.first_byte.record(nanos(took));
    }

    pub(crate) fn instantiated(&self, took: Duration) {
        self.histograms.instantiate.record(nanos(took));
    }

    pub(crate) fn fuel_consumed(&self, fuel: u64) {
        self.histograms.fuel.record(fuel);
    }

    /// Counts one request refused at the module's `max_concurrency`.
    pub(crate) fn concurrency_limited(&self) {
        self.concurrency_limited.increment(1);
    }

    /// Counts one outgoing request of a component.
    pub(crate) fn outbound(&self, result: OutboundResult) {
        if let Some(counter) = self.outbound.get(result as usize) {
            counter.increment(1);
        }
    }

    /// Records how far past its deadline a timed-out request of this module was stopped.
    pub(crate) fn timeout_overshoot(&self, overshoot: Duration) {
        self.timeout_overshoot.record(overshoot.as_secs_f64());
    }

    /// Marks one request of this module as in flight until the guard is dropped.
    pub(crate) fn in_flight(&self) -> GaugeGuard {
        GaugeGuard::new(Some(self.inflight.clone()))
    }
}

/// A duration in whole nanoseconds (saturating after 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Adds one to a gauge, and takes it back when dropped.
pub(crate) struct GaugeGuard(Option<Gauge>);

impl GaugeGuard {
    pub(super) fn new(gauge: Option<Gauge>) -> Self {
        if let Some(g) = &gauge {
            g.increment(1.0);
        }
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.decrement(1.0);
        }
    }
}

pub(super) static META: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

pub(super) fn label(key: &'static str, value: &str) -> Label {
    Label::new(key, value.to_string())
}
