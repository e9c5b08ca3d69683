//! Faults on the timeline: which events start one, the run's first fault that ended, and when
//! a fault ended.

use crate::events::{Event, EventLog};

use super::vocabulary::FAULT_TARGET;

/// Fault events that start a fault. `overload` is the harness's mark of a traffic burst (a
/// `burst` generator's window): load is a trigger as much as a fault is.
pub const FAULT_STARTS: [&str; 9] = [
    "overload",
    "freeze",
    "region_down",
    "throttle",
    "errors",
    "latency",
    "fleet_capacity",
    "host_crash",
    "partition",
];

/// The first fault of the run that ended, with when it ended and the event that ended it: the
/// trigger of `recovers` and `no_metastability`. A fault that lasts to the end of the run is a
/// condition of the world (a provider slower throughout, say), not a trigger to recover from.
/// `Err` says why there is none.
pub fn first_trigger(log: &EventLog) -> Result<(&Event, u64, Option<&Event>), String> {
    let mut open = None;
    for start in log
        .of(FAULT_TARGET)
        .filter(|e| FAULT_STARTS.contains(&e.name.as_str()))
    {
        match fault_end(log, start) {
            Some((t1, by)) => return Ok((start, t1, by)),
            None => {
                open.get_or_insert(start);
            }
        }
    }
    Err(match open {
        Some(start) => format!(
            "no fault ended: the {} at {} lasts to the end of the run",
            start.name,
            super::time::secs(start.t_us)
        ),
        None => "no fault and no overload on the timeline: nothing to recover from".into(),
    })
}

/// When the fault started by `start` ended, and the event that ended it if one did (a freeze
/// may end by its own duration). The end is the first matching fault event at or after it: for
/// `freeze` the earlier of its `duration_ms` and a `thaw` of the same account; `region_up` of
/// the same region; the next `throttle` (or `errors`) of the same region and api, `latency` or
/// `fleet_capacity` of the same region; `host_restart` of the same host; `heal` of the same
/// pair, either way round; `overload_end` for an `overload`. `None`: it never ended.
pub fn fault_end<'a>(log: &'a EventLog, start: &'a Event) -> Option<(u64, Option<&'a Event>)> {
    let same = |e: &Event, k: &str| e.str(k) == start.str(k);
    let after = log
        .of(FAULT_TARGET)
        .filter(|e| e.t_us >= start.t_us && !std::ptr::eq(*e, start));
    let mut ends = after.filter(|e| match start.name.as_str() {
        "freeze" => e.name == "thaw" && same(e, "account"),
        "region_down" => e.name == "region_up" && same(e, "region"),
        "throttle" | "errors" => e.name == start.name && same(e, "region") && same(e, "api"),
        "latency" | "fleet_capacity" => e.name == start.name && same(e, "region"),
        "host_crash" => e.name == "host_restart" && same(e, "host"),
        "overload" => e.name == "overload_end",
        "partition" => {
            e.name == "heal"
                && ((same(e, "a") && same(e, "b"))
                    || (e.str("a") == start.str("b") && e.str("b") == start.str("a")))
        }
        _ => false,
    });
    let event = ends.next().map(|e| (e.t_us, Some(e)));
    let timed = (start.name == "freeze")
        .then(|| start.u64("duration_ms"))
        .flatten()
        .map(|ms| (start.t_us.saturating_add(ms.saturating_mul(1000)), None));
    match (event, timed) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::judge::invariants::test_support::ev;

    /// The first fault event of the log, ended or not.
    fn first_fault(log: &EventLog) -> Option<&Event> {
        log.of(FAULT_TARGET)
            .find(|e| FAULT_STARTS.contains(&e.name.as_str()))
    }

    #[test]
    fn faults_pair_with_their_end() {
        let f = |t_s: u64, name: &str, fields: &[(&str, Value)]| {
            ev(t_s * 1_000_000, "harness", FAULT_TARGET, name, fields)
        };
        let r = |x: &str| ("region", json!(x));
        // A throttle ends at the next throttle of its region and api; another region's does not.
        let log = EventLog::from_events(vec![
            f(5, "region_up", &[r("a")]),
            f(10, "throttle", &[r("a"), ("api", json!("GetTable"))]),
            f(20, "throttle", &[r("b"), ("api", json!("GetTable"))]),
            f(30, "throttle", &[r("a"), ("api", json!("GetTable"))]),
        ]);
        let start = first_fault(&log).expect("a fault");
        assert_eq!(start.t_us, 10_000_000);
        let (t1, by) = fault_end(&log, start).expect("it ended");
        assert_eq!(t1, 30_000_000);
        assert_eq!(by.map(|e| e.t_us), Some(30_000_000));
        // A freeze ends by its duration when no thaw comes first.
        let log = EventLog::from_events(vec![
            f(
                10,
                "freeze",
                &[("account", json!("1")), ("duration_ms", json!(5_000))],
            ),
            f(40, "thaw", &[("account", json!("1"))]),
        ]);
        let start = first_fault(&log).expect("a fault");
        assert_eq!(fault_end(&log, start), Some((15_000_000, None)));
        // A crash with no restart never ends.
        let log = EventLog::from_events(vec![f(10, "host_crash", &[("host", json!("c"))])]);
        assert_eq!(fault_end(&log, first_fault(&log).expect("a fault")), None);
        assert!(first_fault(&EventLog::from_events(vec![f(1, "region_up", &[r("a")])])).is_none());
    }
}
