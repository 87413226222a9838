//! Prometheus metrics: the names of DESIGN.md and the handles that record them.
//!
//! Each gateway has a recorder of its own (not the process-global one), so that two
//! gateways in one process — as in the tests — never mix their counts. Every series a
//! request touches is registered ahead of time, when its module is loaded, into a
//! [`ModuleMetrics`] kept beside the module: recording a request is then a few atomic
//! operations, with no label formatting, hashing or map lookup on the request path. The
//! histograms every request records are the gateway's own
//! ([`FixedHistogram`](histogram::FixedHistogram), which says why), written after
//! the exporter's text; everything else is the exporter's.
//!
//! The `module` label only ever takes the names of module files that exist; every request
//! for anything else is counted under [`UNKNOWN_MODULE`], so a scan of random paths cannot
//! grow the label set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::formatting::{sanitize_description, sanitize_label_value};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::outcome::Outcome;
use histogram::FixedHistogram;

mod histogram;

/// The `module` label of requests for names that are not module files.
pub(crate) const UNKNOWN_MODULE: &str = "_unknown";

pub(crate) const REQUESTS: &str = "wasmgate_requests_total";
pub(crate) const REQUEST_DURATION: &str = "wasmgate_request_duration_seconds";
pub(crate) const INSTANTIATE_DURATION: &str = "wasmgate_instantiate_duration_seconds";
pub(crate) const TIME_TO_FIRST_BYTE: &str = "wasmgate_time_to_first_byte_seconds";
pub(crate) const FUEL_CONSUMED: &str = "wasmgate_fuel_consumed";
pub(crate) const COMPILE_DURATION: &str = "wasmgate_module_compile_duration_seconds";
pub(crate) const MODULE_LOADS: &str = "wasmgate_module_loads_total";
pub(crate) const MODULES_LOADED: &str = "wasmgate_modules_loaded";
pub(crate) const INFLIGHT: &str = "wasmgate_inflight_requests";
pub(crate) const POOL_SLOTS: &str = "wasmgate_pool_slots";
pub(crate) const POOL_SLOTS_IN_USE: &str = "wasmgate_pool_slots_in_use";
pub(crate) const QUEUE_WAITING: &str = "wasmgate_requests_waiting_for_slot";
pub(crate) const CACHE_LOOKUPS: &str = "wasmgate_cache_lookups_total";
pub(crate) const CACHE_EVICTIONS: &str = "wasmgate_cache_evictions_total";
pub(crate) const TIMEOUT_OVERSHOOT: &str = "wasmgate_timeout_overshoot_seconds";
pub(crate) const CONCURRENCY_LIMITED: &str = "wasmgate_concurrency_limited_total";
pub(crate) const OUTBOUND_REQUESTS: &str = "wasmgate_outbound_requests_total";
pub(crate) const SOURCE_POLLS: &str = "wasmgate_source_polls_total";
pub(crate) const SOURCE_LAST_SUCCESS: &str = "wasmgate_source_last_success_timestamp_seconds";

/// One per-request histogram family: its name, its `# HELP` line, and where a module's
/// series of it is kept.
type HistogramFamily = (
    &'static str,
    &'static str,
    fn(&RequestHistograms) -> &FixedHistogram,
);

/// The per-request histograms, in the order `/metrics` shows them.
const REQUEST_HISTOGRAMS: [HistogramFamily; 4] = [
    (
        REQUEST_DURATION,
        "Time from a request's arrival to its response, by module.",
        |h| &h.duration,
    ),
    (
        TIME_TO_FIRST_BYTE,
        "Time from a request's arrival to its guest's response head, by module.",
        |h| &h.first_byte,
    ),
    (
        INSTANTIATE_DURATION,
        "Time to instantiate a module for one request.",
        |h| &h.instantiate,
    ),
    (
        FUEL_CONSUMED,
        "Fuel one request consumed, by module.",
        |h| &h.fuel,
    ),
];

/// What each of the exporter's series means: the `# HELP` lines of `/metrics`.
const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (REQUESTS, Kind::Counter, "Requests, by module and outcome."),
    (
        COMPILE_DURATION,
        Kind::Histogram,
        "Time to compile and link a module (not counting cache hits).",
    ),
    (
        MODULE_LOADS,
        Kind::Counter,
        "Module file loads, by module and result (compiled, cache_hit, failed, removed).",
    ),
    (MODULES_LOADED, Kind::Gauge, "Modules being served."),
    (INFLIGHT, Kind::Gauge, "Requests being handled, by module."),
    (
        POOL_SLOTS,
        Kind::Gauge,
        "Instance slots: guests that may run at once.",
    ),
    (
        POOL_SLOTS_IN_USE,
        Kind::Gauge,
        "Instance slots running a guest now.",
    ),
    (
        QUEUE_WAITING,
        Kind::Gauge,
        "Requests waiting for a free instance slot.",
    ),
    (
        CACHE_LOOKUPS,
        Kind::Counter,
        "Compiled-artifact cache lookups, by result (hit, miss, discarded).",
    ),
    (
        CACHE_EVICTIONS,
        Kind::Counter,
        "Compiled artifacts evicted to keep the cache under its cap.",
    ),
    (
        TIMEOUT_OVERSHOOT,
        Kind::Histogram,
        "How far past its deadline a timed-out request was stopped.",
    ),
    (
        CONCURRENCY_LIMITED,
        Kind::Counter,
        "Requests answered 503 because their module ran its max_concurrency guests.",
    ),
    (
        OUTBOUND_REQUESTS,
        Kind::Counter,
        "Outgoing HTTP requests of components, by module and result (ok, denied, error).",
    ),
    (
        SOURCE_POLLS,
        Kind::Counter,
        "Polls of module sources (OCI references, a polled modules directory), by result (unchanged, changed, error).",
    ),
    (
        SOURCE_LAST_SUCCESS,
        Kind::Gauge,
        "When each module source last answered a poll (Unix time): a stale source keeps its last good version.",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Latency buckets, 10 µs to 30 s: 1-2.5-5 steps per decade.
const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Fuel buckets: a decade apart, from a trivial function to the default budget.
const FUEL_BUCKETS: &[f64] = &[1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
/// Durations are recorded in nanoseconds and shown in seconds.
const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Fuel is recorded and shown in units of fuel.
const FUEL_PER_UNIT: u64 = 1;
/// How often histogram samples are folded into their buckets between scrapes, which keeps
/// the recorder's memory bounded even when nobody scrapes.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How a module file's load ended (the `result` label of [`MODULE_LOADS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoadResult {
    Compiled,
    CacheHit,
    Failed,
    Removed,
}

impl LoadResult {
    pub(crate) fn label(self) -> &'static str {
        match self {
            LoadResult::Compiled => "compiled",
            LoadResult::CacheHit => "cache_hit",
            LoadResult::Failed => "failed",
            LoadResult::Removed => "removed",
        }
    }
}

/// How a poll of a module source ended (the `result` label of [`SOURCE_POLLS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollResult {
    /// The source names the version already seen.
    Unchanged,
    /// The source names a new version (loaded or not: the load is counted on its own).
    Changed,
    /// The source could not be asked, or did not answer.
    Error,
}

impl PollResult {
    fn label(self) -> &'static str {
        match self {
            PollResult::Unchanged => "unchanged",
            PollResult::Changed => "changed",
            PollResult::Error => "error",
        }
    }
}

/// How a component's outgoing request ended (the `result` label of [`OUTBOUND_REQUESTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutboundResult {
    /// Sent, and a response head came back.
    Ok,
    /// Refused: its destination is not in `allowed_outbound_hosts`.
    Denied,
    /// Sent, or tried, and failed (connect, TLS, protocol, timeout).
    Error,
}

impl OutboundResult {
    const ALL: [OutboundResult; 3] = [
        OutboundResult::Ok,
        OutboundResult::Denied,
        OutboundResult::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            OutboundResult::Ok => "ok",
            OutboundResult::Denied => "denied",
            OutboundResult::Error => "error",
        }
    }
}

/// A gateway's recorder and its gateway-wide series.
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Each module's per-request histograms, by name: a reloaded module keeps counting
    /// into the same ones.
    histograms: Mutex<BTreeMap<Arc<str>, Arc<RequestHistograms>>>,
    unknown: Arc<ModuleMetrics>,
    modules_loaded: Gauge,
    pool_slots: Gauge,
    pool_in_use: Gauge,
    queue_waiting: Gauge,
    timeout_overshoot: Histogram,
}

/// The series of one module, registered once.
pub(crate) struct ModuleMetrics {
    /// The `module` label these series carry.
    pub(crate) name: Arc<str>,
    requests: Vec<Counter>,
    histograms: Arc<RequestHistograms>,
    inflight: Gauge,
    /// The gateway-wide overshoot histogram, kept here so that invoke, which knows the
    /// deadline, records it.
    timeout_overshoot: Histogram,
    concurrency_limited: Counter,
    /// One per [`OutboundResult`], in its order.
    outbound: Vec<Counter>,
}

/// The histograms every request of one module records.
struct RequestHistograms {
    /// The series' label set as `/metrics` writes it (`module="hello"`).
    labels: String,
    duration: FixedHistogram,
    first_byte: FixedHistogram,
    instantiate: FixedHistogram,
    fuel: FixedHistogram,
}

impl RequestHistograms {
    fn new(module: &str) -> RequestHistograms {
        RequestHistograms {
            labels: format!("module=\"{}\"", sanitize_label_value(module)),
            duration: FixedHistogram::new(DURATION_BUCKETS, NANOS_PER_SECOND),
            first_byte: FixedHistogram::new(DURATION_BUCKETS, NANOS_PER_SECOND),
            instantiate: FixedHistogram::new(DURATION_BUCKETS, NANOS_PER_SECOND),
            fuel: FixedHistogram::new(FUEL_BUCKETS, FUEL_PER_UNIT),
        }
    }
}

impl Metrics {
    /// A recorder for one gateway.
    pub(crate) fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = [COMPILE_DURATION, TIMEOUT_OVERSHOOT]
            .into_iter()
            .try_fold(builder, |b, name| {
                b.set_buckets_for_metric(Matcher::Full(name.into()), DURATION_BUCKETS)
            });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            // Only an empty bucket list is refused, and the lists above are constants.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        for &(name, kind, help) in DESCRIPTIONS {
            let (name, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
            match kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, None, help),
            }
        }
        let handle = recorder.handle();
        let gauge =
            |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &META);
        let histograms = Mutex::new(BTreeMap::new());
        let timeout_overshoot =
            recorder.register_histogram(&Key::from_static_name(TIMEOUT_OVERSHOOT), &META);
        let inner = Inner {
            unknown: Arc::new(ModuleMetrics::register(
                &recorder,
                &histograms,
                &timeout_overshoot,
                UNKNOWN_MODULE,
            )),
            histograms,
            timeout_overshoot,
            modules_loaded: gauge(MODULES_LOADED),
            pool_slots: gauge(POOL_SLOTS),
            pool_in_use: gauge(POOL_SLOTS_IN_USE),
            queue_waiting: gauge(QUEUE_WAITING),
            recorder,
            handle,
        };
        Metrics {
            inner: Some(Arc::new(inner)),
        }
    }

    /// Metrics that record nothing (for `run` and `compile`).
    pub(crate) fn disabled() -> Metrics {
        Metrics { inner: None }
    }

    /// Registers the series of module `name`.
    pub(crate) fn module(&self, name: &str) -> Arc<ModuleMetrics> {
        match &self.inner {
            Some(inner) => Arc::new(ModuleMetrics::register(
                &inner.recorder,
                &inner.histograms,
                &inner.timeout_overshoot,
                name,
            )),
            None => Arc::new(ModuleMetrics::noop(name)),
        }
    }

    /// The series requests for unknown modules are counted in.
    pub(crate) fn unknown(&self) -> Arc<ModuleMetrics> {
        match &self.inner {
            Some(inner) => inner.unknown.clone(),
            None => Arc::new(ModuleMetrics::noop(UNKNOWN_MODULE)),
        }
    }

    /// Counts a load of module `name` that ended with `result`.
    pub(crate) fn module_load(&self, name: &str, result: LoadResult, compile: Option<Duration>) {
        let Some(inner) = &self.inner else { return };
        let labels = [
            label("module", name),
            Label::from_static_parts("result", result.label()),
        ];
        let key = Key::from_parts(MODULE_LOADS, labels.to_vec());
        inner.recorder.register_counter(&key, &META).increment(1);
        if let Some(compile) = compile {
            let key = Key::from_parts(COMPILE_DURATION, vec![label("module", name)]);
            inner
                .recorder
                .register_histogram(&key, &META)
                .record(compile.as_secs_f64());
        }
    }

    /// Counts a poll of module source `source`; one that got an answer also moves the
    /// source's last-success time to now.
    pub(crate) fn source_poll(&self, source: &str, result: PollResult) {
        let Some(inner) = &self.inner else { return };
        let labels = [
            label("source", source),
            Label::from_static_parts("result", result.label()),
        ];
        let key = Key::from_parts(SOURCE_POLLS, labels.to_vec());
        inner.recorder.register_counter(&key, &META).increment(1);
        if result != PollResult::Error {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let key = Key::from_parts(SOURCE_LAST_SUCCESS, vec![label("source", source)]);
            inner.recorder.register_gauge(&key, &META).set(now);
        }
    }

    pub(crate) fn set_modules_loaded(&self, count: usize) {
        if let Some(inner) = &self.inner {
            inner.modules_loaded.set(count as f64);
        }
    }

    pub(crate) fn set_pool_slots(&self, slots: u32) {
        if let Some(inner) = &self.inner {
            inner.pool_slots.set(slots);
        }
    }

    /// Marks one request as waiting for a pool slot until the guard is dropped.
    pub(crate) fn waiting_for_slot(&self) -> GaugeGuard {
        GaugeGuard::new(self.inner.as_ref().map(|i| i.queue_waiting.clone()))
    }

    /// Sets the pool slots in use (read from the slot semaphore when `/metrics` is
    /// scraped, which costs the request path nothing).
    pub(crate) fn set_slots_in_use(&self, in_use: usize) {
        if let Some(inner) = &self.inner {
            inner.pool_in_use.set(in_use as f64);
        }
    }

    /// Sets the cache's lookup and eviction counters to the cache's own totals.
    pub(crate) fn cache_totals(&self, hits: u64, misses: u64, discarded: u64, evicted: u64) {
        let Some(inner) = &self.inner else { return };
        for (result, value) in [("hit", hits), ("miss", misses), ("discarded", discarded)] {
            let key = Key::from_parts(
                CACHE_LOOKUPS,
                vec![Label::from_static_parts("result", result)],
            );
            inner.recorder.register_counter(&key, &META).absolute(value);
        }
        inner
            .recorder
            .register_counter(&Key::from_static_name(CACHE_EVICTIONS), &META)
            .absolute(evicted);
    }

    /// The Prometheus text exposition of everything recorded.
    pub(crate) fn render(&self) -> String {
        let Some(inner) = &self.inner else {
            return String::new();
        };
        let mut text = inner.handle.render();
        let histograms = inner
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, help, series_of) in REQUEST_HISTOGRAMS {
            let help = sanitize_description(help);
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} histogram");
            for series in histograms.values() {
                series_of(series).write(&mut text, name, &series.labels);
            }
            text.push('\n');
        }
        text
    }

    /// Folds histogram samples into buckets; call every [`UPKEEP_INTERVAL`].
    pub(crate) fn upkeep(&self) {
        if let Some(inner) = &self.inner {
            inner.handle.run_upkeep();
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

static META: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn label(key: &'static str, value: &str) -> Label {
    Label::new(key, value.to_string())
}

impl ModuleMetrics {
    fn register(
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

    fn noop(name: &str) -> ModuleMetrics {
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
    fn new(gauge: Option<Gauge>) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_module_and_outcome() {
        let metrics = Metrics::new();
        let hello = metrics.module("hello");
        hello.request(Outcome::Ok, Duration::from_micros(40));
        hello.request(Outcome::Trap, Duration::from_millis(2));
        metrics
            .unknown()
            .request(Outcome::NotFound, Duration::from_micros(5));
        let text = metrics.render();
        assert!(
            text.contains("wasmgate_requests_total{module=\"hello\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wasmgate_requests_total{module=\"hello\",outcome=\"trap\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wasmgate_requests_total{module=\"_unknown\",outcome=\"not_found\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "wasmgate_request_duration_seconds_bucket{module=\"hello\",le=\"0.00005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("wasmgate_request_duration_seconds_count{module=\"hello\"} 2"),
            "{text}"
        );
    }

    /// The comments of family `name` in an exposition and the lines of its `hello` series,
    /// with the `_sum` apart (as a number: the exporter adds up floats, the gateway
    /// integers, so the last digits may differ).
    fn family(text: &str, name: &str) -> (Vec<String>, f64) {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.split([' ', '{']).any(|w| w.starts_with(name)))
            .filter(|l| l.starts_with('#') || l.contains("module=\"hello\""))
            .collect();
        let sum = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name}_sum")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        let rest = lines.iter().filter(|l| !l.contains("_sum{"));
        (rest.map(|l| l.to_string()).collect(), sum)
    }

    #[test]
    fn request_histograms_read_as_the_exporters_would() {
        let seconds = [0.000_01, 0.000_04, 0.000_7, 0.002, 0.5, 0.5, 31.0];
        let exporter = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), DURATION_BUCKETS)
            .unwrap()
            .build_recorder();
        exporter.describe_histogram(
            KeyName::from_const_str(REQUEST_DURATION),
            None,
            SharedString::const_str(REQUEST_HISTOGRAMS[0].1),
        );
        let key = Key::from_parts(REQUEST_DURATION, vec![label("module", "hello")]);
        let theirs = exporter.register_histogram(&key, &META);
        let metrics = Metrics::new();
        let ours = metrics.module("hello");
        for s in seconds {
            theirs.record(s);
            ours.request(Outcome::Ok, Duration::from_secs_f64(s));
        }
        let (their_lines, their_sum) = family(&exporter.handle().render(), REQUEST_DURATION);
        let (our_lines, our_sum) = family(&metrics.render(), REQUEST_DURATION);
        assert_eq!(our_lines, their_lines);
        assert!(
            their_lines.len() > DURATION_BUCKETS.len(),
            "{their_lines:?}"
        );
        assert!(
            (our_sum - their_sum).abs() < 1e-9,
            "{our_sum} vs {their_sum}"
        );
    }

    #[test]
    fn a_reloaded_module_keeps_its_histograms() {
        let metrics = Metrics::new();
        metrics.module("hello").fuel_consumed(150);
        metrics.module("hello").fuel_consumed(5);
        let text = metrics.render();
        assert!(
            text.contains("wasmgate_fuel_consumed_bucket{module=\"hello\",le=\"100\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wasmgate_fuel_consumed_count{module=\"hello\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wasmgate_fuel_consumed_sum{module=\"hello\"} 155\n"),
            "{text}"
        );
    }

    #[test]
    fn guards_take_back_what_they_add() {
        let metrics = Metrics::new();
        let hello = metrics.module("hello");
        {
            let _a = hello.in_flight();
            assert!(
                metrics
                    .render()
                    .contains("wasmgate_inflight_requests{module=\"hello\"} 1")
            );
        }
        let text = metrics.render();
        assert!(
            text.contains("wasmgate_inflight_requests{module=\"hello\"} 0"),
            "{text}"
        );
    }
}
