//! `priority_order`: under overload the system sheds batch work before interactive work. The
//! share of queries not served does not increase with priority, and interactive queries are
//! served (≥ 99 % of them) while their own demand is within capacity.
//!
//! Reads the replay client's view (`stampede::traffic`, per `seq`): a query's arrival is its
//! first `submitted`, which carries its `priority`; it is *served* when it ends `answered` 200
//! (after any resubmissions), and *not served* otherwise: refused for good, failed, past its
//! deadline, unanswered, or still open when the log ends. Arrivals are bucketed into
//! consecutive windows of W from the first arrival; a window is *overloaded* when its arrivals
//! exceed `capacity_per_s` × W. A window is judged when one more W has passed by the log's
//! end, time for its queries to end. Over the judged overloaded windows:
//! - (a) the share of interactive queries not served is at most that of batch queries;
//! - (b) over the windows whose interactive arrivals alone are within capacity × W, at least
//!   `min_served` of the interactive queries are served.
//!
//! The closest honest version of "shed rate" here is the share not served, whatever the
//! reason: a system without admission control sheds nothing, but its queries fail at their
//! deadlines instead, and a user sees the same. Unknown: no `capacity_per_s`, no judged
//! overloaded window, or no interactive query in one. Does not check: latency by priority.

use std::collections::BTreeMap;

use serde_json::json;

use super::clients::{ClientQuery, capacity, client_queries, closed_windows};
use super::obj;
use super::time::{log_end, micros, secs};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// The `priority` of an interactive query on the client's `submitted`.
pub const INTERACTIVE: &str = "interactive";

/// Parameters of `priority_order`, from the scenario.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Queries per second the system is provisioned for. No default: without it the verdict
    /// is unknown.
    pub capacity_per_s: Option<f64>,
    /// The windows arrivals are counted in. Default `60s`.
    pub window: Span,
    /// The least share of interactive queries served while their demand is within capacity.
    /// Default 0.99.
    pub min_served: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            capacity_per_s: None,
            window: Span(std::time::Duration::from_secs(60)),
            min_served: 0.99,
        }
    }
}

/// One query as the client saw it.
struct Query<'a> {
    arrival: &'a Event,
    interactive: bool,
    seen: ClientQuery<'a>,
}

impl Query<'_> {
    fn served(&self) -> bool {
        self.seen.served()
    }
}

/// Served and arrived counts of one class.
#[derive(Default, Clone, Copy)]
struct Tally {
    arrived: u64,
    served: u64,
}

impl Tally {
    fn add(&mut self, served: bool) {
        self.arrived += 1;
        self.served += u64::from(served);
    }
    fn unserved_share(self) -> f64 {
        if self.arrived == 0 {
            0.0
        } else {
            (self.arrived - self.served) as f64 / self.arrived as f64
        }
    }
}

/// What the judged overloaded windows hold.
struct Judged<'a> {
    windows: u64,
    interactive: Tally,
    batch: Tally,
    /// Interactive queries of the windows whose interactive demand was within capacity.
    within: Tally,
    /// Interactive queries not served in the judged windows.
    missed: Vec<&'a Query<'a>>,
}

fn queries(log: &EventLog) -> BTreeMap<u64, Query<'_>> {
    client_queries(log)
        .into_iter()
        .filter_map(|(seq, seen)| {
            let arrival = seen.first?;
            Some((
                seq,
                Query {
                    arrival,
                    interactive: arrival.str("priority") == Some(INTERACTIVE),
                    seen,
                },
            ))
        })
        .collect()
}

fn judge<'a>(
    qs: &'a BTreeMap<u64, Query<'a>>,
    log: &EventLog,
    p: &Params,
) -> Result<Judged<'a>, String> {
    let cap = capacity(p.capacity_per_s)?;
    let w = micros(p.window);
    if w == 0 {
        return Err("the window is empty: no rate can be measured".into());
    }
    if qs.is_empty() {
        return Err("no query was submitted".into());
    }
    let windows = closed_windows(
        qs.values().map(|q| (q.arrival.t_us, q)).collect(),
        w,
        log_end(log),
    );
    let room = cap * w as f64 / 1e6;
    let mut j = Judged {
        windows: 0,
        interactive: Tally::default(),
        batch: Tally::default(),
        within: Tally::default(),
        missed: Vec::new(),
    };
    for in_window in windows.values() {
        if in_window.len() as f64 <= room {
            continue;
        }
        j.windows += 1;
        let interactive = in_window.iter().filter(|q| q.interactive).count() as f64;
        for q in in_window {
            if q.interactive {
                j.interactive.add(q.served());
                if interactive <= room {
                    j.within.add(q.served());
                }
                if !q.served() {
                    j.missed.push(q);
                }
            } else {
                j.batch.add(q.served());
            }
        }
    }
    if j.windows == 0 {
        return Err(format!(
            "no window of {} with more than {:.1} arrivals (capacity × window) ended a window before the log did",
            secs(w),
            room
        ));
    }
    if j.interactive.arrived == 0 {
        return Err(format!(
            "no interactive query arrived in the {} overloaded windows",
            j.windows
        ));
    }
    Ok(j)
}

/// Checks that overload sheds batch before interactive work, and serves interactive demand
/// within capacity.
pub fn priority_order(log: &EventLog, p: &Params) -> Verdict {
    let qs = queries(log);
    let j = match judge(&qs, log, p) {
        Ok(j) => j,
        Err(why) => return Verdict::Unknown { why },
    };
    let (ui, ub) = (j.interactive.unserved_share(), j.batch.unserved_share());
    let within_share = if j.within.arrived == 0 {
        None
    } else {
        Some(j.within.served as f64 / j.within.arrived as f64)
    };
    let counts = obj(json!({
        "overloaded_windows": j.windows,
        "interactive": j.interactive.arrived, "interactive_served": j.interactive.served,
        "batch": j.batch.arrived, "batch_served": j.batch.served,
        "interactive_within_capacity": j.within.arrived,
        "interactive_within_capacity_served": j.within.served,
    }));
    let inverted = j.batch.arrived > 0 && ui > ub + 1e-12;
    let starved = within_share.is_some_and(|s| s < p.min_served - 1e-12);
    if !inverted && !starved {
        return Verdict::Pass { counts };
    }
    let mut why = Vec::new();
    if inverted {
        why.push(format!(
            "{:.0} % of interactive queries were not served against {:.0} % of batch ones",
            ui * 100.0,
            ub * 100.0
        ));
    }
    if let Some(s) = within_share.filter(|_| starved) {
        why.push(format!(
            "{} of {} interactive queries were served ({:.0} %, under {:.0} %) while their demand was within capacity",
            j.within.served,
            j.within.arrived,
            s * 100.0,
            p.min_served * 100.0
        ));
    }
    let mut events: Vec<Event> = Vec::new();
    for q in j.missed.iter().take(WITNESS_EVENTS / 2) {
        events.push(q.arrival.clone());
        if let Some(e) = q.seen.end {
            events.push(e.clone());
        }
    }
    events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary: format!("under overload ({} windows): {}", j.windows, why.join("; ")),
            counts,
            events,
        },
    }
}

/// The sometimes state: an overloaded window had interactive queries and left some batch
/// query unserved, so the system had to choose.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    let qs = queries(log);
    let reached = judge(&qs, log, p)
        .is_ok_and(|j| j.batch.arrived > j.batch.served && j.interactive.arrived > 0);
    (
        reached,
        "overload left batch queries unserved while interactive ones arrived",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{answered, ev, submitted_with};

    const S: u64 = 1_000_000;

    fn params() -> Params {
        Params {
            capacity_per_s: Some(1.0),
            ..Params::default()
        }
    }

    /// `n` arrivals a minute for `minutes` minutes from time 0, every `every`-th interactive;
    /// `served(interactive, k)` says whether query k of its class is answered 200 (else 504).
    fn run(n: u64, minutes: u64, every: u64, served: impl Fn(bool, u64) -> bool) -> EventLog {
        let mut events = Vec::new();
        let (mut ki, mut kb) = (0, 0);
        for seq in 0..n * minutes {
            let t = seq * 60 * S / n;
            let interactive = seq % every == 0;
            let prio = if interactive { "interactive" } else { "batch" };
            events.push(submitted_with(t, seq, &[("priority", json!(prio))]));
            let k = if interactive { &mut ki } else { &mut kb };
            let status = if served(interactive, *k) { 200 } else { 504 };
            *k += 1;
            events.push(answered(t + 10 * S, seq, status));
        }
        events.push(ev(
            (minutes + 2) * 60 * S,
            "h",
            "stampede::other",
            "tick",
            &[],
        ));
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn batch_shed_before_interactive_passes() {
        // 120 arrivals a minute against a capacity of 60; a quarter interactive, all served;
        // two thirds of batch served.
        let log = run(120, 3, 4, |i, k| i || k % 3 != 0);
        let Verdict::Pass { counts } = priority_order(&log, &params()) else {
            panic!("interactive first")
        };
        assert_eq!(counts["overloaded_windows"], 3);
        assert_eq!(counts["interactive"], 90);
        assert_eq!(counts["interactive_within_capacity_served"], 90);
        assert!(sometimes(&log, &params()).0);
    }

    #[test]
    fn shedding_alike_fails_on_interactive_goodput() {
        // Everyone loses one in three: rates equal, but interactive demand (30 a minute, within
        // capacity) is not served.
        let log = run(120, 3, 4, |_, k| k % 3 != 0);
        let Verdict::Fail { witness } = priority_order(&log, &params()) else {
            panic!("interactive demand within capacity lost a third")
        };
        assert!(
            witness.summary.contains("60 of 90 interactive"),
            "{}",
            witness.summary
        );
        assert!(
            !witness.summary.contains("batch ones"),
            "{}",
            witness.summary
        );
        assert!(witness.events.iter().any(|e| e.name == "answered"));
    }

    #[test]
    fn shedding_interactive_first_fails_on_rates() {
        // Interactive demand over capacity (every query interactive but each third): clause (b)
        // does not apply, clause (a) does.
        let log = run(120, 3, 1, |i, k| !i || k % 2 == 0);
        let v = priority_order(&log, &params());
        assert_eq!(v.word(), "pass", "all interactive: no batch to compare");
        let log = run(120, 3, 2, |i, k| !i || k % 2 == 0);
        let Verdict::Fail { witness } = priority_order(&log, &params()) else {
            panic!("half the interactive lost, no batch")
        };
        assert!(
            witness
                .summary
                .contains("50 % of interactive queries were not served against 0 % of batch"),
            "{}",
            witness.summary
        );
    }

    /// `n` arrivals a minute from `from_s` for `minutes` minutes, every `every`-th
    /// interactive, each served unless `unserved(interactive, k)`; the log ends at `end_s`.
    fn shifted(
        from_s: u64,
        n: u64,
        minutes: u64,
        every: u64,
        end_s: u64,
        unserved: impl Fn(bool, u64) -> bool,
    ) -> EventLog {
        let mut events = Vec::new();
        let (mut ki, mut kb) = (0, 0);
        for seq in 0..n * minutes {
            let t = from_s * S + seq * 60 * S / n;
            let interactive = seq % every == 0;
            let prio = if interactive { "interactive" } else { "batch" };
            events.push(submitted_with(t, seq, &[("priority", json!(prio))]));
            let k = if interactive { &mut ki } else { &mut kb };
            let status = if unserved(interactive, *k) { 504 } else { 200 };
            *k += 1;
            events.push(answered(t + S, seq, status));
        }
        events.push(ev(end_s * S, "h", "stampede::other", "tick", &[]));
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    fn counts(v: Verdict) -> serde_json::Map<String, serde_json::Value> {
        match v {
            Verdict::Pass { counts } => counts,
            Verdict::Fail { witness } => witness.counts,
            Verdict::Unknown { why } => panic!("unknown: {why}"),
        }
    }

    #[test]
    fn windows_start_at_the_first_arrival_and_need_one_more_before_the_end() {
        // From 30 s, 3 minutes at 120 a minute; the log ends exactly two windows after the
        // third starts: all three are judged, and one second less leaves the last out.
        let log = shifted(30, 120, 3, 4, 30 + 4 * 60, |_, _| false);
        assert_eq!(
            counts(priority_order(&log, &params()))["overloaded_windows"],
            3
        );
        let log = shifted(30, 120, 3, 4, 30 + 4 * 60 - 1, |_, _| false);
        assert_eq!(
            counts(priority_order(&log, &params()))["overloaded_windows"],
            2
        );
        // One minute of overload and a log that ends before a second minute has passed:
        // nothing is judged yet.
        let log = shifted(30, 120, 1, 4, 30 + 2 * 60 - 1, |_, _| false);
        assert_eq!(priority_order(&log, &params()).word(), "unknown");
    }

    #[test]
    fn a_window_at_capacity_is_not_overloaded_and_interactive_at_capacity_is_within_it() {
        // 60 a minute against a capacity of 60 a minute: not overloaded.
        let log = shifted(0, 60, 3, 4, 600, |_, _| false);
        assert_eq!(priority_order(&log, &params()).word(), "unknown");
        // 120 a minute, every other one interactive: interactive demand exactly at capacity
        // counts as within it.
        let log = shifted(0, 120, 3, 2, 600, |_, _| false);
        assert_eq!(
            counts(priority_order(&log, &params()))["interactive_within_capacity"],
            180
        );
        // A capacity of 1.01 a second (60.6 a minute): 61 interactive a minute are over it.
        let log = shifted(0, 122, 3, 2, 600, |_, _| false);
        let p = Params {
            capacity_per_s: Some(1.01),
            ..Params::default()
        };
        assert_eq!(
            counts(priority_order(&log, &p))["interactive_within_capacity"],
            0
        );
    }

    #[test]
    fn equal_shares_and_exactly_the_least_served_pass() {
        // Half the queries interactive, over capacity on their own; one in ten of each class
        // not served: equal shares pass.
        let log = shifted(0, 200, 3, 2, 600, |_, k| k % 10 == 0);
        assert_eq!(priority_order(&log, &params()).word(), "pass");
        // 100 interactive within capacity, 1 not served: exactly 99 % served (and batch loses
        // more, 10 of 200).
        let log = shifted(0, 150, 2, 3, 600, |i, k| if i { k == 0 } else { k < 10 });
        let v = priority_order(&log, &params());
        let c = counts(v.clone());
        assert_eq!(c["interactive_within_capacity"], 100);
        assert_eq!(c["interactive_within_capacity_served"], 99);
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn the_witness_shows_only_queries_not_served_and_no_more_than_its_share() {
        let log = run(120, 3, 4, |i, k| !i || k % 2 == 0);
        let Verdict::Fail { witness } = priority_order(&log, &params()) else {
            panic!("half the interactive queries lost")
        };
        // Arrival and end of the first WITNESS_EVENTS / 2 queries not served.
        assert_eq!(witness.events.len(), WITNESS_EVENTS / 2 * 2);
        for e in witness.events.iter().filter(|e| e.name == "answered") {
            assert_ne!(e.u64("status"), Some(200), "{e:?}");
        }
    }

    #[test]
    fn sometimes_needs_unserved_batch_work() {
        let log = run(120, 3, 4, |_, _| true);
        assert!(
            !sometimes(&log, &params()).0,
            "everything served: no choice was made"
        );
    }

    #[test]
    fn no_overload_or_no_capacity_is_unknown() {
        let log = run(30, 3, 4, |_, _| true);
        assert_eq!(priority_order(&log, &params()).word(), "unknown");
        assert!(!sometimes(&log, &params()).0);
        let log = run(120, 3, 4, |_, _| true);
        assert_eq!(priority_order(&log, &Params::default()).word(), "unknown");
        // Only batch arrives.
        let log = run(120, 3, 1000, |_, _| true);
        let log = EventLog::from_events(
            log.events()
                .iter()
                .filter(|e| e.u64("seq") != Some(0))
                .cloned()
                .collect(),
        );
        assert_eq!(priority_order(&log, &params()).word(), "unknown");
    }
}
