//! A gateway's recorder and its gateway-wide series: one recorder per gateway (not the
//! process-global one), so that two gateways in one process never mix their counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Gauge, Histogram, Key, KeyName, Label, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::module::{GaugeGuard, META, ModuleMetrics, RequestHistograms, label};
use super::names::*;

/// A gateway's recorder and its gateway-wide series.
#[derive(Clone)]
pub(crate) struct Metrics {
    pub(super) inner: Option<Arc<Inner>>,
}

pub(super) struct Inner {
    pub(super) recorder: PrometheusRecorder,
    pub(super) handle: PrometheusHandle,
    /// Each module's per-request histograms, by name: a reloaded module keeps counting
    /// into the same ones.
    pub(super) histograms: Mutex<BTreeMap<Arc<str>, Arc<RequestHistograms>>>,
    pub(super) unknown: Arc<ModuleMetrics>,
    pub(super) modules_loaded: Gauge,
    pub(super) pool_slots: Gauge,
    pub(super) pool_in_use: Gauge,
    pub(super) queue_waiting: Gauge,
    pub(super) timeout_overshoot: Histogram,
}

impl Metrics {
    /// A recorder for one gateway.
    pub(crate) fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = [COMPILE_DURATION, TIMEOUT_OVERSHOOT, KV_OPERATION_DURATION]
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

    /// Counts one key-value call of `module` on `store`, and how long it took.
    pub(crate) fn kv_operation(
        &self,
        module: &str,
        store: &str,
        op: &'static str,
        result: &'static str,
        took: Duration,
    ) {
        let Some(inner) = &self.inner else { return };
        let labels = vec![
            label("module", module),
            label("store", store),
            Label::from_static_parts("op", op),
            Label::from_static_parts("result", result),
        ];
        let key = Key::from_parts(KV_OPERATIONS, labels);
        inner.recorder.register_counter(&key, &META).increment(1);
        let key = Key::from_parts(
            KV_OPERATION_DURATION,
            vec![Label::from_static_parts("op", op)],
        );
        inner
            .recorder
            .register_histogram(&key, &META)
            .record(took.as_secs_f64());
    }

    /// Counts a reload of the TLS pair; a pair now in use also sets the expiry gauge. The
    /// first call (the pair read at start-up, `reload: None`) registers both results at 0,
    /// so an alert on their increase has a series from the start.
    pub(crate) fn tls_pair(&self, reload: Option<TlsReload>, expires: Option<i64>) {
        let Some(inner) = &self.inner else { return };
        let counter = |result: TlsReload| {
            let labels = vec![Label::from_static_parts("result", result.label())];
            inner
                .recorder
                .register_counter(&Key::from_parts(TLS_RELOADS, labels), &META)
        };
        match reload {
            Some(result) => counter(result).increment(1),
            None => TlsReload::ALL
                .into_iter()
                .for_each(|r| counter(r).increment(0)),
        }
        if let Some(expires) = expires {
            let key = Key::from_static_name(TLS_EXPIRY);
            inner
                .recorder
                .register_gauge(&key, &META)
                .set(expires as f64);
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
