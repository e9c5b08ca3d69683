//! What a run leaves behind: the run directory (`run.json`, `events.jsonl`, `results.json`,
//! `audit.jsonl`, `junit.xml`),
//! written whole or not at all, and the one-screen summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stampede_reports::Table;

use crate::events::EventLog;
use crate::invariants::Verdict;
use crate::run::RunReport;

/// The default run directory of a scenario and seed: `runs/<name>/seed-<seed>`.
pub fn default_dir(report: &RunReport) -> PathBuf {
    PathBuf::from("runs")
        .join(&report.prepared.scenario.name)
        .join(format!("seed-{}", report.seed))
}

/// Query outcomes by name: the system's terminal events, plus submissions nobody answered.
pub fn query_outcomes(log: &EventLog) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in log.of("stampede::query") {
        if e.name != "accepted" {
            *out.entry(e.name.clone()).or_default() += 1;
        }
    }
    for e in log
        .of("stampede::traffic")
        .filter(|e| e.name == "unanswered")
    {
        *out.entry(e.name.clone()).or_default() += 1;
    }
    out
}

/// Provider calls by service, api and outcome.
pub fn provider_calls(log: &EventLog) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for e in log.of("stampede::provider").filter(|e| e.name == "call") {
        let key = (
            e.str("service").unwrap_or("?").to_string(),
            e.str("api").unwrap_or("?").to_string(),
            e.str("outcome").unwrap_or("?").to_string(),
        );
        *out.entry(key).or_default() += 1;
    }
    out
}

/// The contents of `results.json`.
pub fn results_json(report: &RunReport) -> Value {
    let mut calls: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>> = BTreeMap::new();
    for ((service, api, outcome), n) in provider_calls(&report.log) {
        calls
            .entry(service)
            .or_default()
            .entry(api)
            .or_default()
            .insert(outcome, n);
    }
    json!({
        "scenario": report.prepared.scenario.name,
        "scenario_file": report.prepared.path,
        "seed": report.seed,
        "digest": report.digest,
        "events": report.log.events().len(),
        "verdicts": report.verdicts,
        "sometimes": report.sometimes,
        "expected_violations": report.prepared.scenario.expect.violated,
        "as_expected": report.unexpected().is_empty(),
        "unexpected": report.unexpected(),
        "queries": query_outcomes(&report.log),
        "provider_calls": calls,
    })
}

/// The contents of `run.json`: what ran, resolved, and with which build.
pub fn run_json(report: &RunReport) -> Value {
    json!({
        "scenario_file": report.prepared.path,
        "trace_file": report.prepared.trace_path,
        "seed": report.seed,
        "build": { "stampede": env!("CARGO_PKG_VERSION"), "profile": if cfg!(debug_assertions) { "debug" } else { "release" } },
        "scenario": report.prepared.scenario,
        "system_config": crate::world::system_config(&report.prepared.scenario),
        "swarm": report.swarm,
        "steps": report.steps,
    })
}

/// Writes the run directory. Files go to a sibling temporary directory that replaces `dir`
/// only once everything is written, so a failed write leaves no half-written run behind.
pub fn write_run_dir(report: &RunReport, dir: &Path) -> io::Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let written = (|| {
        std::fs::create_dir_all(&tmp)?;
        std::fs::write(tmp.join("run.json"), pretty(&run_json(report)))?;
        std::fs::write(tmp.join("events.jsonl"), report.log.to_jsonl())?;
        std::fs::write(tmp.join("results.json"), pretty(&results_json(report)))?;
        std::fs::write(tmp.join("audit.jsonl"), audit_trace(&report.log))?;
        std::fs::write(tmp.join("junit.xml"), junit_xml(report))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::rename(&tmp, dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}

/// The system's audit log as a native trace: every submission the coordinators recorded, in
/// order, with `t_ms` made relative to the first. Replaying it replays what the system saw.
pub fn audit_trace(log: &crate::events::EventLog) -> String {
    let mut records: Vec<crate::trace::Record> = log
        .of("stampede::audit")
        .filter(|e| e.name == "submission")
        .filter_map(|e| serde_json::from_str(e.str("record")?).ok())
        .collect();
    records.sort_by_key(|r| r.t_ms);
    let start = records.first().map_or(0, |r| r.t_ms);
    let mut out = format!(
        "{}\n",
        json!({ "format": crate::trace::FORMAT, "version": crate::trace::VERSION })
    );
    for mut r in records {
        r.t_ms -= start;
        out.push_str(&serde_json::to_string(&r).expect("records serialise"));
        out.push('\n');
    }
    out
}

/// The verdicts as JUnit XML: the run is a test suite, each invariant a test case. A violation
/// the scenario expects is a passing case (its witness in `system-out`); an unexpected one, or
/// an expected one that did not happen, is a failure; `unknown` is skipped.
pub fn junit_xml(report: &RunReport) -> String {
    use quick_xml::escape::escape;
    let scenario = &report.prepared.scenario;
    let expected: Vec<&str> = scenario
        .expect
        .violated
        .iter()
        .map(|n| n.as_str())
        .collect();
    let mut cases = String::new();
    let (mut failures, mut skipped) = (0, 0);
    for (name, verdict) in &report.verdicts {
        let is_expected = expected.contains(&name.as_str());
        let detail = serde_json::to_string_pretty(verdict).unwrap_or_default();
        cases.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\">\n",
            escape(scenario.name.as_str()),
            escape(name.as_str())
        ));
        match (verdict, is_expected) {
            (Verdict::Fail { witness }, false) => {
                failures += 1;
                cases.push_str(&format!(
                    "      <failure message=\"{}\">{}</failure>\n",
                    escape(witness.summary.as_str()),
                    escape(detail.as_str())
                ));
            }
            (Verdict::Fail { .. }, true) => cases.push_str(&format!(
                "      <system-out>violated, as the scenario expects\n{}</system-out>\n",
                escape(detail.as_str())
            )),
            (Verdict::Pass { .. }, true) => {
                failures += 1;
                cases.push_str(&format!(
                    "      <failure message=\"expected to be violated, but held\">{}</failure>\n",
                    escape(detail.as_str())
                ));
            }
            (Verdict::Unknown { why }, _) => {
                skipped += 1;
                cases.push_str(&format!(
                    "      <skipped message=\"{}\"/>\n",
                    escape(why.as_str())
                ));
            }
            (Verdict::Pass { .. }, false) => {}
        }
        cases.push_str("    </testcase>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">\n    <properties>\n      <property name=\"seed\" value=\"{}\"/>\n      <property name=\"digest\" value=\"{}\"/>\n      <property name=\"replay\" value=\"stampede run {} --seed {}\"/>\n    </properties>\n{cases}  </testsuite>\n</testsuites>\n",
        escape(scenario.name.as_str()),
        report.verdicts.len(),
        report.wall.as_secs_f64(),
        report.seed,
        report.digest,
        escape(report.prepared.path.display().to_string().as_str()),
        report.seed,
    )
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("json values serialise");
    s.push('\n');
    s
}

/// The one-screen summary printed after a run.
pub fn summary(report: &RunReport, run_dir: Option<&Path>, replay: &str) -> String {
    let scenario = &report.prepared.scenario;
    let virtual_s = scenario.duration.0.as_secs_f64();
    let wall_s = report.wall.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "stampede run {} (seed {}): {} of virtual time in {:.2}s wall ({:.0}x), {} steps, {} events",
        scenario.name,
        report.seed,
        humantime::format_duration(scenario.duration.0),
        wall_s,
        virtual_s / wall_s.max(1e-9),
        report.steps,
        report.log.events().len()
    );
    let mut queries = Table::new(["queries", "count"]);
    let submitted = report
        .log
        .of("stampede::traffic")
        .filter(|e| e.name == "submitted")
        .count();
    queries.row(["submitted".to_string(), submitted.to_string()]);
    for (outcome, n) in query_outcomes(&report.log) {
        queries.row([outcome, n.to_string()]);
    }
    out.push('\n');
    out.push_str(&queries.render(2));
    let mut calls = Table::new(["provider calls", "api", "outcome", "count"]);
    for ((service, api, outcome), n) in provider_calls(&report.log) {
        calls.row([service, api, outcome, n.to_string()]);
    }
    if calls.is_empty() {
        calls.row(["(none)"]);
    }
    out.push('\n');
    out.push_str(&calls.render(2));
    let mut verdicts = Table::new(["invariant", "verdict", "detail"]);
    for (name, v) in &report.verdicts {
        let mut detail = match v {
            Verdict::Pass { counts } => counts_line(counts),
            Verdict::Fail { witness } => witness.summary.clone(),
            Verdict::Unknown { why } => why.clone(),
        };
        // A pass in a run that never reached the interesting state proves little: say so,
        // and why, when the scenario says why.
        if let (Verdict::Pass { .. }, Some(s)) = (v, report.sometimes.get(name))
            && !s.reached
        {
            let why = report
                .prepared
                .scenario
                .expect
                .unreached
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, why)| format!("; as the scenario says: {why}"))
                .unwrap_or_default();
            detail.push_str(&format!(" (never reached: {}{why})", s.state));
        }
        verdicts.row([name.clone(), v.word().to_string(), detail]);
    }
    out.push('\n');
    out.push_str(&verdicts.render(2));
    for (name, v) in &report.verdicts {
        if let Verdict::Fail { witness } = v {
            let _ = writeln!(out, "\n  {name} failed: {}", witness.summary);
            for e in &witness.events {
                let _ = writeln!(out, "    {e}");
            }
        }
    }
    out.push('\n');
    let _ = writeln!(out, "  digest   {}", report.digest);
    if let Some(dir) = run_dir {
        let _ = writeln!(out, "  run dir  {}", dir.display());
    }
    let _ = writeln!(out, "  replay   {replay}");
    out
}

fn counts_line(counts: &serde_json::Map<String, Value>) -> String {
    counts
        .iter()
        .filter(|(k, _)| !k.starts_with("digest"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
