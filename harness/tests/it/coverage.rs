//! Every check can fail: each invariant (but `deterministic` and `littles_law`, which judge
//! the harness itself) is expected violated by at least one scenario, the `naive` twin of a
//! sensitivity pair, apart from an explicit list of exceptions that says what each waits for.
//! The list only shrinks: an exception that a scenario now covers must leave it.

use std::collections::BTreeSet;

use stampede::input::scenario::InvariantName;

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

#[test]
fn every_invariant_is_expected_violated_by_some_scenario_or_listed_as_waiting() {
    let files = crate::scenario_files();
    let mut covered = BTreeSet::new();
    for file in &files {
        let s = stampede::input::scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
        covered.extend(s.expect.violated.iter().map(|n| n.as_str()));
    }
    let exceptions: BTreeSet<&str> = EXCEPTIONS.iter().map(|(n, _)| *n).collect();
    let mut problems = Vec::new();
    for name in InvariantName::ALL.map(InvariantName::as_str) {
        if ABOUT_THE_HARNESS.contains(&name) {
            continue;
        }
        match (covered.contains(name), exceptions.contains(name)) {
            (true, true) => problems.push(format!(
                "{name} is now expected violated by a scenario: remove it from EXCEPTIONS"
            )),
            (false, false) => problems.push(format!(
                "no scenario expects {name} to be violated: add a sensitivity pair whose naive twin breaks it"
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
