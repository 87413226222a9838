//! Fixed-bucket histograms for the series every request records (its latency, its
//! instantiation time, its fuel), written into `/metrics` in Prometheus' text format.
//!
//! Why not the exporter's histograms: `metrics-exporter-prometheus` keeps every sample in a
//! lock-free list of blocks (an epoch pin per sample, blocks allocated and freed again by
//! the upkeep) and folds them into buckets later. With three samples per request that was
//! the largest piece of the request path the gateway owns (0.7–0.9 µs per request,
//! BENCHMARKS.md). Here a sample is two relaxed atomic additions: one to its bucket, one to
//! the sum, kept as an integer in a fixed unit (nanoseconds, or fuel units) so it needs no
//! compare-and-swap loop. The count is the buckets' total, so a scrape never sees a count
//! that disagrees with the `+Inf` bucket. The text is the exporter's, line for line
//! (a test in metrics.rs renders the same samples both ways).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram of values in a fixed unit, with fixed upper bounds.
pub(crate) struct FixedHistogram {
    /// Upper bounds in the recording unit, ascending; a value `v` falls in the first bucket
    /// with `v <= bound`, or in the last (`+Inf`) bucket.
    bounds: Vec<u64>,
    /// The bounds as the exposition writes them (`le="0.00001"`).
    labels: Vec<String>,
    /// One counter per bound, plus the `+Inf` bucket.
    buckets: Box<[AtomicU64]>,
    /// The sum of the values, in the recording unit.
    sum: AtomicU64,
    /// Recording units in one exposed unit (1e9 for nanoseconds recorded, seconds shown).
    units_per_exposed: f64,
}

impl FixedHistogram {
    /// A histogram whose buckets end at `bounds` (in the exposed unit, ascending), recording
    /// values counted in units of which `units_per_exposed` make one exposed unit.
    pub(crate) fn new(bounds: &[f64], units_per_exposed: u64) -> FixedHistogram {
        let units_per_exposed = units_per_exposed as f64;
        FixedHistogram {
            bounds: bounds
                .iter()
                .map(|b| (b * units_per_exposed).round() as u64)
                .collect(),
            labels: bounds.iter().map(|b| b.to_string()).collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            units_per_exposed,
        }
    }

    /// Records one value, in the recording unit.
    pub(crate) fn record(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        if let Some(counter) = self.buckets.get(bucket) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of this series to `out`. `labels` is
    /// the series' label set as exposed (`module="hello"`).
    pub(crate) fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let bounds = self.labels.iter().map(String::as_str).chain(["+Inf"]);
        for (le, counter) in bounds.zip(self.buckets.iter()) {
            cumulative += counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.units_per_exposed;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_they_fit() {
        let h = FixedHistogram::new(&[1.0, 10.0], 1);
        for v in [0, 1, 2, 10, 11, 1000] {
            h.record(v);
        }
        let mut out = String::new();
        h.write(&mut out, "x", "m=\"a\"");
        assert_eq!(
            out,
            "x_bucket{m=\"a\",le=\"1\"} 2\nx_bucket{m=\"a\",le=\"10\"} 4\n\
             x_bucket{m=\"a\",le=\"+Inf\"} 6\nx_sum{m=\"a\"} 1024\nx_count{m=\"a\"} 6\n"
        );
    }

    #[test]
    fn the_sum_is_exposed_in_the_exposed_unit() {
        let h = FixedHistogram::new(&[0.000_01, 1.0], 1_000_000_000);
        h.record(5_000);
        h.record(2_000_000_000);
        let mut out = String::new();
        h.write(&mut out, "d", "m=\"a\"");
        assert!(
            out.contains("d_bucket{m=\"a\",le=\"0.00001\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("d_bucket{m=\"a\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("d_bucket{m=\"a\",le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("d_sum{m=\"a\"} 2.000005\n"), "{out}");
    }
}
