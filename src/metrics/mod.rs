//! Prometheus metrics: the names of ../shared/DESIGN.md and the handles that record them.
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
//!
//! - [`names`]: every series' name, help, buckets and label values;
//! - [`gateway`]: the recorder and the gateway-wide series; [`module`]: one module's;
//! - [`render`]: the text `/metrics` answers; [`histogram`]: the per-request histograms.

mod gateway;
mod histogram;
mod module;
mod names;
mod render;

pub(crate) use gateway::Metrics;
pub(crate) use module::{GaugeGuard, ModuleMetrics};
pub(crate) use names::*;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metrics::{Key, KeyName, Recorder, SharedString};
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    use super::module::{META, label};
    use super::render::REQUEST_HISTOGRAMS;
    use super::*;
    use crate::outcome::Outcome;

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
