//! What a run leaves behind: the run directory (`run.json`, `events.jsonl`, `results.json`,
//! `audit.jsonl`, `junit.xml`, `report.json`, `report.html`, `report.md`), written whole or not
//! at all. The `reports` crate renders every file but the log and `run.json`, from the
//! [`RunData`] that `report_data` reads off the run.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stampede_reports::{RunData, page, results};

use crate::commands::run::RunReport;
use crate::events::EventLog;

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

/// The contents of `run.json`: what ran, resolved, and with which build.
pub fn run_json(report: &RunReport) -> Value {
    json!({
        "scenario_file": report.prepared.path,
        "trace_file": report.prepared.trace_path,
        "seed": report.seed,
        "build": { "stampede": env!("CARGO_PKG_VERSION"), "profile": if cfg!(debug_assertions) { "debug" } else { "release" } },
        "scenario": report.prepared.scenario,
        "system_config": crate::world::lower::system_config(&report.prepared.scenario),
        "swarm": report.swarm,
        "steps": report.steps,
    })
}

/// Writes the run directory. Files go to a sibling temporary directory that replaces `dir`
/// only once everything is written, so a failed write leaves no half-written run behind.
pub fn write_run_dir(report: &RunReport, data: &RunData, dir: &Path) -> io::Result<()> {
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
        // Streamed: a log of millions of events is not held a second time as one string.
        let mut events = std::io::BufWriter::new(std::fs::File::create(tmp.join("events.jsonl"))?);
        report.log.write_jsonl(&mut events)?;
        std::io::Write::flush(&mut events)?;
        std::fs::write(
            tmp.join("results.json"),
            pretty(&results::results_json(data)),
        )?;
        std::fs::write(tmp.join("audit.jsonl"), audit_trace(&report.log))?;
        std::fs::write(tmp.join("junit.xml"), results::junit_xml(data))?;
        std::fs::write(tmp.join("report.json"), pretty(&json!(data)))?;
        std::fs::write(tmp.join("report.html"), page::run_html(data))?;
        std::fs::write(tmp.join("report.md"), page::run_md(data))?;
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
    let mut records: Vec<crate::input::trace::Record> = log
        .of("stampede::audit")
        .filter(|e| e.name == "submission")
        .filter_map(|e| serde_json::from_str(e.str("record")?).ok())
        .collect();
    records.sort_by_key(|r| r.t_ms);
    let start = records.first().map_or(0, |r| r.t_ms);
    let mut out = format!(
        "{}\n",
        json!({ "format": crate::input::trace::FORMAT, "version": crate::input::trace::VERSION })
    );
    for mut r in records {
        r.t_ms -= start;
        out.push_str(&serde_json::to_string(&r).expect("records serialise"));
        out.push('\n');
    }
    out
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("json values serialise");
    s.push('\n');
    s
}

/// The one-screen summary printed after a run.
pub fn summary(data: &RunData, run_dir: Option<&Path>, replay: &str) -> String {
    let dir = run_dir.map(|d| d.display().to_string());
    stampede_reports::summary::summary(data, dir.as_deref(), replay)
}
