//! What several checkers share: who an account is, when a provider call began, counts as JSON,
//! and ratios over sliding windows.

use serde_json::{Map, Value};

use crate::events::{Event, EventLog};

/// The target the provider reports calls on.
pub const PROVIDER_TARGET: &str = "stampede::provider";

/// The target the system reports its protective mechanisms' decisions on.
pub const MECHANISM_TARGET: &str = "stampede::mechanism";

/// The target the system reports query lifecycle events on.
pub const QUERY_TARGET: &str = "stampede::query";

/// The target the replay client reports on.
pub const TRAFFIC_TARGET: &str = "stampede::traffic";

/// The target of config changes at run time.
pub const CONFIG_TARGET: &str = "stampede::config";

/// The target of the fault timeline.
pub const FAULT_TARGET: &str = "stampede::fault";

/// The system's own account.
pub const SYSTEM_ACCOUNT: &str = stampede_fakes::iam::SYSTEM_ACCOUNT;

fn twelve_digits_from(account: &str, first: u8) -> bool {
    account.len() == 12
        && account.as_bytes()[0] == first
        && account.bytes().all(|b| b.is_ascii_digit())
}

/// A background account: another customer of the region (12 digits starting with `2`).
pub fn is_background(account: &str) -> bool {
    twelve_digits_from(account, b'2')
}

/// A lake account (12 digits starting with `3`): lake `i` is account `3{i:011}`.
pub fn lake_of_account(account: &str) -> Option<u64> {
    if twelve_digits_from(account, b'3') {
        account[1..].parse().ok()
    } else {
        None
    }
}

/// Whether `e` is a provider `call`.
pub fn is_call(e: &Event) -> bool {
    e.is(PROVIDER_TARGET, "call")
}

/// When a provider call reached the provider: its event's time less its latency.
pub fn started(e: &Event) -> u64 {
    e.t_us.saturating_sub(e.u64("latency_us").unwrap_or(0))
}

/// The time of the log's last event (0 for an empty log).
pub fn log_end(log: &EventLog) -> u64 {
    log.events().iter().map(|e| e.t_us).max().unwrap_or(0)
}

/// Microseconds as seconds with millisecond precision, for witnesses.
pub fn secs(t_us: u64) -> String {
    format!("{:.3}s", t_us as f64 / 1e6)
}

/// A `json!({...})` object as the map verdicts hold.
pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

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
pub mod test_support {
    //! Building events for the checkers' tests.

    use std::collections::BTreeMap;

    use serde_json::Value;

    use crate::events::Event;

    /// An event of `target` named `name` at `t_us` on `host`, with `fields`.
    pub fn ev(t_us: u64, host: &str, target: &str, name: &str, fields: &[(&str, Value)]) -> Event {
        Event {
            t_us,
            host: host.into(),
            target: target.into(),
            name: name.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_support::ev;
    use super::*;

    #[test]
    fn accounts_are_told_apart() {
        assert!(is_background("200000000007"));
        assert!(!is_background("100000000001"));
        assert!(!is_background("2000"));
        assert_eq!(lake_of_account("300000000042"), Some(42));
        assert_eq!(lake_of_account("100000000001"), None);
        assert_eq!(lake_of_account("anonymous"), None);
    }

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
