//! One run as plain data: its header, verdicts, query outcomes, provider calls, series over
//! virtual time and timeline marks. The harness fills it from the event log; everything this
//! crate renders reads only this. It is written to the run directory as `report.json`, so
//! that `compare` and `capacity` can read runs back without the event log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::latency::Latency;

/// Calls by service, api and outcome.
pub type Calls = BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>;

/// Everything a report shows of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunData {
    /// What ran, and how to run it again.
    pub header: Header,
    /// One row per invariant the scenario lists, in name order.
    pub verdicts: Vec<VerdictRow>,
    /// Queries by their outcome as the replay client saw it.
    pub outcomes: Outcomes,
    /// The system's terminal query events by name (the system's own view), as `results.json`
    /// has always carried them.
    pub query_events: BTreeMap<String, u64>,
    /// The system's provider calls: those that name the system's operation.
    pub system_calls: Calls,
    /// Every other account's provider calls (other customers, background traffic).
    pub other_calls: Calls,
    /// Per api with a quota, the highest share of it the system's accounts used in any window
    /// of 1 s, 10 s or 60 s (1.0 is the quota exactly).
    pub quota_peaks: BTreeMap<String, f64>,
    /// Per interval figures.
    pub series: Series,
    /// Faults, operator actions, alerts, freezes and the users' view, on the virtual clock.
    pub timeline: Vec<Mark>,
}

/// What ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Header {
    /// The scenario's name.
    pub scenario: String,
    /// Its file, as given.
    pub scenario_file: String,
    /// Its one-sentence description.
    pub description: String,
    /// The seed.
    pub seed: u64,
    /// The event log's digest.
    pub digest: String,
    /// stampede's version and build profile, e.g. `0.1.0 debug`.
    pub build: String,
    /// The virtual duration, in milliseconds.
    pub virtual_ms: u64,
    /// The traffic's span: from the first arrival to the last, at least 1 s; the whole run
    /// when one query arrived; 0 without traffic. Rates (offered, goodput) are per second of
    /// it.
    pub traffic_ms: u64,
    /// Wall time the run took, in seconds (not deterministic).
    pub wall_s: f64,
    /// Simulator steps.
    pub steps: u64,
    /// Events in the log.
    pub events: u64,
    /// The command that replays the run.
    pub replay: String,
    /// The traffic's load multiplier.
    pub load: f64,
    /// Invariants the scenario expects to be violated.
    pub expected_violations: Vec<String>,
    /// The scenario's faults and operator actions, as written (for telling twins apart).
    pub faults: Value,
    /// The scenario's world, as written.
    pub world: Value,
    /// The scenario's traffic, as written.
    pub traffic: Value,
    /// The scenario's switches and tuning of the system, as written (for telling twins apart).
    pub system: Value,
}

/// An invariant's verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It held.
    Pass,
    /// It was violated, with a witness.
    Fail,
    /// The run could not tell.
    #[default]
    Unknown,
}

impl Status {
    /// The word: `pass`, `fail` or `unknown`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        }
    }

    /// The sign written beside it, so that no status is told by colour alone.
    pub fn sign(self) -> &'static str {
        match self {
            Self::Pass => "✓",
            Self::Fail => "✗",
            Self::Unknown => "?",
        }
    }
}

/// One invariant's verdict, as a report shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerdictRow {
    /// The invariant.
    pub name: String,
    /// Pass, fail or unknown.
    pub status: Status,
    /// Whether the scenario expects it to be violated.
    pub expected: bool,
    /// One line: the witness's summary, the reason it is unknown, or the pass's counts.
    pub detail: String,
    /// The first witness events, one line each (`t=12.345s host target name fields`).
    pub witness: Vec<String>,
    /// When the first witness event happened, in ms of virtual time.
    pub first_violation_ms: Option<u64>,
    /// The state the run had to reach for a pass to mean something, and whether it did.
    pub sometimes: Option<Sometimes>,
    /// Why the scenario says it does not reach that state, if it says.
    pub unreached_why: Option<String>,
    /// The verdict exactly as the checker gave it (`results.json` carries this).
    pub raw: Value,
}

impl VerdictRow {
    /// Whether this row is as the scenario expects: a pass not expected to fail, or a failure
    /// expected. Unknown is neither.
    pub fn as_expected(&self) -> bool {
        match self.status {
            Status::Pass => !self.expected,
            Status::Fail => self.expected,
            Status::Unknown => false,
        }
    }

    /// Why the row decides nothing, when it does not: unknown, or a pass whose state was never
    /// reached with no reason in the scenario (`expect.unreached`). Such a run is inconclusive:
    /// `stampede run` exits 3 on it, and a sweep counts it apart.
    pub fn inconclusive(&self) -> Option<String> {
        match self.status {
            Status::Unknown => Some(format!("unknown: {}", self.detail)),
            Status::Pass if self.unreached_why.is_none() => {
                let state = self.sometimes.as_ref().filter(|s| !s.reached)?;
                Some(format!(
                    "passed without its state being reached ({}), and the scenario gives no reason under `expect.unreached`",
                    state.state
                ))
            }
            _ => None,
        }
    }

    /// The cell a table shows: `✓ pass`, `✗ fail`, `✗ fail (expected)`, `? unknown`, or
    /// `✓ pass (never reached)`.
    pub fn cell(&self) -> String {
        let mut s = format!("{} {}", self.status.sign(), self.status.word());
        if self.expected {
            s.push_str(" (expected ✗)");
        }
        if self.status == Status::Pass && self.sometimes.as_ref().is_some_and(|s| !s.reached) {
            s.push_str(" (never reached)");
        }
        s
    }
}

/// A "sometimes" state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sometimes {
    /// The state, in words.
    pub state: String,
    /// Whether the run reached it.
    pub reached: bool,
}

/// Queries by outcome, as the replay client saw them (one query per submission sequence,
/// whatever its resubmissions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outcomes {
    /// Queries the client offered.
    pub offered: u64,
    /// Answered 200.
    pub succeeded: u64,
    /// Answered 500 (failed) or 504 (deadline).
    pub failed: u64,
    /// Refused for good: 400, or 429/503 after the client's resubmissions.
    pub refused: u64,
    /// No coordinator answered, or it stopped answering.
    pub lost: u64,
    /// Cancelled (499).
    pub cancelled: u64,
    /// Still running when the run ended.
    pub running: u64,
}

/// Figures per interval of virtual time. Every vector has one entry per interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Series {
    /// The interval's width, in milliseconds.
    pub bin_ms: u64,
    /// Queries offered (first submissions) per interval.
    pub offered: Vec<u64>,
    /// Queries that ended in each outcome, counted in the interval they ended.
    pub succeeded: Vec<u64>,
    /// See `succeeded`.
    pub failed: Vec<u64>,
    /// See `succeeded`.
    pub refused: Vec<u64>,
    /// See `succeeded`.
    pub lost: Vec<u64>,
    /// Queries running on the coordinators (their admission gauges, summed): the highest in
    /// the interval.
    pub running: Vec<u64>,
    /// Queries queued by admission: the highest in the interval.
    pub queued: Vec<u64>,
    /// Lake tasks of running queries not yet done: the most in the interval.
    pub backlog: Vec<u64>,
    /// Latency of succeeded queries as users saw it (from first submission to answer), by the
    /// interval they ended in.
    pub latency: Vec<Latency>,
    /// The system's provider calls per api, by outcome, per interval.
    pub system_calls: BTreeMap<String, BTreeMap<String, Vec<u64>>>,
    /// Every other account's provider calls per interval, by outcome.
    pub other_calls: BTreeMap<String, Vec<u64>>,
    /// Metadata fleet utilisation per region (1.0 = fully used), the interval's last reading.
    pub fleet: BTreeMap<String, Vec<Option<f64>>>,
    /// Per api with a quota: the system's calls in the interval over what the quota admits in
    /// it (1.0 = exactly the quota).
    pub quota_use: BTreeMap<String, Vec<f64>>,
}

impl Series {
    /// The number of intervals.
    pub fn len(&self) -> usize {
        self.offered.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.offered.is_empty()
    }

    /// The start of interval `i`, in seconds of virtual time.
    pub fn start_s(&self, i: usize) -> f64 {
        (i as u64 * self.bin_ms) as f64 / 1000.0
    }

    /// The system's throttled calls per interval, all apis together.
    pub fn throttles(&self) -> Vec<u64> {
        let mut out = vec![0; self.len()];
        for by_outcome in self.system_calls.values() {
            if let Some(v) = by_outcome.get("throttled") {
                for (o, n) in out.iter_mut().zip(v) {
                    *o += n;
                }
            }
        }
        out
    }

    /// The system's provider calls per interval, all apis and outcomes together.
    pub fn calls_total(&self) -> Vec<u64> {
        let mut out = vec![0; self.len()];
        for v in self.system_calls.values().flat_map(|m| m.values()) {
            for (o, n) in out.iter_mut().zip(v) {
                *o += n;
            }
        }
        out
    }

    /// Latency of the whole run: the sum of the intervals' histograms.
    pub fn latency_total(&self) -> Latency {
        let mut total = Latency::new();
        for l in &self.latency {
            total.add(l);
        }
        total
    }
}

/// Which lane of the timeline a mark goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// A fault the world did to the system.
    Fault,
    /// An operator's action.
    Operator,
    /// An alert rule firing.
    Alert,
    /// The provider froze one of the system's accounts.
    Frozen,
    /// What users saw: the first failure, recovery.
    Users,
}

impl Lane {
    /// The lane's name on the page.
    pub fn title(self) -> &'static str {
        match self {
            Self::Fault => "faults",
            Self::Operator => "operator",
            Self::Alert => "alerts",
            Self::Frozen => "frozen by provider",
            Self::Users => "users",
        }
    }
}

/// Something on the timeline: a window, or an instant when `end_ms` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Its lane.
    pub lane: Lane,
    /// What it was, in a few words.
    pub label: String,
    /// When it began, in ms of virtual time.
    pub start_ms: u64,
    /// When it ended; `None` for an instant.
    pub end_ms: Option<u64>,
}

impl RunData {
    /// Marks of one lane.
    pub fn marks(&self, lane: Lane) -> impl Iterator<Item = &Mark> {
        self.timeline.iter().filter(move |m| m.lane == lane)
    }

    /// Time the system's accounts spent frozen, in ms (overlapping freezes counted once).
    pub fn frozen_ms(&self) -> u64 {
        union_ms(
            self.marks(Lane::Frozen)
                .map(|m| (m.start_ms, m.end_ms.unwrap_or(self.header.virtual_ms))),
        )
    }

    /// When users first saw a failure, in ms.
    pub fn first_failure_ms(&self) -> Option<u64> {
        self.marks(Lane::Users)
            .find(|m| m.label.starts_with(FIRST_FAILURE))
            .map(|m| m.start_ms)
    }

    /// When users' queries succeeded again after the last failure they saw, in ms.
    pub fn recovered_ms(&self) -> Option<u64> {
        self.marks(Lane::Users)
            .find(|m| m.label.starts_with(RECOVERED))
            .map(|m| m.start_ms)
    }

    /// From the first failure users saw to the first success after the last one, in ms;
    /// `None` when users saw no failure or it never recovered.
    pub fn time_to_recover_ms(&self) -> Option<u64> {
        Some(
            self.recovered_ms()?
                .saturating_sub(self.first_failure_ms()?),
        )
    }

    /// Succeeded queries per second of the traffic's span (first arrival to last): over the
    /// same span as the offered rate, so that it never exceeds it.
    pub fn goodput_per_s(&self) -> f64 {
        per_s(self.outcomes.succeeded, self.header.traffic_ms)
    }

    /// Offered queries per second of the traffic's span (first arrival to last).
    pub fn offered_per_s(&self) -> f64 {
        per_s(self.outcomes.offered, self.header.traffic_ms)
    }

    /// The system's provider calls, all of them.
    pub fn system_calls_total(&self) -> u64 {
        total(&self.system_calls)
    }

    /// The system's provider calls per query offered.
    pub fn calls_per_query(&self) -> f64 {
        self.system_calls_total() as f64 / self.outcomes.offered.max(1) as f64
    }

    /// The system's throttled calls.
    pub fn throttles(&self) -> u64 {
        self.system_calls
            .values()
            .flat_map(|apis| apis.values())
            .filter_map(|o| o.get("throttled"))
            .sum()
    }

    /// The api closest to (or furthest over) its quota, and its peak share.
    pub fn peak_quota(&self) -> Option<(&str, f64)> {
        self.quota_peaks
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, v)| (k.as_str(), *v))
    }

    /// Time-averaged queries in the system (running and queued), over the intervals.
    pub fn in_system_avg(&self) -> f64 {
        let s = &self.series;
        if s.is_empty() {
            return 0.0;
        }
        let sum: u64 = s.running.iter().zip(&s.queued).map(|(r, q)| r + q).sum();
        sum as f64 / s.len() as f64
    }
}

/// The label of the users' lane's first-failure mark begins with this.
pub const FIRST_FAILURE: &str = "first failure users saw";
/// The label of the users' lane's recovery mark begins with this.
pub const RECOVERED: &str = "recovered";

/// `n` per second over `ms` milliseconds.
pub fn per_s(n: u64, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        n as f64 * 1000.0 / ms as f64
    }
}

/// All calls in `calls`.
pub fn total(calls: &Calls) -> u64 {
    calls
        .values()
        .flat_map(|apis| apis.values())
        .flat_map(|o| o.values())
        .sum()
}

/// The length of the union of `[start, end)` windows.
fn union_ms(windows: impl Iterator<Item = (u64, u64)>) -> u64 {
    let mut w: Vec<(u64, u64)> = windows.filter(|(a, b)| b > a).collect();
    w.sort_unstable();
    let (mut sum, mut reach) = (0u64, 0u64);
    for (a, b) in w {
        let a = a.max(reach);
        if b > a {
            sum += b - a;
            reach = b;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_freezes_count_once() {
        assert_eq!(union_ms([(0, 10), (5, 20), (30, 40)].into_iter()), 30);
        assert_eq!(union_ms([(10, 10)].into_iter()), 0);
    }

    #[test]
    fn cells_say_expected_and_never_reached() {
        let mut r = VerdictRow {
            status: Status::Fail,
            expected: true,
            ..VerdictRow::default()
        };
        assert_eq!(r.cell(), "✗ fail (expected ✗)");
        assert!(r.as_expected());
        r.status = Status::Pass;
        r.expected = false;
        r.sometimes = Some(Sometimes {
            state: "x".into(),
            reached: false,
        });
        assert_eq!(r.cell(), "✓ pass (never reached)");
    }

    #[test]
    fn recovery_is_measured_from_the_first_failure() {
        let mark = |label: &str, t| Mark {
            lane: Lane::Users,
            label: label.into(),
            start_ms: t,
            end_ms: None,
        };
        let run = RunData {
            timeline: vec![
                mark(&format!("{FIRST_FAILURE}: 500"), 1_000),
                mark(RECOVERED, 4_500),
            ],
            ..RunData::default()
        };
        assert_eq!(run.time_to_recover_ms(), Some(3_500));
    }
}
