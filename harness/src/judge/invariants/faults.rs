//! Faults on the timeline, as the log records them: each fault's window is a `fault_start`
//! and the `fault_end` with the same `id`; the `fault` field names its kind (as written under
//! `action:`, or `traffic.burst` for a generated burst). A fault that lasts to the end of the
//! run has no `fault_end`.

use crate::events::{Event, EventLog};

use super::vocabulary::FAULT_TARGET;

/// The kinds of fault that trigger a recovery: the world's faults on the system, and the
/// traffic's burst (load is a trigger as much as a fault is). A stalled log pipeline is not
/// one: it blinds the alerts, the system does not feel it.
pub const TRIGGERS: [&str; 9] = [
    "traffic.burst",
    "account.freeze",
    "region.outage",
    "api.throttle",
    "api.errors",
    "latency",
    "fleet.capacity",
    "host.crash",
    "network.partition",
];

/// One fault's window.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Its kind, e.g. `region.outage`.
    pub fault: &'a str,
    /// Its `fault_start`.
    pub start: &'a Event,
    /// Its `fault_end`, unless it lasted to the end of the run.
    pub end: Option<&'a Event>,
}

impl Window<'_> {
    /// A field of its start, e.g. `region`, `api`, `account`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.start.str(key)
    }
}

impl Window<'_> {
    /// Its kind and parameters in words, e.g. `api.throttle AssumeRole 2/s eu-west-1`.
    pub fn label(&self) -> String {
        let mut label = self.fault.to_string();
        let fields = &self.start.fields;
        for key in [
            "account",
            "api",
            "rate_per_s",
            "per_s",
            "fraction",
            "extra_ms",
            "host",
        ] {
            let Some(v) = fields.get(key) else {
                continue;
            };
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            label.push(' ');
            label.push_str(&match key {
                "rate_per_s" | "per_s" => format!("{v}/s"),
                "extra_ms" => format!("+{v}ms"),
                _ => v,
            });
        }
        if let (Some(a), Some(b)) = (self.str("a"), self.str("b")) {
            label.push_str(&format!(" {a}/{b}"));
        }
        if let Some(region) = self.str("region") {
            label.push(' ');
            label.push_str(region);
        }
        label
    }
}

/// The kind of fault an event of its window names, e.g. `region.outage`.
pub fn kind(e: &Event) -> &str {
    e.str("fault").unwrap_or("fault")
}

/// Every fault's window, in order of start.
pub fn windows(log: &EventLog) -> Vec<Window<'_>> {
    let mut out: Vec<Window<'_>> = Vec::new();
    for e in log.of(FAULT_TARGET) {
        match e.name.as_str() {
            "fault_start" => out.push(Window {
                fault: kind(e),
                start: e,
                end: None,
            }),
            "fault_end" => {
                if let Some(w) = out
                    .iter_mut()
                    .find(|w| w.end.is_none() && w.start.u64("id") == e.u64("id"))
                {
                    w.end = Some(e);
                }
            }
            _ => {}
        }
    }
    out
}

/// The windows of faults of `kind`.
pub fn of_kind<'a>(log: &'a EventLog, kind: &str) -> Vec<Window<'a>> {
    windows(log)
        .into_iter()
        .filter(|w| w.fault == kind)
        .collect()
}

/// The first fault of the run that ended, with the event that ended it: the trigger of
/// `recovers` and `no_metastability`. A fault that lasts to the end of the run is a condition
/// of the world (a provider slower throughout, say), not a trigger to recover from. `Err` says
/// why there is none.
pub fn first_trigger(log: &EventLog) -> Result<(&Event, &Event), String> {
    let triggers: Vec<Window<'_>> = windows(log)
        .into_iter()
        .filter(|w| TRIGGERS.contains(&w.fault))
        .collect();
    if let Some((w, end)) = triggers.iter().find_map(|w| Some((w, w.end?))) {
        return Ok((w.start, end));
    }
    Err(match triggers.first() {
        Some(w) => format!(
            "no fault ended: the {} at {} lasts to the end of the run",
            w.fault,
            super::time::secs(w.start.t_us)
        ),
        None => "no fault and no overload on the timeline: nothing to recover from".into(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::judge::invariants::test_support::ev;

    fn f(t_s: u64, name: &str, id: u64, fault: &str, fields: &[(&str, Value)]) -> Event {
        let mut all = vec![("id", json!(id)), ("fault", json!(fault))];
        all.extend(fields.iter().cloned());
        ev(t_s * 1_000_000, "harness", FAULT_TARGET, name, &all)
    }

    #[test]
    fn a_window_ends_at_the_end_with_its_id() {
        let api = [("api", json!("GetTable"))];
        // Two throttles of one api overlap: each ends at its own end, not at the other's start.
        let log = EventLog::from_events(vec![
            f(10, "fault_start", 0, "api.throttle", &api),
            f(20, "fault_start", 1, "api.throttle", &api),
            f(30, "fault_end", 1, "api.throttle", &api),
            f(40, "fault_end", 0, "api.throttle", &api),
            f(50, "fault_start", 2, "host.crash", &[]),
        ]);
        let ends: Vec<(u64, Option<u64>)> = windows(&log)
            .iter()
            .map(|w| (w.start.t_us / 1_000_000, w.end.map(|e| e.t_us / 1_000_000)))
            .collect();
        assert_eq!(ends, vec![(10, Some(40)), (20, Some(30)), (50, None)]);
        let (start, end) = first_trigger(&log).unwrap();
        assert_eq!((start.t_us, end.t_us), (10_000_000, 40_000_000));
    }

    #[test]
    fn a_fault_that_never_ends_or_is_no_trigger_is_not_the_trigger() {
        let log = EventLog::from_events(vec![
            f(5, "fault_start", 0, "logs.stall", &[]),
            f(6, "fault_end", 0, "logs.stall", &[]),
            f(10, "fault_start", 1, "host.crash", &[]),
        ]);
        let why = first_trigger(&log).unwrap_err();
        assert!(why.contains("host.crash at 10"), "{why}");
        let none = first_trigger(&EventLog::from_events(vec![])).unwrap_err();
        assert!(none.contains("no fault"), "{none}");
    }
}
