//! The one-screen summary printed after a run: queries by outcome, the system's provider calls
//! apart from other accounts', and the verdicts with their witnesses.

use std::fmt::Write as _;

use crate::run::{RunData, Status, total};
use crate::table::Table;

/// The summary; `run_dir` is where the run was written, `replay` the command that replays it.
pub fn summary(run: &RunData, run_dir: Option<&str>, replay: &str) -> String {
    let h = &run.header;
    let virtual_s = h.virtual_ms as f64 / 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "stampede run {} (seed {}): {} of virtual time in {:.2}s wall ({:.0}x), {} steps, {} events",
        h.scenario,
        h.seed,
        clock(h.virtual_ms),
        h.wall_s,
        virtual_s / h.wall_s.max(1e-9),
        h.steps,
        h.events
    );
    let o = &run.outcomes;
    let mut queries = Table::new(["queries", "count", "share"]);
    let share = |n: u64| format!("{:.1}%", 100.0 * n as f64 / o.offered.max(1) as f64);
    queries.row(["offered".to_string(), o.offered.to_string(), String::new()]);
    for (name, n) in [
        ("succeeded", o.succeeded),
        ("failed", o.failed),
        ("refused", o.refused),
        ("lost", o.lost),
        ("cancelled", o.cancelled),
        ("still running", o.running),
    ] {
        queries.row([name.to_string(), n.to_string(), share(n)]);
    }
    out.push('\n');
    out.push_str(&queries.render(2));
    let latency = run.series.latency_total();
    if !latency.is_empty() {
        let cells: Vec<String> = crate::latency::PERCENTILES
            .iter()
            .map(|(q, name)| format!("{name} {}", ms(latency.quantile_any(*q))))
            .chain([format!("max {}", ms(latency.max()))])
            .collect();
        let _ = writeln!(out, "  latency of succeeded queries: {}", cells.join(", "));
    }
    let mut calls = Table::new(["system's provider calls", "api", "outcome", "count"]);
    for (service, apis) in &run.system_calls {
        for (api, outcomes) in apis {
            for (outcome, n) in outcomes {
                calls.row([service.clone(), api.clone(), outcome.clone(), n.to_string()]);
            }
        }
    }
    if calls.is_empty() {
        calls.row(["(none)"]);
    }
    out.push('\n');
    out.push_str(&calls.render(2));
    let others = total(&run.other_calls);
    if others > 0 {
        let mut by_outcome = std::collections::BTreeMap::<&str, u64>::new();
        for o in run.other_calls.values().flat_map(|a| a.values()) {
            for (k, n) in o {
                *by_outcome.entry(k).or_default() += n;
            }
        }
        let parts: Vec<String> = by_outcome.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            "  other accounts' calls (not the system's): {others} ({})",
            parts.join(", ")
        );
    }
    let mut verdicts = Table::new(["invariant", "verdict", "detail"]);
    for v in &run.verdicts {
        let mut detail = v.detail.clone();
        if let (Status::Pass, Some(s)) = (v.status, &v.sometimes)
            && !s.reached
        {
            let why = v
                .unreached_why
                .as_ref()
                .map(|w| format!("; as the scenario says: {w}"))
                .unwrap_or_default();
            detail.push_str(&format!(" (never reached: {}{why})", s.state));
        }
        let word = if v.expected && v.status == Status::Fail {
            "fail (expected)".to_string()
        } else {
            v.status.word().to_string()
        };
        verdicts.row([v.name.clone(), word, detail]);
    }
    out.push('\n');
    out.push_str(&verdicts.render(2));
    for v in run.verdicts.iter().filter(|v| v.status == Status::Fail) {
        let _ = writeln!(out, "\n  {} failed: {}", v.name, v.detail);
        for e in &v.witness {
            let _ = writeln!(out, "    {e}");
        }
    }
    out.push('\n');
    let _ = writeln!(out, "  digest   {}", h.digest);
    if let Some(dir) = run_dir {
        let _ = writeln!(out, "  run dir  {dir}  (report.html, report.md)");
    }
    let _ = writeln!(out, "  replay   {replay}");
    out
}

/// Milliseconds of virtual time as `1h2m3s`, `4m5s`, `6.5s`.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) if !ms.is_multiple_of(1000) => format!("{:.1}s", ms as f64 / 1000.0),
        (0, 0) => format!("{sec}s"),
        (0, _) if sec == 0 => format!("{m}m"),
        (0, _) => format!("{m}m{sec}s"),
        _ => format!("{h}h{m}m{sec}s"),
    }
}

/// A latency in ms for a table: `840 ms`, `12.3 s`, or `–`.
pub fn ms(v: Option<u64>) -> String {
    match v {
        None => "–".into(),
        Some(ms) if ms < 10_000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::VerdictRow;

    #[test]
    fn clocks_read_naturally() {
        assert_eq!(clock(480_000), "8m");
        assert_eq!(clock(3_725_000), "1h2m5s");
        assert_eq!(clock(6_500), "6.5s");
        assert_eq!(ms(Some(12_345)), "12.3 s");
    }

    #[test]
    fn the_summary_keeps_other_accounts_apart_and_says_expected() {
        let mut run = RunData::default();
        run.outcomes.offered = 4;
        run.outcomes.succeeded = 3;
        run.outcomes.lost = 1;
        run.system_calls
            .entry("sts".into())
            .or_default()
            .entry("AssumeRole".into())
            .or_default()
            .insert("ok".into(), 7);
        run.other_calls
            .entry("s3".into())
            .or_default()
            .entry("GetObject".into())
            .or_default()
            .insert("ok".into(), 70);
        run.verdicts.push(VerdictRow {
            name: "never_frozen".into(),
            status: Status::Fail,
            expected: true,
            detail: "frozen at 12 s".into(),
            ..VerdictRow::default()
        });
        let s = summary(&run, Some("runs/x"), "stampede run x.yaml --seed 1");
        assert!(s.contains("succeeded") && s.contains("75.0%"), "{s}");
        assert!(s.contains("AssumeRole") && s.contains("other accounts' calls"));
        assert!(!s.contains("GetObject"), "{s}");
        assert!(s.contains("fail (expected)"));
    }
}
