//! Sliding windows over time-ordered points: the window whose ratio is furthest over its limit
//! ([`RatioBreach`]) and the busiest window.

use serde_json::{Map, Value};

use crate::events::Event;

use super::time::secs;

impl RatioBreach<'_> {
    /// The witness of this window: `what` names the bad calls ("background calls ... failed"),
    /// `counts` adds the checker's own totals to the window's.
    pub fn witness(
        self,
        prefix: &str,
        what: &str,
        max_ratio: f64,
        mut counts: Map<String, Value>,
    ) -> super::Witness {
        counts.insert("bad_in_window".into(), self.bad.into());
        counts.insert("calls_in_window".into(), self.total.into());
        counts.insert("window_start_us".into(), self.start_us.into());
        super::Witness {
            summary: format!(
                "{prefix}{} of {} {what} ({:.1} %) in the window [{}, {}), over {:.1} %",
                self.bad,
                self.total,
                100.0 * self.bad as f64 / self.total.max(1) as f64,
                secs(self.start_us),
                secs(self.end_us),
                100.0 * max_ratio
            ),
            counts,
            events: self
                .events
                .into_iter()
                .take(super::WITNESS_EVENTS)
                .cloned()
                .collect(),
        }
    }
}

/// The window in which `bad / total` was furthest over its limit.
#[derive(Debug)]
pub struct RatioBreach<'a> {
    /// Where the window starts.
    pub start_us: u64,
    /// Where it ends: exclusive, except for the last window, which holds the log's end.
    pub end_us: u64,
    /// Points in it that were bad.
    pub bad: u64,
    /// All points in it.
    pub total: u64,
    /// The bad points' events, in time order.
    pub events: Vec<&'a Event>,
}

/// Ratios over sliding windows of `width_us`: `points` are (time, bad, event) sorted by time.
/// Windows start at every point's time, as long as they end by `end_us` (the log's end); the
/// last window is `[end_us − width_us, end_us]`, so a window cut short by the end of the run
/// never judges a handful of points. A log shorter than one window is one window. A window is
/// judged only with at least `min_total` points. Answers the window with the highest ratio
/// among those where `bad > max_ratio · total` (the earliest of equals), and how many windows
/// were judged.
pub fn worst_ratio_breach<'a>(
    points: &[(u64, bool, &'a Event)],
    width_us: u64,
    end_us: u64,
    max_ratio: f64,
    min_total: u64,
) -> (Option<RatioBreach<'a>>, u64) {
    let last_start = end_us.saturating_sub(width_us);
    let mut starts: Vec<u64> = points
        .iter()
        .map(|p| p.0)
        .filter(|&t| t < last_start)
        .collect();
    starts.push(last_start);
    starts.dedup();
    let mut bad_before = Vec::with_capacity(points.len() + 1);
    bad_before.push(0u64);
    for p in points {
        bad_before.push(bad_before[bad_before.len() - 1] + u64::from(p.1));
    }
    let (mut lo, mut hi, mut judged) = (0usize, 0usize, 0u64);
    let mut worst: Option<(f64, u64, u64, usize, usize)> = None;
    for s in starts {
        // The last window is closed at the end of the log.
        let (upper, shown_end) = if s == last_start {
            (end_us.saturating_add(1), end_us)
        } else {
            (s + width_us, s + width_us)
        };
        while lo < points.len() && points[lo].0 < s {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < points.len() && points[hi].0 < upper {
            hi += 1;
        }
        let total = (hi - lo) as u64;
        if total == 0 || total < min_total {
            continue;
        }
        judged += 1;
        let bad = bad_before[hi] - bad_before[lo];
        let ratio = bad as f64 / total as f64;
        if bad as f64 > max_ratio * total as f64 + 1e-9 && worst.is_none_or(|(r, ..)| ratio > r) {
            worst = Some((ratio, s, shown_end, lo, hi));
        }
    }
    let breach = worst.map(|(_, start_us, end_us, lo, hi)| RatioBreach {
        start_us,
        end_us,
        bad: bad_before[hi] - bad_before[lo],
        total: (hi - lo) as u64,
        events: points[lo..hi].iter().filter(|p| p.1).map(|p| p.2).collect(),
    });
    (breach, judged)
}

/// The sliding-window maximum of points in `[s, s + width_us)` for `s` at every point's time:
/// `times` sorted. Answers the largest count, and the index range of its first window.
pub fn max_in_window(times: &[u64], width_us: u64) -> (u64, std::ops::Range<usize>) {
    let (mut best, mut range, mut hi) = (0u64, 0..0, 0usize);
    for lo in 0..times.len() {
        hi = hi.max(lo);
        while hi < times.len() && times[hi] < times[lo] + width_us {
            hi += 1;
        }
        let n = (hi - lo) as u64;
        if n > best {
            best = n;
            range = lo..hi;
        }
    }
    (best, range)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::judge::invariants::test_support::ev;

    #[test]
    fn ratio_windows_stop_at_the_log_end() {
        let e = ev(0, "h", "t", "n", &[("x", json!(1))]);
        // 100 good points over 100 s and one bad at 99.5 s: only the last window, from 40 s to
        // the end, holds it, with 60 good ones; a window starting at the bad point would hold
        // it alone.
        let mut points: Vec<(u64, bool, &Event)> =
            (0..100).map(|k| (k * 1_000_000, false, &e)).collect();
        points.push((99_500_000, true, &e));
        let (breach, judged) = worst_ratio_breach(&points, 60_000_000, 100_000_000, 0.02, 1);
        assert!(breach.is_none(), "{breach:?}");
        assert!(judged > 0);
        let (breach, _) = worst_ratio_breach(&points, 60_000_000, 100_000_000, 0.01, 1);
        let breach = breach.expect("1 of 61 is over 1 %");
        assert_eq!((breach.bad, breach.total), (1, 61));
        assert_eq!(breach.start_us, 40_000_000);
    }

    #[test]
    fn window_maximum() {
        let (n, r) = max_in_window(&[0, 10, 20, 1000, 1001, 1002, 1003], 100);
        assert_eq!((n, r), (4, 3..7));
    }
}
