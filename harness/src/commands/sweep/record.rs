//! One run of a sweep as a record: read from the run directory the `run` command wrote, or
//! made from how the run ended when it wrote none.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// It ran to its end and was checked.
    Ran,
    /// It stopped without a verdict: a panic, a crash, an internal error.
    Crashed,
    /// It ran past the sweep's time limit and was stopped.
    TimedOut,
}

/// The determinism re-check of a run: the same scenario and seed simulated again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recheck {
    /// The digest of the second simulation's log (`None` when it did not end).
    pub digest: Option<String>,
    /// Whether it equals the first's.
    pub matches: bool,
    /// Where the two logs first differ: the line number (from 1) and both lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<Value>,
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its place in the sweep's canonical order (the same in every shard).
    pub index: u64,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file, as the sweep was given it.
    pub file: String,
    /// The seed.
    pub seed: u64,
    /// How the run ended.
    pub ending: Ending,
    /// The digest of its event log.
    pub digest: Option<String>,
    /// Each invariant's verdict: `pass`, `fail` or `unknown`.
    pub verdicts: BTreeMap<String, String>,
    /// The invariants that failed and were not expected to.
    pub unexpected: Vec<String>,
    /// The invariants the scenario expects to fail that held.
    pub held_unexpectedly: Vec<String>,
    /// The witness summary of each failed invariant.
    pub witnesses: BTreeMap<String, String>,
    /// The listed invariants the run did not decide, and why: unknown, or passed without
    /// reaching its state and the scenario gives no reason (`stampede run` exits 3 on these).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inconclusive: BTreeMap<String, String>,
    /// The concrete fault schedule the run had.
    pub faults: Value,
    /// Wall time of the run, in seconds (the one field that differs between machines).
    pub wall_s: f64,
    /// Virtual time simulated, in seconds.
    pub virtual_s: f64,
    /// The command that replays it.
    pub replay: String,
    /// Its run directory, relative to the sweep's.
    pub run_dir: String,
    /// Why it ended without a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its determinism re-check, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<Recheck>,
    /// The shrunk scenarios that still fail, one per invariant that failed (in the order of
    /// `unexpected`), relative to the sweep's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shrunk: Vec<String>,
    /// What each shrinking did: the invariant, faults before and after, runs taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shrink: Vec<super::shrink::Shrunk>,
}

impl Record {
    /// The shrunk file and its shrinking for `invariant`, else the first there is.
    pub fn shrunk_for(&self, invariant: &str) -> Option<(&String, &super::shrink::Shrunk)> {
        let mut pairs = self.shrunk.iter().zip(&self.shrink);
        let all = pairs.clone();
        pairs
            .find(|(_, s)| s.invariant == invariant)
            .or_else(|| all.into_iter().next())
    }

    /// Whether the run failed: it did not end, an invariant failed unexpectedly, an expected
    /// failure did not happen, or its re-check gave another log.
    pub fn failed(&self) -> bool {
        self.ending != Ending::Ran
            || !self.unexpected.is_empty()
            || !self.held_unexpectedly.is_empty()
            || self.nondeterministic()
    }

    /// Whether it ran, did not fail, and left some listed invariant undecided.
    pub fn is_inconclusive(&self) -> bool {
        self.ending == Ending::Ran && !self.failed() && !self.inconclusive.is_empty()
    }

    /// Whether its re-check gave another log.
    pub fn nondeterministic(&self) -> bool {
        self.recheck.as_ref().is_some_and(|r| !r.matches)
    }

    /// The invariants it failed on, unexpectedly either way.
    pub fn failed_invariants(&self) -> impl Iterator<Item = &String> {
        self.unexpected.iter().chain(&self.held_unexpectedly)
    }
}

/// What a finished run directory says: verdicts, digest, faults, virtual time.
#[derive(Debug, Default)]
pub struct RunDir {
    /// The scenario's name.
    pub scenario: String,
    /// The digest.
    pub digest: String,
    /// Verdict words by invariant.
    pub verdicts: BTreeMap<String, String>,
    /// Failed-invariant witness summaries.
    pub witnesses: BTreeMap<String, String>,
    /// Undecided invariants and why.
    pub inconclusive: BTreeMap<String, String>,
    /// The invariants the scenario expects to fail.
    pub expected: Vec<String>,
    /// The faults it ran with.
    pub faults: Value,
    /// Its virtual duration, in seconds.
    pub virtual_s: f64,
}

impl RunDir {
    /// Reads `results.json` and `run.json` of a run directory.
    pub fn read(dir: &Path) -> Result<Self, String> {
        let read = |name: &str| -> Result<Value, String> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("reading {}: {e}", path.display()))
        };
        let results = read("results.json")?;
        let run = read("run.json")?;
        let mut out = Self {
            scenario: results["scenario"].as_str().unwrap_or_default().to_string(),
            digest: results["digest"].as_str().unwrap_or_default().to_string(),
            faults: run["scenario"]["faults"].clone(),
            ..Self::default()
        };
        if let Some(verdicts) = results["verdicts"].as_object() {
            for (name, v) in verdicts {
                let word = v["verdict"].as_str().unwrap_or("unknown").to_string();
                if word == "fail" {
                    let summary = v["witness"]["summary"].as_str().unwrap_or_default();
                    out.witnesses.insert(name.clone(), summary.to_string());
                }
                out.verdicts.insert(name.clone(), word);
            }
        }
        if let Some(undecided) = results["inconclusive"].as_object() {
            for (name, why) in undecided {
                let why = why.as_str().unwrap_or_default().to_string();
                out.inconclusive.insert(name.clone(), why);
            }
        }
        out.expected = results["expected_violations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.virtual_s = run["scenario"]["duration"]
            .as_str()
            .and_then(|d| humantime::parse_duration(d).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        Ok(out)
    }

    /// The invariants that failed and were not expected to, and those expected to fail that
    /// held.
    pub fn surprises(&self) -> (Vec<String>, Vec<String>) {
        let failed = |n: &String| self.verdicts.get(n).is_some_and(|v| v == "fail");
        let unexpected = self
            .verdicts
            .keys()
            .filter(|n| failed(n) && !self.expected.contains(n))
            .cloned()
            .collect();
        let held = self
            .expected
            .iter()
            .filter(|n| !failed(n))
            .cloned()
            .collect();
        (unexpected, held)
    }
}
