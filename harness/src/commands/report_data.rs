//! A run turned into the plain data the `reports` crate renders: verdicts, the client's view
//! of each query, the provider's log of calls, the coordinators' gauges, the fleet's readings
//! and the timeline, binned over virtual time. Everything here reads the event log and the
//! scenario; nothing reads what a mechanism says of itself.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use stampede_reports::run::{
    FIRST_FAILURE, Header, Lane, Mark, Outcomes, RECOVERED, RunData, Series, Sometimes, Status,
    VerdictRow,
};

use crate::commands::run::RunReport;
use crate::events::{Event, EventLog};
use crate::input::scenario::Fault;
use crate::judge::invariants::Verdict;
use crate::judge::invariants::calls::{is_call, is_system_call, started};
use crate::judge::invariants::clients::{client_queries, user_visible_failure};
use crate::judge::invariants::vocabulary::is_background;

/// Bin widths a report may use, in seconds: the first that gives at most [`MAX_BINS`].
const BIN_WIDTHS_S: [u64; 13] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
/// The most intervals a chart gets.
const MAX_BINS: u64 = 200;

/// The interval width for a run of `virtual_ms`: about 100 to 200 intervals, at least 1 s.
pub fn bin_ms(virtual_ms: u64) -> u64 {
    let w = BIN_WIDTHS_S
        .iter()
        .find(|w| virtual_ms.div_ceil(**w * 1000) <= MAX_BINS)
        .unwrap_or(&3600);
    w * 1000
}

/// The report data of a run; `replay` is the command that replays it.
pub fn run_data(report: &RunReport, replay: &str) -> RunData {
    let scenario = &report.prepared.scenario;
    let virtual_ms = scenario.duration.0.as_millis() as u64;
    let header = Header {
        scenario: scenario.name.clone(),
        scenario_file: report.prepared.path.display().to_string(),
        description: scenario.about.clone(),
        seed: report.seed,
        digest: report.digest.clone(),
        build: format!(
            "{} {}",
            env!("CARGO_PKG_VERSION"),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        ),
        virtual_ms,
        traffic_ms: traffic_ms(&report.log, virtual_ms),
        wall_s: report.wall.as_secs_f64(),
        steps: report.steps,
        events: report.log.events().len() as u64,
        replay: replay.to_string(),
        load: scenario.traffic.load,
        expected_violations: scenario
            .expect
            .violated
            .iter()
            .map(|n| n.as_str().to_string())
            .collect(),
        faults: json!({ "faults": scenario.faults, "operator": scenario.operator }),
        world: json!(scenario.world),
        traffic: json!(scenario.traffic),
        system: json!(scenario.system),
    };
    let quotas = crate::judge::checks::quotas(scenario);
    let mut data = RunData {
        header,
        verdicts: verdicts(report),
        query_events: crate::commands::output::query_outcomes(&report.log),
        quota_peaks: crate::judge::invariants::provider_quota::peak_shares(
            &report.log,
            &quotas,
            |a| !is_background(a),
        ),
        ..RunData::default()
    };
    let bin = bin_ms(virtual_ms);
    let bins = virtual_ms.div_ceil(bin).max(1) as usize;
    let mut s = Series {
        bin_ms: bin,
        offered: vec![0; bins],
        succeeded: vec![0; bins],
        failed: vec![0; bins],
        refused: vec![0; bins],
        lost: vec![0; bins],
        running: vec![0; bins],
        queued: vec![0; bins],
        backlog: vec![0; bins],
        latency: vec![Default::default(); bins],
        ..Series::default()
    };
    let at = |t_us: u64| ((t_us / 1000 / bin) as usize).min(bins - 1);
    clients(&report.log, &mut data, &mut s, &at);
    calls(&report.log, &quotas, &mut data, &mut s, &at, bin);
    gauges(&report.log, &mut s, &at);
    data.series = s;
    data.timeline = timeline(report, virtual_ms);
    data
}

/// From the first arrival to the last, at least 1 s; the whole run (`virtual_ms`) when only
/// one query arrived, whose rate is one per run, not one a second; 0 without arrivals.
fn traffic_ms(log: &EventLog, virtual_ms: u64) -> u64 {
    let arrivals = crate::judge::invariants::clients::arrivals(log);
    match arrivals.as_slice() {
        [] => 0,
        [_] => virtual_ms.max(1000),
        [a, .., b] => ((b.t_us - a.t_us) / 1000).max(1000),
    }
}

fn verdicts(report: &RunReport) -> Vec<VerdictRow> {
    let scenario = &report.prepared.scenario;
    report
        .verdicts
        .iter()
        .map(|(name, v)| {
            let (status, detail, witness) = match v {
                Verdict::Pass { counts } => (Status::Pass, counts_line(counts), vec![]),
                Verdict::Fail { witness } => (
                    Status::Fail,
                    witness.summary.clone(),
                    witness.events.iter().collect::<Vec<_>>(),
                ),
                Verdict::Unknown { why } => (Status::Unknown, why.clone(), vec![]),
            };
            VerdictRow {
                name: name.clone(),
                status,
                expected: scenario.expect.violated.iter().any(|n| n.as_str() == name),
                detail,
                first_violation_ms: witness.iter().map(|e| e.t_us / 1000).min(),
                witness: witness.iter().map(|e| e.to_string()).collect(),
                sometimes: report.sometimes.get(name).map(|s| Sometimes {
                    state: s.state.to_string(),
                    reached: s.reached,
                }),
                unreached_why: scenario
                    .expect
                    .unreached
                    .iter()
                    .find(|(n, _)| n.as_str() == name)
                    .map(|(_, why)| why.clone()),
                raw: json!(v),
            }
        })
        .collect()
}

fn counts_line(counts: &serde_json::Map<String, serde_json::Value>) -> String {
    counts
        .iter()
        .filter(|(k, _)| !k.starts_with("digest"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Offered queries, outcomes and latency, from the replay client's view.
fn clients(log: &EventLog, data: &mut RunData, s: &mut Series, at: &impl Fn(u64) -> usize) {
    let o: &mut Outcomes = &mut data.outcomes;
    for q in client_queries(log).values() {
        let Some(t0) = q.submitted_us else { continue };
        o.offered += 1;
        s.offered[at(t0)] += 1;
        let Some(end) = q.end else {
            o.running += 1;
            continue;
        };
        let i = at(end.t_us);
        match (end.name.as_str(), q.final_status().unwrap_or(0)) {
            ("answered", 200) => {
                o.succeeded += 1;
                s.succeeded[i] += 1;
                s.latency[i].record(end.t_us.saturating_sub(t0) / 1000);
            }
            ("answered", 499) => o.cancelled += 1,
            ("answered", _) => {
                o.failed += 1;
                s.failed[i] += 1;
            }
            ("refused", _) => {
                o.refused += 1;
                s.refused[i] += 1;
            }
            _ => {
                o.lost += 1;
                s.lost[i] += 1;
            }
        }
    }
}

/// The provider's log: the system's calls apart from other accounts', and quota use.
fn calls(
    log: &EventLog,
    quotas: &BTreeMap<String, crate::judge::invariants::provider_quota::Quota>,
    data: &mut RunData,
    s: &mut Series,
    at: &impl Fn(u64) -> usize,
    bin: u64,
) {
    let bins = s.len();
    let mut quota_calls: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in log.of("stampede::provider") {
        if e.name == "fleet" {
            if let (Some(region), Some(u)) = (e.str("region"), e.u64("utilisation_permille")) {
                s.fleet
                    .entry(region.to_string())
                    .or_insert_with(|| vec![None; bins])[at(e.t_us)] = Some(u as f64 / 1000.0);
            }
            continue;
        }
        if !is_call(e) {
            continue;
        }
        let service = e.str("service").unwrap_or("?").to_string();
        let api = e.str("api").unwrap_or("?").to_string();
        let outcome = e.str("outcome").unwrap_or("?").to_string();
        let system = is_system_call(e);
        let table = if system {
            &mut data.system_calls
        } else {
            &mut data.other_calls
        };
        *table
            .entry(service)
            .or_default()
            .entry(api.clone())
            .or_default()
            .entry(outcome.clone())
            .or_default() += 1;
        let per_bin = if system {
            s.system_calls.entry(api.clone()).or_default()
        } else {
            &mut s.other_calls
        };
        per_bin.entry(outcome).or_insert_with(|| vec![0; bins])[at(e.t_us)] += 1;
        if quotas.contains_key(&api) && e.str("account").is_some_and(|a| !is_background(a)) {
            quota_calls.entry(api).or_insert_with(|| vec![0; bins])[at(started(e))] += 1;
        }
    }
    for (api, counts) in quota_calls {
        let allowed = quotas[&api]
            .within(std::time::Duration::from_millis(bin))
            .max(1) as f64;
        s.quota_use
            .insert(api, counts.iter().map(|n| *n as f64 / allowed).collect());
    }
}

/// The coordinators' admission gauges and the backlog of lake tasks: each interval's highest
/// value (a gauge read only at an interval's end would miss a query shorter than it).
fn gauges(log: &EventLog, s: &mut Series, at: &impl Fn(u64) -> usize) {
    let bins = s.len();
    // The latest gauge of each coordinator, and the lakes left of each running query.
    let mut admission: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut lakes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut left: BTreeMap<&str, u64> = BTreeMap::new();
    let mut done: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut current = (0u64, 0u64, 0u64);
    let mut bin = 0usize;
    let record = |s: &mut Series, i: usize, (r, q, b): (u64, u64, u64)| {
        s.running[i] = s.running[i].max(r);
        s.queued[i] = s.queued[i].max(q);
        s.backlog[i] = s.backlog[i].max(b);
    };
    for e in log.events() {
        if e.target != "stampede::query" && e.target != "stampede::task" {
            continue;
        }
        // Intervals without events keep the state the last one left.
        let i = at(e.t_us);
        while bin < i {
            bin += 1;
            record(s, bin, current);
        }
        let qid = e.str("query_id").unwrap_or("");
        match e.name.as_str() {
            "admission" => {
                admission.insert(
                    e.host.as_str(),
                    (e.u64("running").unwrap_or(0), e.u64("queued").unwrap_or(0)),
                );
            }
            "accepted" => {
                lakes.insert(qid, e.u64("lakes").unwrap_or(0));
            }
            "started" | "recovered" => {
                let n = lakes.get(qid).copied().unwrap_or(0);
                let already = done
                    .range((qid, "")..)
                    .take_while(|(q, _)| *q == qid)
                    .count() as u64;
                left.insert(qid, n.saturating_sub(already));
            }
            "task_done" => {
                if done.insert((qid, e.str("lake").unwrap_or("")))
                    && let Some(n) = left.get_mut(qid)
                {
                    *n = n.saturating_sub(1);
                }
            }
            "succeeded" | "failed" | "cancelled" | "deadline_exceeded" => {
                left.remove(qid);
            }
            _ => continue,
        }
        let (running, queued) = admission
            .values()
            .fold((0, 0), |(r, q), (x, y)| (r + x, q + y));
        current = (running, queued, left.values().sum());
        record(s, i, current);
    }
    while bin + 1 < bins {
        bin += 1;
        record(s, bin, current);
    }
}

/// Faults (the traffic's burst among them), alerts and freezes from the log, operator actions
/// from the scenario, and the users' first failure and recovery from the client's view.
fn timeline(report: &RunReport, virtual_ms: u64) -> Vec<Mark> {
    let scenario = &report.prepared.scenario;
    let mut marks = Vec::new();
    let log = &report.log;
    // Faults as the log shows them happen; operator actions as the scenario sets them.
    for w in crate::judge::invariants::faults::windows(log) {
        marks.push(Mark {
            lane: Lane::Fault,
            label: w.label(),
            start_ms: w.start.t_us / 1000,
            end_ms: Some(w.end.map_or(virtual_ms, |e| e.t_us / 1000)),
        });
    }
    for f in scenario.timeline().filter(|f| f.kind.is_operator()) {
        marks.push(operator_mark(f, virtual_ms));
    }
    let mut open: BTreeMap<(Lane, String), (u64, String)> = BTreeMap::new();
    for e in log.events() {
        let str = |k: &str| e.str(k).unwrap_or("?").to_string();
        // (lane, key, label, whether it opens a window or closes one)
        let (lane, key, label, opens) = match (e.target.as_str(), e.name.as_str()) {
            ("stampede::alert", "firing") => (
                Lane::Alert,
                str("rule"),
                format!("alert {}", str("rule")),
                true,
            ),
            ("stampede::alert", "resolved") => (Lane::Alert, str("rule"), String::new(), false),
            ("stampede::provider", "account_frozen") if !is_background(&str("account")) => (
                Lane::Frozen,
                str("account"),
                format!("account {} frozen", str("account")),
                true,
            ),
            ("stampede::provider", "account_thawed") => {
                (Lane::Frozen, str("account"), String::new(), false)
            }
            _ => continue,
        };
        if opens {
            open.entry((lane, key)).or_insert((e.t_us, label));
        } else if let Some((start, label)) = open.remove(&(lane, key)) {
            marks.push(Mark {
                lane,
                label,
                start_ms: start / 1000,
                end_ms: Some(e.t_us / 1000),
            });
        }
    }
    for ((lane, _), (start, label)) in open {
        marks.push(Mark {
            lane,
            label,
            start_ms: start / 1000,
            end_ms: Some(virtual_ms),
        });
    }
    marks.extend(users(log));
    marks.sort_by(|a, b| (a.lane, a.start_ms, &a.label).cmp(&(b.lane, b.start_ms, &b.label)));
    marks
}

fn operator_mark(f: &Fault, virtual_ms: u64) -> Mark {
    let start_ms = f.at.0.as_millis() as u64;
    let mut label = f.kind.label();
    if let Some(region) = &f.region {
        label.push(' ');
        label.push_str(region);
    }
    let end_ms = match f.lasts {
        Some(d) => Some((start_ms + d.0.as_millis() as u64).min(virtual_ms)),
        None if f.kind.is_instant() => None,
        None => Some(virtual_ms),
    };
    Mark {
        lane: Lane::Operator,
        label,
        start_ms,
        end_ms,
    }
}

/// The first failure users saw, and the first success after the last one.
fn users(log: &EventLog) -> Vec<Mark> {
    let mut ends: Vec<(&Event, u64)> = client_queries(log)
        .values()
        .filter_map(|q| Some((q.end?, q.final_status()?)))
        .collect();
    ends.sort_by_key(|(e, _)| e.t_us);
    let failed = |status: u64| user_visible_failure(status) && status != 499;
    let mut out = Vec::new();
    let Some((first, status)) = ends.iter().find(|(_, s)| failed(*s)) else {
        return out;
    };
    let what = match *status {
        0 => "no answer".to_string(),
        s => s.to_string(),
    };
    out.push(Mark {
        lane: Lane::Users,
        label: format!("{FIRST_FAILURE}: {what}"),
        start_ms: first.t_us / 1000,
        end_ms: None,
    });
    let last = ends.iter().rposition(|(_, s)| failed(*s)).unwrap_or(0);
    if let Some((e, _)) = ends[last..].iter().find(|(_, s)| *s == 200) {
        out.push(Mark {
            lane: Lane::Users,
            label: RECOVERED.into(),
            start_ms: e.t_us / 1000,
            end_ms: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_about_a_hundred_to_two_hundred_and_at_least_a_second() {
        assert_eq!(bin_ms(10_000), 1_000);
        assert_eq!(bin_ms(480_000), 5_000);
        assert_eq!(bin_ms(3_720_000), 30_000);
        assert_eq!(bin_ms(200_000), 1_000);
        assert_eq!(bin_ms(200_001), 2_000);
    }
}
