//! Every check can fail: each invariant (but `deterministic` and `littles_law`, which judge
//! the harness itself) is expected violated by the weaker twin of a pair, apart from an
//! explicit list of exceptions that says what each waits for. A file counts for an invariant
//! only when it runs with a mechanism off (its preset is `naive`, or a switch is off) and a
//! twin in its folder has every mechanism it has (and more, or another setting such as an
//! alert rule), lists that invariant and does not expect it violated (the scenario suite runs both and holds each to its
//! expectation): a violation that the hardened twin also shows is no evidence that a mechanism
//! is what the check sees. The list only shrinks: an exception that a pair now covers must
//! leave it. And no file with every mechanism on expects a violation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use stampede::input::scenario::{InvariantName, Scenario};

/// Invariants no scenario yet expects to be violated, and what each waits for.
const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "backlog_drains",
        "system and fake changes of the rest of the incident library",
    ),
    (
        "queue_cost_flat",
        "system and fake changes of the rest of the incident library: a queue whose cost grows",
    ),
];

/// Invariants about the harness, not the system: no mechanism of the system can break them.
const ABOUT_THE_HARNESS: [&str; 2] = ["deterministic", "littles_law"];

/// The mechanisms a scenario's system runs with, by name.
fn mechanisms(s: &Scenario) -> BTreeMap<String, bool> {
    let preset = stampede_system::SystemConfig::preset(s.system.preset).switches;
    let on = s.system.switches.apply(preset);
    serde_json::from_value(serde_json::to_value(on).unwrap()).unwrap()
}

/// Whether `strong` has every mechanism `weak` has.
fn at_least(strong: &BTreeMap<String, bool>, weak: &BTreeMap<String, bool>) -> bool {
    weak.iter().all(|(k, on)| !on || strong[k])
}

#[test]
fn every_invariant_is_expected_violated_by_a_weaker_twin_whose_stronger_twin_passes_it() {
    let files: Vec<(PathBuf, Scenario)> = crate::scenario_files()
        .into_iter()
        .map(|f| {
            let s = stampede::input::scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
            (f, s)
        })
        .collect();
    let mut covered = BTreeSet::new();
    let mut problems = Vec::new();
    for (file, s) in &files {
        let on = mechanisms(s);
        if on.values().all(|v| *v) {
            if !s.expect.violated.is_empty() {
                problems.push(format!(
                    "{} has every mechanism on and expects violations: a hardened file expects none",
                    file.display()
                ));
            }
            continue;
        }
        for name in &s.expect.violated {
            let twin = files.iter().find(|(f, t)| {
                f != file
                    && f.parent() == file.parent()
                    && at_least(&mechanisms(t), &on)
                    && t.invariants.iter().any(|i| i.name == *name)
                    && !t.expect.violated.contains(name)
            });
            if twin.is_some() {
                covered.insert(name.as_str());
            }
        }
    }
    let exceptions: BTreeSet<&str> = EXCEPTIONS.iter().map(|(n, _)| *n).collect();
    for name in InvariantName::ALL.map(InvariantName::as_str) {
        if ABOUT_THE_HARNESS.contains(&name) {
            continue;
        }
        match (covered.contains(name), exceptions.contains(name)) {
            (true, true) => problems.push(format!(
                "{name} is now expected violated by a scenario: remove it from EXCEPTIONS"
            )),
            (false, false) => problems.push(format!(
                "no pair covers {name}: add a sensitivity pair whose weaker twin breaks it and whose stronger twin passes it"
            )),
            _ => {}
        }
    }
    for name in &exceptions {
        if InvariantName::ALL.iter().all(|n| n.as_str() != *name) {
            problems.push(format!("EXCEPTIONS names {name}, which is no invariant"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
