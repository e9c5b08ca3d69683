//! What an on-call dashboard shows at a virtual time, read from the log so far: queries by
//! state, alerts firing, the system's provider calls and throttles per api, fleet
//! utilisation, frozen accounts, the backlog and the last notable events.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use stampede_reports::Table;

use crate::events::{Event, EventLog};
use crate::judge::invariants::calls::{is_call, is_system_call};
use crate::judge::invariants::clients::client_queries;
use crate::judge::invariants::vocabulary::is_background;

/// The window the per-api figures cover.
const RECENT: Duration = Duration::from_secs(60);
/// How many notable events the dashboard lists.
const NOTABLE: usize = 6;

/// `m:ss` of virtual time.
pub fn clock(t: Duration) -> String {
    let s = t.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The queries as users see them, on one line.
fn queries_line(log: &EventLog) -> String {
    let mut out = String::new();
    let (mut offered, mut running, mut ok, mut failed, mut refused, mut lost) = (0, 0, 0, 0, 0, 0);
    for q in client_queries(log).values() {
        if q.submitted_us.is_none() {
            continue;
        }
        offered += 1;
        match (q.end.map(|e| e.name.as_str()), q.final_status()) {
            (None, _) => running += 1,
            (Some("answered"), Some(200)) => ok += 1,
            (Some("answered"), _) => failed += 1,
            (Some("refused"), _) => refused += 1,
            _ => lost += 1,
        }
    }
    let _ = writeln!(
        out,
        "  queries    {offered} offered: {running} in flight, {ok} succeeded, {failed} failed, {refused} refused, {lost} lost"
    );
    out
}

/// The system's calls per api in the last minute: all, throttled, other errors.
fn calls_table(calls: &BTreeMap<&str, (u64, u64, u64)>) -> String {
    let mut t = Table::new([
        "system's calls, last 60 s",
        "calls",
        "throttled",
        "other errors",
    ]);
    for (api, (n, th, err)) in calls {
        t.row([
            api.to_string(),
            n.to_string(),
            th.to_string(),
            err.to_string(),
        ]);
    }
    if t.is_empty() {
        t.row(["(none)"]);
    }
    t.render(2)
}

/// The last notable events, one a line.
fn notable_lines(notable: &[&Event]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  last notable events:");
    let from = notable.len().saturating_sub(NOTABLE);
    if notable.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    for e in &notable[from..] {
        let mut what = format!("{} {}", e.target.trim_start_matches("stampede::"), e.name);
        for k in [
            "fault", "rule", "account", "api", "host", "path", "status", "region", "error",
        ] {
            if let Some(v) = e.fields.get(k) {
                let v = v.as_str().map_or(v.to_string(), str::to_string);
                let _ = write!(what, " {k}={v}");
            }
        }
        let _ = writeln!(out, "    {} {what}", clock(Duration::from_micros(e.t_us)));
    }
    out
}

/// The dashboard of `log` at `now`.
pub fn dashboard(log: &EventLog, now: Duration) -> String {
    let mut out = String::new();
    let now_us = now.as_micros() as u64;
    out.push_str(&queries_line(log));
    // The coordinators' gauges and the lake tasks left.
    let mut admission: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut lakes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut done: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut ended: BTreeSet<&str> = BTreeSet::new();
    let (mut alerts, mut frozen, mut fleet) = (
        BTreeMap::<&str, u64>::new(),
        BTreeMap::<&str, u64>::new(),
        BTreeMap::<&str, u64>::new(),
    );
    let mut calls: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut notable: Vec<&Event> = Vec::new();
    for e in log.events() {
        let qid = e.str("query_id").unwrap_or("");
        match (e.target.as_str(), e.name.as_str()) {
            ("stampede::query", "admission") => {
                admission.insert(
                    &e.host,
                    (e.u64("running").unwrap_or(0), e.u64("queued").unwrap_or(0)),
                );
            }
            ("stampede::query", "accepted") => {
                lakes.insert(qid, e.u64("lakes").unwrap_or(0));
            }
            ("stampede::task", "task_done") => {
                done.insert((qid, e.str("lake").unwrap_or("")));
            }
            ("stampede::query", "succeeded" | "failed" | "cancelled" | "deadline_exceeded") => {
                ended.insert(qid);
            }
            ("stampede::alert", "firing") => {
                alerts.insert(e.str("rule").unwrap_or("?"), e.t_us);
                notable.push(e);
            }
            ("stampede::alert", "resolved") => {
                alerts.remove(e.str("rule").unwrap_or("?"));
                notable.push(e);
            }
            ("stampede::provider", "account_frozen")
                if !is_background(e.str("account").unwrap_or("")) =>
            {
                frozen.insert(e.str("account").unwrap_or("?"), e.t_us);
                notable.push(e);
            }
            ("stampede::provider", "account_thawed") => {
                frozen.remove(e.str("account").unwrap_or("?"));
            }
            ("stampede::provider", "fleet") => {
                fleet.insert(
                    e.str("region").unwrap_or("?"),
                    e.u64("utilisation_permille").unwrap_or(0),
                );
            }
            ("stampede::fault", _) => notable.push(e),
            ("stampede::traffic", "answered") if e.u64("status") != Some(200) => notable.push(e),
            ("stampede::traffic", "unanswered") => notable.push(e),
            _ => {}
        }
        if is_call(e) && is_system_call(e) && e.t_us + RECENT.as_micros() as u64 >= now_us {
            let c = calls.entry(e.str("api").unwrap_or("?")).or_default();
            c.0 += 1;
            match e.str("outcome") {
                Some("throttled") => c.1 += 1,
                Some("ok") => {}
                _ => c.2 += 1,
            }
        }
    }
    let (r, q) = admission
        .values()
        .fold((0, 0), |(r, q), (x, y)| (r + x, q + y));
    let left: u64 = lakes
        .iter()
        .filter(|(id, _)| !ended.contains(*id))
        .map(|(id, n)| {
            let done = done.range((*id, "")..).take_while(|(d, _)| d == id).count();
            n.saturating_sub(done as u64)
        })
        .sum();
    let _ = writeln!(
        out,
        "  backlog    {r} running and {q} queued on the coordinators; {left} lake tasks left"
    );
    let list = |m: &BTreeMap<&str, u64>| -> String {
        if m.is_empty() {
            "none".into()
        } else {
            m.iter()
                .map(|(k, t)| format!("{k} (since {})", clock(Duration::from_micros(*t))))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(out, "  alerts     {}", list(&alerts));
    let _ = writeln!(out, "  frozen     {}", list(&frozen));
    let fleet_line = if fleet.is_empty() {
        "no reading yet".to_string()
    } else {
        fleet
            .iter()
            .map(|(r, p)| format!("{r} {:.0}%", *p as f64 / 10.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  fleet      {fleet_line}");
    out.push_str(&calls_table(&calls));
    out.push_str(&notable_lines(&notable));
    out
}
