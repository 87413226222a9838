//! The Prometheus text exposition: the exporter's own text, then the per-request
//! histograms the gateway keeps itself (`histogram.rs` says why).

use std::fmt::Write as _;
use std::sync::PoisonError;

use metrics_exporter_prometheus::formatting::sanitize_description;

use super::gateway::Metrics;
use super::histogram::FixedHistogram;
use super::module::RequestHistograms;
use super::names::*;

/// One per-request histogram family: its name, its `# HELP` line, and where a module's
/// series of it is kept.
type HistogramFamily = (
    &'static str,
    &'static str,
    fn(&RequestHistograms) -> &FixedHistogram,
);

/// The per-request histograms, in the order `/metrics` shows them.
pub(super) const REQUEST_HISTOGRAMS: [HistogramFamily; 4] = [
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

impl Metrics {
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
}
