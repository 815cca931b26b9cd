//! Latency histograms (HDR, 3 significant digits, 1 ns – 1 h) and their summaries.

use dedup_lab_core::LatencySummary;
use hdrhistogram::Histogram;
use std::time::Duration;

pub struct Latencies {
    h: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies { h: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds") }
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let ns = (d.as_nanos() as u64).clamp(1, self.h.high());
        self.h.record(ns).expect("clamped into range");
    }

    pub fn len(&self) -> u64 {
        self.h.len()
    }

    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        if self.h.is_empty() {
            return None;
        }
        let q = |p: f64| self.h.value_at_quantile(p);
        Some(LatencySummary {
            count: self.h.len(),
            min_ns: self.h.min(),
            mean_ns: self.h.mean(),
            p50_ns: q(0.50),
            p90_ns: q(0.90),
            p95_ns: q(0.95),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: self.h.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let mut l = Latencies::default();
        for i in 1..=1000u64 {
            l.record(Duration::from_micros(i));
        }
        let s = l.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ns as f64 - 500_000.0).abs() / 500_000.0 < 0.01, "{s:?}");
        assert!((s.p99_ns as f64 - 990_000.0).abs() / 990_000.0 < 0.01, "{s:?}");
        assert!(s.min_ns <= 1_001_000 && s.max_ns >= 999_000);
        assert!(Latencies::default().summary().is_none());
    }
}
