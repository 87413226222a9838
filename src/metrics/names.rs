//! What `/metrics` calls things: every series' name and help text, the buckets of its
//! histograms, and the values of its `result` labels.

use std::time::Duration;

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
pub(crate) const KV_OPERATIONS: &str = "wasmgate_kv_operations_total";
pub(crate) const KV_OPERATION_DURATION: &str = "wasmgate_kv_operation_duration_seconds";
pub(crate) const TLS_RELOADS: &str = "wasmgate_tls_reloads_total";
pub(crate) const TLS_EXPIRY: &str = "wasmgate_tls_certificate_expiry_timestamp_seconds";

/// What each of the exporter's series means: the `# HELP` lines of `/metrics`.
pub(super) const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
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
    (
        KV_OPERATIONS,
        Kind::Counter,
        "Key-value calls of guests, by module, store, op (open, get, set, delete, increment, list) and result (ok, or the error).",
    ),
    (
        KV_OPERATION_DURATION,
        Kind::Histogram,
        "How long key-value calls took, by op, waiting for the backend included.",
    ),
    (
        TLS_RELOADS,
        Kind::Counter,
        "Reloads of the TLS certificate and key after their files changed, by result (ok, error: the old pair stays in use).",
    ),
    (
        TLS_EXPIRY,
        Kind::Gauge,
        "When the TLS certificate in use expires (Unix time).",
    ),
];

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Latency buckets, 10 µs to 30 s: 1-2.5-5 steps per decade.
pub(super) const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Fuel buckets: a decade apart, from a trivial function to the default budget.
pub(super) const FUEL_BUCKETS: &[f64] = &[1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
/// Durations are recorded in nanoseconds and shown in seconds.
pub(super) const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Fuel is recorded and shown in units of fuel.
pub(super) const FUEL_PER_UNIT: u64 = 1;
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
    pub(super) fn label(self) -> &'static str {
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
    pub(super) const ALL: [OutboundResult; 3] = [
        OutboundResult::Ok,
        OutboundResult::Denied,
        OutboundResult::Error,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            OutboundResult::Ok => "ok",
            OutboundResult::Denied => "denied",
            OutboundResult::Error => "error",
        }
    }
}

/// How a reload of the TLS pair ended (the `result` label of [`TLS_RELOADS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsReload {
    /// The new pair is served to new connections.
    Ok,
    /// The new files did not load; the old pair stays in use.
    Error,
}

impl TlsReload {
    pub(super) const ALL: [TlsReload; 2] = [TlsReload::Ok, TlsReload::Error];

    pub(super) fn label(self) -> &'static str {
        match self {
            TlsReload::Ok => "ok",
            TlsReload::Error => "error",
        }
    }
}
