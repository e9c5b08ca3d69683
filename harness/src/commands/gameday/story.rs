//! What a gameday leaves: the branches side by side, `timeline.md` (the story in virtual time,
//! per branch), `gameday.json`, and a branch saved as a plain scenario.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use stampede_reports::RunData;
use stampede_reports::run::{Lane, Status};
use stampede_reports::summary::clock as run_clock;

use super::dashboard::clock;
use super::{Gameday, Said, scenario_with};

/// A finished branch's report data.
fn data(g: &Gameday, i: usize) -> Option<RunData> {
    let b = &g.branches[i];
    let report = b.report.as_ref()?;
    Some(crate::commands::report_data::run_data(
        report,
        &format!(
            "stampede gameday {} (branch {})",
            g.base.path.display(),
            b.name
        ),
    ))
}

/// The branches side by side: verdicts, goodput, queries lost, time frozen, time to recover,
/// provider calls. Every branch must have ended.
pub fn outcomes(g: &Gameday) -> String {
    let runs: Vec<(String, RunData)> = (0..g.branches.len())
        .filter_map(|i| Some((g.branches[i].name.clone(), data(g, i)?)))
        .collect();
    let mut head = vec!["".to_string()];
    head.extend(runs.iter().map(|(n, _)| n.clone()));
    let mut t = stampede_reports::Table::new(head);
    let row = |name: &str, f: &dyn Fn(&RunData) -> String| {
        let mut r = vec![name.to_string()];
        r.extend(runs.iter().map(|(_, d)| f(d)));
        r
    };
    t.row(row("goodput", &|d| format!("{:.3}/s", d.goodput_per_s())));
    t.row(row("succeeded", &|d| d.outcomes.succeeded.to_string()));
    t.row(row("queries lost or failed", &|d| {
        (d.outcomes.lost + d.outcomes.failed).to_string()
    }));
    t.row(row("time frozen by the provider", &|d| {
        run_clock(d.frozen_ms())
    }));
    t.row(row("time to recover", &|d| match d.time_to_recover_ms() {
        Some(ms) => run_clock(ms),
        None if d.first_failure_ms().is_some() => "not recovered".into(),
        None => "no failure".into(),
    }));
    t.row(row("provider calls (system's)", &|d| {
        d.system_calls_total().to_string()
    }));
    let mut names: Vec<String> = runs
        .iter()
        .flat_map(|(_, d)| d.verdicts.iter().map(|v| v.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    for n in &names {
        t.row(row(n, &|d| {
            d.verdicts
                .iter()
                .find(|v| &v.name == n)
                .map_or("–".into(), |v| {
                    format!("{} {}", v.status.sign(), v.status.word())
                })
        }));
    }
    let mut out = t.render(2);
    // The question a gameday asks: did an action avoid the freeze?
    let frozen_at = |d: &RunData| {
        d.timeline
            .iter()
            .find(|m| m.lane == Lane::Frozen)
            .map(|m| m.start_ms)
    };
    let (yes, no): (Vec<_>, Vec<_>) = runs.iter().partition(|(_, d)| frozen_at(d).is_some());
    let names = |v: &[&(String, RunData)], when: bool| -> String {
        v.iter()
            .map(|(n, d)| match (when, frozen_at(d)) {
                (true, Some(t)) => format!("{n} (at {})", at(t)),
                _ => n.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = match (yes.is_empty(), no.is_empty()) {
        (false, false) => writeln!(
            out,
            "\n  The provider froze the system's account in {} and not in {}.",
            names(&yes, true),
            names(&no, false)
        ),
        (false, true) => writeln!(
            out,
            "\n  The provider froze the system's account in every branch: {}.",
            names(&yes, true)
        ),
        (true, false) => writeln!(
            out,
            "\n  The provider froze the system's account in no branch."
        ),
        (true, true) => Ok(()),
    };
    out
}

/// `timeline.md`: per branch, its story in virtual time, then the outcome table.
pub fn timeline_md(g: &Gameday) -> String {
    let mut out = format!(
        "# Gameday: {}\n\nScenario `{}`, seed {}. {}\n\n",
        g.base.scenario.name,
        g.base.path.display(),
        g.seed,
        g.base.scenario.about
    );
    for (i, b) in g.branches.iter().enumerate() {
        let _ = writeln!(out, "## Branch `{}`\n", b.name);
        match &b.parent {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "Forked from `{p}` at {}: re-simulated from zero with the same seed; the event log up to the fork has digest `{}`, as in `{p}`.\n",
                    clock(b.fork_at),
                    b.prefix_digest
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "The scenario as written, with the actions typed in it.\n"
                );
            }
        }
        let mut lines: Vec<(u64, String)> = Vec::new();
        if let Some(d) = data(g, i) {
            for m in &d.timeline {
                let who = match m.lane {
                    Lane::Fault => "fault",
                    Lane::Operator => "operator (scenario)",
                    Lane::Alert => "alert",
                    Lane::Frozen => "provider",
                    Lane::Users => "users",
                };
                let when = match m.end_ms {
                    Some(e) => format!("{} to {}", at(m.start_ms), at(e)),
                    None => at(m.start_ms),
                };
                // Typed actions are told below, with who typed them.
                if m.lane == Lane::Operator && typed(g, i, m.start_ms) {
                    continue;
                }
                lines.push((m.start_ms, format!("{when}: {who}: {}", m.label)));
            }
        }
        for (k, a) in b.actions.iter().enumerate() {
            // A branch's first `inherited` actions are its parent's.
            let whose = match &b.parent {
                Some(parent) if k < b.inherited => format!("inherited from `{parent}`"),
                _ => "typed".into(),
            };
            lines.push((
                a.at_ms,
                format!(
                    "{}: operator (gameday, {whose} at {}): `{}`",
                    at(a.at_ms),
                    clock(Duration::from_millis(a.typed_at_ms)),
                    a.text
                ),
            ));
        }
        for n in &g.base.scenario.annotations {
            let t = n.at.0.as_millis() as u64;
            lines.push((t, format!("{}: note: {}", at(t), n.note)));
        }
        lines.sort();
        for (_, l) in &lines {
            let _ = writeln!(out, "- {l}");
        }
        if let Some(d) = data(g, i) {
            let violated: Vec<&str> = d
                .verdicts
                .iter()
                .filter(|v| v.status == Status::Fail)
                .map(|v| v.name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "\nOutcome: {} of {} queries succeeded; violated: {}.\n",
                d.outcomes.succeeded,
                d.outcomes.offered,
                if violated.is_empty() {
                    "none".to_string()
                } else {
                    violated.join(", ")
                }
            );
        }
    }
    out.push_str("## Outcomes\n\n```\n");
    out.push_str(&outcomes(g));
    out.push_str("```\n");
    out
}

fn typed(g: &Gameday, i: usize, start_ms: u64) -> bool {
    g.branches[i].actions.iter().any(|a| a.at_ms == start_ms)
}

fn at(ms: u64) -> String {
    clock(Duration::from_millis(ms))
}

/// `gameday.json`.
pub fn gameday_json(g: &Gameday) -> Value {
    let branches: Vec<Value> = g
        .branches
        .iter()
        .map(|b| {
            let verdicts: serde_json::Map<String, Value> = b
                .report
                .as_ref()
                .map(|r| {
                    r.verdicts
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v.word())))
                        .collect()
                })
                .unwrap_or_default();
            // The root shares its history with its first child up to that child's fork: its
            // prefix is the log up to there, the same digest as the child's.
            let prefix = match (
                &b.parent,
                g.branches
                    .iter()
                    .find(|c| c.parent.as_ref() == Some(&b.name)),
            ) {
                (None, Some(child)) => {
                    super::prefix_digest(&b.log[..child.fork_events.min(b.log.len())])
                }
                _ => b.prefix_digest.clone(),
            };
            json!({
                "name": b.name,
                "parent": b.parent,
                "fork_at_ms": b.fork_at.as_millis() as u64,
                "actions": b.actions,
                "prefix_digest": prefix,
                "digest": b.report.as_ref().map(|r| r.digest.clone()),
                "verdicts": verdicts,
            })
        })
        .collect();
    json!({
        "scenario": g.base.scenario.name,
        "scenario_file": g.base.path,
        "seed": g.seed,
        "branches": branches,
    })
}

/// Writes branch `i` as a plain scenario to `file`: its actions become `operator:`, its name
/// gains the branch's, and `expect` says what the branch showed, so that the file is a
/// regression test of the rehearsal. The branch must have ended.
pub fn save(g: &Gameday, i: usize, file: &Path) -> Said {
    let b = &g.branches[i];
    let report = b.report.as_ref().ok_or("the branch has not ended")?;
    let mut p = scenario_with(&g.base, &b.actions);
    let s = &mut p.scenario;
    s.name = format!("{}-{}", s.name, b.name);
    s.seed = g.seed;
    s.about = format!(
        "Gameday branch `{}` of {} (seed {}): {}",
        b.name,
        g.base.scenario.name,
        g.seed,
        b.actions
            .iter()
            .map(|a| format!("`{}` at {}", a.text, at(a.at_ms)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s.expect.violated = report
        .verdicts
        .iter()
        .filter(|(_, v)| v.is_fail())
        .filter_map(|(k, _)| crate::judge::invariants::InvariantName::named(k))
        .collect();
    s.expect.unreached = report
        .vacuous_all()
        .into_iter()
        .filter_map(|k| {
            Some((
                crate::judge::invariants::InvariantName::named(k)?,
                format!(
                    "as in gameday branch {}, which did not reach it either",
                    b.name
                ),
            ))
        })
        .collect();
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let from = g.base.path.parent().unwrap_or(Path::new("."));
    crate::commands::sweep::shrink::rebase(s, from, dir);
    let text = format!(
        "# Saved by `stampede gameday` from branch `{}`; `stampede run` replays it.\n{}",
        b.name,
        crate::input::scenario::to_yaml(s)
    );
    crate::commands::sweep::write_whole(file, &text)
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(format!(
        "wrote {} ({} operator actions; expects {} violated)",
        file.display(),
        s.operator.len(),
        s.expect.violated.len()
    ))
}
