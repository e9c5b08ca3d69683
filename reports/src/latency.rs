//! Latency distributions: an HDR histogram of milliseconds at 3 significant digits, which adds
//! across intervals, seeds and shards. Percentiles are never averaged: a total is the sum of
//! the histograms, and its percentiles are read from that.
//!
//! It is written to JSON as its recorded buckets, `[[ms, count], ...]`, each bucket by the
//! highest value equivalent to it, so that reading it back records the same buckets.

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Significant digits kept.
const SIGFIGS: u8 = 3;

/// The percentiles every page shows, with their names.
pub const PERCENTILES: [(f64, &str); 4] = [
    (0.50, "p50"),
    (0.90, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
];

/// How percentiles are read, for a footnote: HdrHistogram's definition.
pub const DEFINITION: &str = "the p-th percentile is the highest value equivalent (at 3 significant digits) to the smallest recorded value v with count(≤ v) ≥ ⌈p·n⌉ (HdrHistogram)";

/// A latency distribution in milliseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Latency {
    fn eq(&self, other: &Self) -> bool {
        self.buckets() == other.buckets()
    }
}

impl Latency {
    /// An empty distribution.
    pub fn new() -> Self {
        let mut h = Histogram::new(SIGFIGS).expect("3 significant digits are valid");
        h.auto(true);
        Self(h)
    }

    /// Records one latency. Zero counts as 1 ms, the resolution of the figures.
    pub fn record(&mut self, ms: u64) {
        self.0
            .record(ms.max(1))
            .expect("an auto-resizing histogram takes any value");
    }

    /// Adds another distribution to this one.
    pub fn add(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("an auto-resizing histogram takes any other");
    }

    /// The number of latencies recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether none were recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q`-quantile (0 < q ≤ 1) in ms, or `None` when fewer than `1/(1−q)` latencies were
    /// recorded: such a sample has no distinct quantile (it would be the maximum).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.is_empty() || (q < 1.0 && (self.len() as f64) < 1.0 / (1.0 - q) - 1e-9) {
            return None;
        }
        Some(self.0.value_at_quantile(q))
    }

    /// The `q`-quantile whatever the sample size (the maximum when it is too small); `None`
    /// when empty. Whole-run figures use this; per-interval charts use [`Latency::quantile`].
    pub fn quantile_any(&self, q: f64) -> Option<u64> {
        (!self.is_empty()).then(|| self.0.value_at_quantile(q))
    }

    /// The largest latency recorded (at the histogram's resolution).
    pub fn max(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.0.max())
    }

    /// The smallest latency recorded.
    pub fn min(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.0.min())
    }

    /// The recorded buckets: `(ms, count)`, by the highest value equivalent to each.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// The percentile spectrum for an HDR plot: `(p, ms)` at p = 0, 0.5, 0.75, 0.875, ...
    /// (halving the distance to 1 each step) as far as the sample supports, then the maximum.
    pub fn spectrum(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        let n = self.len() as f64;
        let mut p = 0.0f64;
        while 1.0 / (1.0 - p) <= n && p < 0.999_999 {
            out.push((p, self.0.value_at_quantile(p)));
            p = 1.0 - (1.0 - p) / 2.0;
        }
        out.push((1.0 - 1.0 / n.max(2.0), self.0.max()));
        out
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.buckets().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let buckets = Vec::<(u64, u64)>::deserialize(d)?;
        let mut out = Self::new();
        for (ms, n) in buckets {
            out.0
                .record_n(ms.max(1), n)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_need_enough_samples() {
        let mut l = Latency::new();
        for ms in 1..=50 {
            l.record(ms);
        }
        assert_eq!(l.quantile(0.5), Some(25));
        assert_eq!(l.quantile(0.9), Some(45));
        assert_eq!(l.quantile(0.99), None, "50 samples have no distinct p99");
        assert_eq!(l.quantile_any(0.99), Some(50));
    }

    #[test]
    fn sums_are_exact_and_survive_json() {
        let (mut a, mut b) = (Latency::new(), Latency::new());
        for ms in [3, 40, 500, 12_345] {
            a.record(ms);
        }
        for ms in [7, 40, 90_000] {
            b.record(ms);
        }
        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!(sum.len(), 7);
        let max = sum.max().unwrap();
        assert!((90_000..=90_090).contains(&max), "{max}");
        let back: Latency = serde_json::from_str(&serde_json::to_string(&sum).unwrap()).unwrap();
        assert_eq!(back, sum);
        assert_eq!(back.quantile_any(0.5), sum.quantile_any(0.5));
    }

    #[test]
    fn the_spectrum_stops_where_the_sample_does() {
        let mut l = Latency::new();
        for ms in 1..=8 {
            l.record(ms);
        }
        let s = l.spectrum();
        assert!(s.iter().all(|(p, _)| 1.0 / (1.0 - p) <= 8.0 + 1e-9));
        assert_eq!(s.last().unwrap().1, 8);
        assert!(Latency::new().spectrum().is_empty());
    }
}
